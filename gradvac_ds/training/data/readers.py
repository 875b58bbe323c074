"""Readers for real parallel data, each returning a :class:`~gradvac_ds.training.data.corpus.ParallelCorpus`.

Three layouts:

* **fairseq** file pairs in one directory: ``{split}.{src}-{tgt}.{src}`` and ``{split}.{src}-{tgt}.{tgt}``
  (e.g. ``train.de-en.de`` / ``train.de-en.en``), line *i* of one aligned with line *i* of the other.
* **TSV**: ``source<TAB>target`` per line, the language pair and split given by the caller.
* **multi-way**: one ``{code}.txt`` per language in a directory, line *i* of every file the same
  segment, an empty line meaning the segment is missing in that language; ``split.txt`` holds one
  split label per line (``train``, ``dev``/``valid`` or ``test``). Each non-pivot language is
  paired with the pivot.

Lines are split on ``"\\n"`` only (a trailing ``"\\r"`` is removed): ``str.splitlines`` would also
split on U+2028, U+0085 and others, which occur inside real sentences and would break alignment.
Every error names the file and, where it applies, the 1-based line.
"""

import re
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from gradvac_ds.training.data.corpus import FilterConfig, LanguagePair, ParallelCorpus
from gradvac_ds.training.data.errors import DataError
from gradvac_ds.training.data.languages import check_language_code

_FAIRSEQ_NAME = re.compile(r"(?P<split>[A-Za-z0-9_]+)\.(?P<src>[^.\-]+)-(?P<tgt>[^.\-]+)\.(?P<lang>[^.]+)")
_MULTIWAY_SPLIT_LABELS = {"train": "train", "dev": "valid", "valid": "valid", "test": "test"}


