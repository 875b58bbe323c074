"""Fetch and clean the verse-aligned eBible corpus of the evidence runs into data/eval/bible.

    python scripts/fetch_bible.py                         # all 21 languages over HTTPS
    python scripts/fetch_bible.py --languages es pt de    # a subset (English, the pivot, always)
    python scripts/fetch_bible.py --git-dir CLONE/.git    # offline, from a clone of the source

Source: the GitHub repository davidbaines/ebible_data at the pinned commit ``COMMIT``, a
verse-per-line export of eBible.org translations (``metadata/vref.txt`` and
``corpus/<translation>.txt``, 41,899 lines each, line i = verse i of vref.txt).
``data/eval/sources.csv`` names the translation of every language with its title, copyright,
licence and the git blob SHA-1 of its file; each download is checked against that SHA-1 before it
is used. Licences: 11 translations are public
domain, 10 are CC BY-SA 4.0 (see sources.csv); the cleaned files written here are a modified
version of those texts, so share them only with that credit and licence (data/eval/README.md).

Cleaning (:func:`clean_lines`; every file keeps its 41,899 lines, line i is verse vref[i]):
a ``<range>`` line (a verse merged into the previous one) is blanked together with the line that
holds the merged text; editorial residue is removed (verse labels ``[32:1]``, Hebrew mirrored
labels ``]73-63[`` and appended ``[ (Romans 7:26) ... ]`` blocks, Danish ``{...}`` notes and
``*``/``+`` markers, Norwegian ``$1`` markers, Croatian acrostic letters ``$ALEF``); whitespace is
stripped and runs of spaces collapsed. ``split.txt``: Romans is dev, John is test, the rest train.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import re
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from gradvac_ds.files import atomic_write_text

REPOSITORY = "davidbaines/ebible_data"
COMMIT = "7ebecfb4649edc87bb489c491bc2945b7ee34dbe"
BASE_URL = f"https://raw.githubusercontent.com/{REPOSITORY}/{COMMIT}"
VREF = ("metadata/vref.txt", "93eeaf7efa57b877a3ed2be5de3fa595a99e069f")
SPLIT_BOOKS = {"ROM": "dev", "JHN": "test"}
"""Held-out books; every other verse is train."""
DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "eval"

LABEL = re.compile(r"\[\d+(?::\d+)?(?: ?[a-z])?\]\s*")
HEBREW_LABEL = re.compile(r"\]\d+(?:-\d+)?\[\s*")
HEBREW_APPENDED = re.compile(r"\s*\[ \([^)]*\) [^\]]*\]")
DANISH_NOTE = re.compile(r"\s*\{[^}]*\}")
DANISH_MARK = re.compile(r"(?:(?<=[^\s*+])|^)[*+]+")
NORWEGIAN_MARK = re.compile(r"\$\d+")
CROATIAN_ACROSTIC = re.compile(r"\$[A-ZČŠŽĆĐ]+\s*")
SPACES = re.compile(r" {2,}")
LANGUAGE_RULES: dict[str, tuple[re.Pattern[str], ...]] = {
    "da": (DANISH_NOTE, DANISH_MARK),
    "nb": (NORWEGIAN_MARK,),
    "hr": (CROATIAN_ACROSTIC,),
    "he": (HEBREW_APPENDED, HEBREW_LABEL),
}


class FetchError(RuntimeError):
    """A download, checksum or layout problem, with the file it concerns."""


def git_blob_sha1(data: bytes) -> str:
    """Git's object id of a file: SHA-1 of ``b"blob <size>\\0" + data``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def clean_verse(text: str, language: str) -> str:
    """One verse with the language's editorial residue and the verse labels removed."""
    verse = text.strip()
    for pattern in LANGUAGE_RULES.get(language, ()):
        verse = pattern.sub("", verse)
    return SPACES.sub(" ", LABEL.sub("", verse)).strip()


def clean_lines(lines: Sequence[str], language: str) -> list[str]:
    """The cleaned verses of one file (same length): ``<range>`` lines and the line before each
    (which holds the merged verses) become empty, every other line is :func:`clean_verse`."""
    raw = [line.strip() for line in lines]
    merged = {i for i, line in enumerate(raw) if line == "<range>"}
    return [
        "" if i in merged or i + 1 in merged else clean_verse(line, language) for i, line in enumerate(raw)
    ]


