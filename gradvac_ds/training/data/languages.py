"""Language codes and language-pair (task) names.

A language code is an ISO 639-1 or ISO 639-3 *shaped* code: two or three lowercase ASCII letters
(``de``, ``deu``). Codes for the synthetic languages use the ISO 639 local-use range ``qaa``-``qtz``.
A task is named ``"src-tgt"``; the hyphen is why codes may not contain one.
"""

import re
from collections.abc import Collection

from gradvac_ds.training.data.errors import DataError

_CODE = re.compile(r"[a-z]{2,3}")


def check_language_code(
    code: str,
    where: str,
    allowed: Collection[str] | None = None,
    error: type[ValueError] = DataError,
) -> str:
    """Return ``code`` if it is a valid language code, else raise.

    Args:
        code: the candidate code.
        where: what to name in the error (a file and line, or a config field).
        allowed: if given, the code must also be one of these.
        error: the exception type to raise (``DataConfigError`` for configuration fields).

    Raises:
        error: naming ``where``, the code, and the rule or the allowed codes.
    """
    if not _CODE.fullmatch(code):
        raise error(
            f"{where}: invalid language code {code!r}; expected 2 or 3 lowercase ASCII letters "
            "(ISO 639-1 or 639-3 shaped, e.g. 'de' or 'deu')"
        )
    if allowed is not None and code not in allowed:
        raise error(f"{where}: unknown language code {code!r}; allowed: {sorted(allowed)}")
    return code


def task_name(src: str, tgt: str) -> str:
    """Name of the translation task from ``src`` to ``tgt``: ``"src-tgt"``."""
    return f"{src}-{tgt}"


def parse_task_name(task: str) -> tuple[str, str]:
    """Split ``"src-tgt"`` into ``(src, tgt)``, validating both codes."""
    parts = task.split("-")
    if len(parts) != 2:
        raise DataError(f"task {task!r}: expected the form 'src-tgt', e.g. 'de-en'")
    return (
        check_language_code(parts[0], f"task {task!r}"),
        check_language_code(parts[1], f"task {task!r}"),
    )
