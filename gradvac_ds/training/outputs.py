"""The run directory's outputs across sessions: refuse to mix runs, keep the validation history.

``<run_dir>/<mode>/`` holds one mode's checkpoints, similarity log, ``validation.json`` and
``bleu.json``. A new session in a run directory that already holds a mode's outputs must say what
to do with them: ``--resume`` continues that run, ``--overwrite`` deletes them first; without
either, :func:`check_run_dir` refuses (before any process group starts, so every rank refuses).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gradvac_ds.files import atomic_write_text
from gradvac_ds.training.errors import RunDirError

VALIDATION = "validation.json"


def _used(run_dir: Path, modes: Sequence[str]) -> list[Path]:
    return [run_dir / mode for mode in modes if (run_dir / mode).is_dir() and any((run_dir / mode).iterdir())]


def check_run_dir(run_dir: str | Path, modes: Sequence[str], resume: bool, overwrite: bool) -> None:
    """Raise :class:`RunDirError` when a mode's folder already holds outputs and neither ``resume``
    nor ``overwrite`` is set, or when both are."""
    if resume and overwrite:
        raise RunDirError("--resume and --overwrite exclude each other: continue the run, or replace it")
    used = _used(Path(run_dir), modes)
    if used and not (resume or overwrite):
        raise RunDirError(
            f"{run_dir} already holds the outputs of an earlier run ({', '.join(str(p) for p in used)}): "
            "pass --resume to continue it, or --overwrite to delete them and start again"
        )


def clear_modes(run_dir: str | Path, modes: Sequence[str]) -> None:
    """Delete the folders of ``modes`` (``--overwrite``; call on one rank only)."""
    for path in _used(Path(run_dir), modes):
        shutil.rmtree(path)


class ValidationHistory:
    """``<mode_dir>/validation.json``: ``[{"step": s, "valid_loss": {task: loss}}, ...]``.

    A resumed session keeps the entries up to the step it resumed from (later ones belong to steps
    being redone) and rewrites the file after every validation, so an interrupted run keeps them too.
    """

    def __init__(self, mode_dir: Path, resumed_step: int) -> None:
        self.path = mode_dir / VALIDATION
        self.entries: list[dict[str, Any]] = []
        if resumed_step > 0 and self.path.is_file():
            self.entries = [e for e in json.loads(self.path.read_text()) if e["step"] <= resumed_step]

    def append(
        self, step: int, valid_loss: dict[str, float], valid_ppl: dict[str, float] | None = None
    ) -> None:
        """Add one validation (``valid_ppl``: per-language perplexity of a language model)."""
        entry: dict[str, Any] = {"step": step, "valid_loss": valid_loss}
        if valid_ppl is not None:
            entry["valid_ppl"] = valid_ppl
        self.entries.append(entry)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(self.entries, indent=2))
