"""Streaming readers of real corpora: every layout yields its lines lazily, one at a time.

Parallel layouts (a :class:`ParallelSource` lists ``(pair, split)`` streams of ``(src, tgt)`` lines):

* **fairseq** file pairs in one directory: ``{split}.{src}-{tgt}.{src}`` and ``{split}.{src}-{tgt}.{tgt}``
  (e.g. ``train.de-en.de`` / ``train.de-en.en``), line *i* of one aligned with line *i* of the other.
* **TSV**: ``source<TAB>target`` per line, the language pair and split given by the caller.
* **multi-way**: one ``{code}.txt`` per language in a directory, line *i* of every file the same
  segment, an empty line meaning the segment is missing in that language; ``split.txt`` holds one
  split label per line. Each non-pivot language is paired with the pivot.

Monolingual layout (:class:`MonolingualSource`, for language-model pretraining): per language
either ``{code}.txt`` or a directory ``{code}/`` whose ``*.txt`` files are read in name order; one
line is one document.

Split names, in file names (fairseq), TSV keys and ``split.txt`` labels alike: ``train``;
``dev``, ``valid`` or ``validation`` (all read as ``valid``); ``test``.

Lines are split on ``"\\n"`` only (a trailing ``"\\r"`` is removed): ``str.splitlines`` would also
split on U+2028, U+0085 and others, which occur inside real sentences and would break alignment.
A UTF-8 byte-order mark at the start of a file is dropped; a carriage return anywhere else in a
line (CR-only line endings turn a whole file into one line) is refused. Files whose names do not
fit the layout are listed in :attr:`ParallelSource.skipped` with the reason. Every error names the
file and, where it applies, the 1-based line.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path

from gradvac_ds.training.data.corpus import LanguagePair, ParallelCorpus
from gradvac_ds.training.data.errors import DataError
from gradvac_ds.training.data.languages import check_language_code

SPLIT_NAMES = {"train": "train", "dev": "valid", "valid": "valid", "validation": "valid", "test": "test"}
_FAIRSEQ_NAME = re.compile(r"(?P<split>[A-Za-z0-9_]+)\.(?P<src>[^.\-]+)-(?P<tgt>[^.\-]+)\.(?P<lang>[^.]+)")
_CODE = re.compile(r"[a-z]{2,3}")


def iter_lines(path: Path) -> Iterator[str]:
    """The lines of a UTF-8 text file, without terminators, read one at a time.

    Raises:
        DataError: missing file, invalid UTF-8 or a carriage return inside a line (file and line).
    """
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror})") from exc
    with handle:
        for number, raw in enumerate(handle, start=1):
            raw = raw[:-1] if raw.endswith(b"\n") else raw
            raw = raw[:-1] if raw.endswith(b"\r") else raw
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            if b"\r" in raw:
                raise DataError(
                    f"{path}:{number}: carriage return inside a line (CR-only line endings?); "
                    "convert the file to LF line endings, e.g. tr '\\r' '\\n'"
                )
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"{path}:{number}: invalid UTF-8 (byte {exc.start} of the line: {exc.reason})"
                ) from exc


def iter_aligned(*paths: Path) -> Iterator[tuple[str, ...]]:
    """Line ``i`` of every file together; raises on the first line that has no partner."""
    for number, lines in enumerate(zip_longest(*(iter_lines(p) for p in paths)), start=1):
        if None in lines:
            longer = [str(p) for p, line in zip(paths, lines, strict=True) if line is not None]
            shorter = [str(p) for p, line in zip(paths, lines, strict=True) if line is None]
            raise DataError(
                f"{longer[0]}:{number}: line count mismatch, {', '.join(shorter)} ended after "
                f"{number - 1} lines; this line has no aligned partner"
            )
        yield lines


def split_name(name: str, where: str) -> str:
    """The canonical split (``train`` / ``valid`` / ``test``) of a split name, or a DataError."""
    if name not in SPLIT_NAMES:
        raise DataError(f"{where}: unknown split {name!r}; allowed: {sorted(SPLIT_NAMES)}")
    return SPLIT_NAMES[name]


@dataclass
class ParallelSource:
    """Lazily read line pairs per ``(pair, split)``.

    Attributes:
        origin: the directory or files, for messages.
        streams: ``(pair, split) -> [callable yielding (src, tgt) lines]``, one callable per file
            (pair) or line range, in the layout's order.
        skipped: one line per file that was not read: its path and why.
    """

    origin: str
    streams: dict[tuple[LanguagePair, str], list] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    @property
    def pairs(self) -> list[LanguagePair]:
        """The stored language pairs, sorted."""
        return sorted({pair for pair, _ in self.streams})

    def splits(self, pair: LanguagePair) -> list[str]:
        """The splits stored for ``pair`` in its stored orientation."""
        return sorted(split for p, split in self.streams if p == pair)

    def lines(self, pair: LanguagePair, split: str) -> Iterator[tuple[str, str]]:
        """The ``(src, tgt)`` lines of ``pair`` (stored orientation) and ``split``, in file order."""
        for stream in self.streams.get((pair, split), []):
            yield from stream()


def fairseq_source(directory: str | Path, splits: Collection[str]) -> ParallelSource:
    """Index every ``{split}.{src}-{tgt}.{lang}`` file pair of the requested splits in ``directory``.

    Raises:
        DataError: not a directory, missing partner file, bad language code.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: not a directory")
    source = ParallelSource(str(directory))
    groups: dict[tuple[str, str, str], dict[str, Path]] = {}
    for path in sorted(directory.iterdir()):
        match = _FAIRSEQ_NAME.fullmatch(path.name)
        if not path.is_file() or not match:
            source.skipped.append(f"{path}: name is not {{split}}.{{src}}-{{tgt}}.{{lang}}")
            continue
        if match["split"] not in SPLIT_NAMES:
            source.skipped.append(
                f"{path}: split {match['split']!r} is not one of {sorted(SPLIT_NAMES)} (rename the file)"
            )
            continue
        split = SPLIT_NAMES[match["split"]]
        if split not in splits:
            source.skipped.append(f"{path}: split {split!r} not requested (data.splits={sorted(splits)})")
            continue
        src, tgt, lang = match["src"], match["tgt"], match["lang"]
        for code in (src, tgt, lang):
            check_language_code(code, str(path))
        if lang not in (src, tgt):
            raise DataError(f"{path}: language suffix {lang!r} is neither side of the pair {src}-{tgt}")
        key = (split, src, tgt)
        if lang in groups.get(key, {}):
            raise DataError(f"{path}: a second {split} file for {lang} of {src}-{tgt} ({groups[key][lang]})")
        groups.setdefault(key, {})[lang] = path
    for (split, src, tgt), files in sorted(groups.items()):
        for lang in (src, tgt):
            if lang not in files:
                present = next(iter(files.values()))
                raise DataError(
                    f"{present}: partner file {directory / f'{split}.{src}-{tgt}.{lang}'} is missing"
                )
        pair_files = (files[src], files[tgt])
        source.streams.setdefault(((src, tgt), split), []).append(lambda f=pair_files: iter_aligned(*f))
    return source