def split_of(references: Sequence[str]) -> list[str]:
    """``train`` / ``dev`` / ``test`` of each verse reference ("GEN 1:1") by :data:`SPLIT_BOOKS`."""
    return [SPLIT_BOOKS.get(ref.split(" ", 1)[0], "train") for ref in references]


def http_reader(base_url: str) -> Callable[[str], bytes]:
    """Read ``<base_url>/<path>`` over HTTP(S)."""

    def read(path: str) -> bytes:
        url = f"{base_url}/{path}"
        try:
            with urllib.request.urlopen(url, timeout=120) as response:
                return response.read()
        except OSError as error:
            raise FetchError(f"{url}: {error}") from error

    return read


def git_reader(git_dir: Path) -> Callable[[str], bytes]:
    """Read ``COMMIT:<path>`` from a local clone of the source repository."""

    def read(path: str) -> bytes:
        done = subprocess.run(
            ["git", f"--git-dir={git_dir}", "show", f"{COMMIT}:{path}"], capture_output=True, check=False
        )
        if done.returncode:
            raise FetchError(f"{git_dir} {COMMIT}:{path}: {done.stderr.decode(errors='replace').strip()}")
        return done.stdout

    return read


def verified_lines(
    read: Callable[[str], bytes], path: str, blob: str, verses: int | None = None
) -> list[str]:
    """The lines of ``path`` after checking its git blob SHA-1 against ``blob`` (and, given
    ``verses``, that it has one line per verse of vref.txt)."""
    data = read(path)
    if git_blob_sha1(data) != blob:
        raise FetchError(f"{path}: git blob {git_blob_sha1(data)} differs from the pinned {blob}")
    lines = data.decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if verses is not None and len(lines) != verses:
        raise FetchError(f"{path}: {len(lines)} lines, expected {verses} (one per verse of vref.txt)")
    return lines


def read_sources(path: Path) -> dict[str, dict[str, str]]:
    """``{code: row}`` of sources.csv (translation_id, source_path, git_blob, licence, ...)."""
    with open(path, encoding="utf-8", newline="") as handle:
        return {row["code"]: row for row in csv.DictReader(handle)}


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    """One line per item, through gradvac_ds's atomic write: an interrupted fetch leaves no part."""
    atomic_write_text(path, "\n".join(lines) + "\n")


def fetch(
    read: Callable[[str], bytes],
    sources: dict[str, dict[str, str]],
    languages: Sequence[str],
    out_dir: Path,
    vref: tuple[str, str] = VREF,
) -> list[str]:
    """Write vref.txt, split.txt and ``<code>.txt`` of ``languages`` (plus en) to ``out_dir``;
    language files already present are kept (a rerun fetches only what is missing). Returns the
    codes written."""
    unknown = sorted(set(languages) - set(sources))
    if unknown:
        raise FetchError(f"--languages: {unknown} not in sources.csv; allowed: {sorted(sources)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    references = verified_lines(read, *vref)
    _write_lines(out_dir / "vref.txt", references)
    _write_lines(out_dir / "split.txt", split_of(references))
    written = []
    for code in dict.fromkeys(["en", *languages]):
        target = out_dir / f"{code}.txt"
        if target.is_file():
            continue
        row = sources[code]
        lines = verified_lines(read, row["source_path"], row["git_blob"], len(references))
        _write_lines(target, clean_lines(lines, code))
        print(f"fetch_bible: {code} ({row['translation_id']}, {row['licence']}) -> {target}", file=sys.stderr)
        written.append(code)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns 0, or 2 with a message naming the problem."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA_DIR / "bible", help="output (data/eval/bible)")
    parser.add_argument("--sources", type=Path, default=DATA_DIR / "sources.csv", help="the pinned manifest")
    parser.add_argument("--languages", nargs="+", default=None, help="codes of sources.csv (default: all)")
    parser.add_argument("--git-dir", type=Path, default=None, help=f"a local clone of {REPOSITORY}")
    parser.add_argument("--base-url", default=BASE_URL, help="HTTP(S) root of the pinned commit's files")
    args = parser.parse_args(argv)
    sources = read_sources(args.sources)
    read = git_reader(args.git_dir) if args.git_dir is not None else http_reader(args.base_url.rstrip("/"))
    try:
        fetch(read, sources, args.languages or list(sources), args.out)
    except FetchError as error:
        print(f"fetch_bible: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