def read_lines(path: Path) -> list[str]:
    """All lines of a UTF-8 text file, without line terminators.

    Raises:
        DataError: if the file is missing or is not valid UTF-8 (naming the line of the first bad byte).
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror})") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{path}:{line}: invalid UTF-8 (byte offset {exc.start}: {exc.reason})") from exc
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _check_same_length(
    first: Path, first_lines: Sequence[str], second: Path, second_lines: Sequence[str]
) -> None:
    if len(first_lines) != len(second_lines):
        longer = first if len(first_lines) > len(second_lines) else second
        shortest = min(len(first_lines), len(second_lines))
        raise DataError(
            f"{longer}:{shortest + 1}: line count mismatch, {first} has {len(first_lines)} lines but "
            f"{second} has {len(second_lines)}; this line has no aligned partner"
        )


def _add_aligned(
    corpus: ParallelCorpus,
    pair: LanguagePair,
    split: str,
    src_lines: Sequence[str],
    tgt_lines: Sequence[str],
    filters: FilterConfig,
) -> None:
    for src, tgt in zip(src_lines, tgt_lines, strict=True):
        corpus.add(pair, split, src, tgt, filters)


def read_fairseq_dir(
    directory: str | Path,
    splits: Collection[str] = ("train", "valid", "test"),
    filters: FilterConfig | None = None,
    allowed_languages: Collection[str] | None = None,
) -> ParallelCorpus:
    """Read every ``{split}.{src}-{tgt}.{lang}`` file pair of the requested splits in ``directory``.

    Files that do not have that name shape are ignored; files of other splits are skipped.

    Raises:
        DataError: missing partner file, bad language code, line count mismatch, invalid UTF-8,
            or no training pair at all.
    """
    directory = Path(directory)
    filters = filters or FilterConfig()
    if not directory.is_dir():
        raise DataError(f"{directory}: not a directory")
    groups: dict[tuple[str, str, str], dict[str, Path]] = {}
    for path in sorted(directory.iterdir()):
        match = _FAIRSEQ_NAME.fullmatch(path.name)
        if not match or match["split"] not in splits:
            continue
        src, tgt, lang = match["src"], match["tgt"], match["lang"]
        for code in (src, tgt, lang):
            check_language_code(code, str(path), allowed_languages)
        if lang not in (src, tgt):
            raise DataError(f"{path}: language suffix {lang!r} is neither side of the pair {src}-{tgt}")
        groups.setdefault((match["split"], src, tgt), {})[lang] = path
    corpus = ParallelCorpus()
    for (split, src, tgt), files in sorted(groups.items()):
        for lang in (src, tgt):
            if lang not in files:
                present = next(iter(files.values()))
                raise DataError(
                    f"{present}: partner file {directory / f'{split}.{src}-{tgt}.{lang}'} is missing"
                )
        src_lines, tgt_lines = read_lines(files[src]), read_lines(files[tgt])
        _check_same_length(files[src], src_lines, files[tgt], tgt_lines)
        _add_aligned(corpus, (src, tgt), split, src_lines, tgt_lines, filters)
    corpus.require_nonempty(str(directory))
    return corpus


def read_tsv_files(
    files: Mapping[str, Mapping[str, str | Path]],
    filters: FilterConfig | None = None,
    allowed_languages: Collection[str] | None = None,
) -> ParallelCorpus:
    """Read TSV files given as ``{"de-en": {"train": path, "valid": path, ...}, ...}``.

    Each line must hold exactly one tab: ``source<TAB>target``.

    Raises:
        DataError: bad pair name or language code, wrong field count (file and line), invalid
            UTF-8, or no training pair at all.
    """
    filters = filters or FilterConfig()
    corpus = ParallelCorpus()
    for pair_name, split_files in files.items():
        parts = pair_name.split("-")
        if len(parts) != 2:
            raise DataError(f"TSV pair {pair_name!r}: expected the form 'src-tgt', e.g. 'de-en'")
        pair = (
            check_language_code(parts[0], f"TSV pair {pair_name!r}", allowed_languages),
            check_language_code(parts[1], f"TSV pair {pair_name!r}", allowed_languages),
        )
        for split, path in split_files.items():
            path = Path(path)
            for number, line in enumerate(read_lines(path), start=1):
                fields = line.split("\t")
                if len(fields) != 2:
                    raise DataError(
                        f"{path}:{number}: expected 2 tab-separated fields (source, target), "
                        f"found {len(fields)}"
                    )
                corpus.add(pair, split, fields[0], fields[1], filters)
    corpus.require_nonempty(", ".join(str(p) for s in files.values() for p in s.values()) or "TSV files")
    return corpus


def _read_split_labels(path: Path) -> list[str]:
    labels = []
    for number, line in enumerate(read_lines(path), start=1):
        label = line.strip()
        if label not in _MULTIWAY_SPLIT_LABELS:
            raise DataError(
                f"{path}:{number}: unknown split label {label!r}; allowed: {sorted(_MULTIWAY_SPLIT_LABELS)}"
            )
        labels.append(_MULTIWAY_SPLIT_LABELS[label])
    return labels


def read_multiway_dir(
    directory: str | Path,
    pivot: str,
    languages: Collection[str] | None = None,
    splits: Collection[str] = ("train", "valid", "test"),
    filters: FilterConfig | None = None,
) -> ParallelCorpus:
    """Pair each language's ``{code}.txt`` with the pivot's, line by line, split by ``split.txt``.

    Args:
        directory: holds ``{code}.txt`` per language and ``split.txt``.
        pivot: the language every other language is paired with; pairs are stored as ``(xx, pivot)``.
        languages: non-pivot languages to read; ``None`` reads every ``*.txt`` whose stem is a
            language code.
        splits: split names to keep (``dev`` labels are read as ``valid``).
        filters: line filters; a line empty on either side counts as ``empty``.

    Raises:
        DataError: missing file, unknown split label, line count mismatch, invalid UTF-8, or no
            training pair at all.
    """
    directory = Path(directory)
    filters = filters or FilterConfig()
    if not directory.is_dir():
        raise DataError(f"{directory}: not a directory")
    split_path = directory / "split.txt"
    labels = _read_split_labels(split_path)
    check_language_code(pivot, f"{directory}: pivot")
    if languages is None:
        languages = sorted(p.stem for p in directory.glob("*.txt") if re.fullmatch(r"[a-z]{2,3}", p.stem))
    pivot_path = directory / f"{pivot}.txt"
    pivot_lines = read_lines(pivot_path)
    _check_same_length(split_path, labels, pivot_path, pivot_lines)
    corpus = ParallelCorpus()
    for lang in languages:
        if lang == pivot:
            continue
        path = directory / f"{lang}.txt"
        check_language_code(lang, str(path))
        lines = read_lines(path)
        _check_same_length(split_path, labels, path, lines)
        for label, src, tgt in zip(labels, lines, pivot_lines, strict=True):
            if label in splits:
                corpus.add((lang, pivot), label, src, tgt, filters)
    corpus.require_nonempty(str(directory))
    return corpus