def _tsv_lines(path: Path) -> Iterator[tuple[str, str]]:
    for number, line in enumerate(iter_lines(path), start=1):
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataError(
                f"{path}:{number}: expected 2 tab-separated fields (source, target), found {len(fields)}"
            )
        yield fields[0], fields[1]


def tsv_source(files: Mapping[str, Mapping[str, str | Path]], splits: Collection[str]) -> ParallelSource:
    """Index TSV files given as ``{"de-en": {"train": path, "dev": path, ...}, ...}``.

    Raises:
        DataError: bad pair name, language code or split name; a missing file.
    """
    source = ParallelSource(", ".join(str(p) for s in files.values() for p in s.values()) or "TSV files")
    for pair_name, split_files in files.items():
        parts = pair_name.split("-")
        if len(parts) != 2:
            raise DataError(f"TSV pair {pair_name!r}: expected the form 'src-tgt', e.g. 'de-en'")
        pair = (
            check_language_code(parts[0], f"TSV pair {pair_name!r}"),
            check_language_code(parts[1], f"TSV pair {pair_name!r}"),
        )
        for name, path in split_files.items():
            path = Path(path)
            split = split_name(name, f"data.tsv.{pair_name}.{name}")
            if not path.is_file():
                raise DataError(f"{path}: cannot read file (data.tsv.{pair_name}.{name})")
            if split not in splits:
                source.skipped.append(f"{path}: split {split!r} not requested (data.splits={sorted(splits)})")
                continue
            source.streams.setdefault((pair, split), []).append(lambda p=path: _tsv_lines(p))
    return source


def _multiway_lines(split_path: Path, src: Path, pivot: Path, split: str) -> Iterator[tuple[str, str]]:
    for number, (label, source, target) in enumerate(iter_aligned(split_path, src, pivot), start=1):
        if split_name(label.strip(), f"{split_path}:{number}") == split:
            yield source, target


def multiway_source(
    directory: str | Path, pivot: str, languages: Collection[str] | None, splits: Collection[str]
) -> ParallelSource:
    """Pair each language's ``{code}.txt`` with the pivot's, line by line, split by ``split.txt``.

    ``languages`` None reads every ``*.txt`` whose stem is a language code; pairs are ``(xx, pivot)``.

    Raises:
        DataError: not a directory, missing ``split.txt`` or language file, bad code.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: not a directory")
    check_language_code(pivot, f"{directory}: pivot")
    split_path, pivot_path = directory / "split.txt", directory / f"{pivot}.txt"
    for needed in (split_path, pivot_path):
        if not needed.is_file():
            found = sorted(p.name for p in directory.glob("*.txt"))
            raise DataError(f"{needed}: missing; the directory has {found}")
    source = ParallelSource(str(directory))
    found = sorted(directory.iterdir())
    if languages is None:
        languages = [p.stem for p in found if p.suffix == ".txt" and _CODE.fullmatch(p.stem)]
    for path in found:
        if path not in (split_path, pivot_path) and not (path.suffix == ".txt" and path.stem in languages):
            source.skipped.append(f"{path}: not {{code}}.txt of a requested language")
    for lang in sorted(languages):
        if lang == pivot:
            continue
        path = directory / f"{lang}.txt"
        check_language_code(lang, str(path))
        if not path.is_file():
            raise DataError(f"{path}: missing (data.languages has {lang!r})")
        for split in sorted(set(splits)):
            source.streams[((lang, pivot), split)] = [
                lambda p=path, s=split: _multiway_lines(split_path, p, pivot_path, s)
            ]
    return source


def memory_source(corpus: ParallelCorpus, origin: str) -> ParallelSource:
    """A :class:`ParallelSource` over an in-memory corpus (the synthetic generator's)."""
    source = ParallelSource(origin)
    for pair, splits in corpus.pairs.items():
        for split, sentences in splits.items():
            source.streams[(pair, split)] = [lambda s=sentences: iter(s)]
    return source


@dataclass
class MonolingualSource:
    """Lazily read documents (lines) per language.

    Attributes:
        origin: the directory.
        files: language -> its files in reading order.
        skipped: one line per entry of the directory that was not read, with the reason.
    """

    origin: str
    files: dict[str, list[Path]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def lines(self, lang: str) -> Iterator[str]:
        """Every line of every file of ``lang``, in order."""
        for path in self.files[lang]:
            yield from iter_lines(path)


def monolingual_source(directory: str | Path, languages: Collection[str] | None) -> MonolingualSource:
    """Index ``{code}.txt`` files and ``{code}/*.txt`` directories (see the module docstring).

    Raises:
        DataError: not a directory, a language given twice (file and directory), a requested
            language without data, an empty language directory.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: not a directory")
    source = MonolingualSource(str(directory))
    for path in sorted(directory.iterdir()):
        code = path.stem if path.is_file() and path.suffix == ".txt" else path.name if path.is_dir() else None
        if code is None or not _CODE.fullmatch(code):
            source.skipped.append(
                f"{path}: not {{code}}.txt or a directory {{code}}/ (code = 2-3 lowercase letters)"
            )
            continue
        if languages is not None and code not in languages:
            source.skipped.append(f"{path}: language {code!r} not in data.languages")
            continue
        if code in source.files:
            raise DataError(f"{path}: language {code!r} given twice ({source.files[code][0]})")
        files = sorted(path.glob("*.txt")) if path.is_dir() else [path]
        if not files:
            raise DataError(f"{path}: directory holds no *.txt file")
        source.files[code] = files
    missing = sorted(set(languages or ()) - set(source.files))
    if missing:
        raise DataError(
            f"{directory}: no {{code}}.txt or {{code}}/ for data.languages {missing}; "
            f"found {sorted(source.files)}"
        )
    if not source.files:
        raise DataError(f"{directory}: no language found; skipped:\n  " + "\n  ".join(source.skipped))
    return source
