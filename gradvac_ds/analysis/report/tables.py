"""Language-distance and language-family tables from CSV, with column detection and clear errors.

Distances: a header row and at least three columns, or a header-less ``lang1,lang2,distance``
file. The language columns are the first two non-numeric columns; the distance column is the one
asked for, else a column named ``distance``, else the first numeric column (so the multi-column
layout ``code_a,code_b,glottolog_tree,...`` works as well as ``lang1,lang2,distance``).

Families: a header naming a language column (``code``, ``language``, ``lang``, ``language_code``;
else the first column) and a family column (the one asked for, else ``family``, else the second
column), or a header-less ``language,family`` file. Language codes are matched case-insensitively.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_LANGUAGE_HEADERS = ("code", "language", "lang", "language_code")
_HEADER_WORDS = {*_LANGUAGE_HEADERS, "family"}


@dataclass(frozen=True)
class DistanceTable:
    """Symmetric distances between languages: ``values[frozenset({a, b})]`` (codes lower-cased).

    ``alternatives`` names the table's other numeric columns (candidates for ``column``).
    """

    source: str
    column: str
    values: dict[frozenset[str], float]
    alternatives: tuple[str, ...] = ()

    def get(self, a: str, b: str) -> float | None:
        """The distance between languages a and b, or None when the table lacks the pair."""
        return self.values.get(frozenset((a.lower(), b.lower())))


@dataclass(frozen=True)
class FamilyTable:
    """Family label per language: ``families[code]`` (codes lower-cased)."""

    source: str
    column: str
    families: dict[str, str]

    def get(self, language: str) -> str | None:
        """The family of ``language``, or None when the table lacks it."""
        return self.families.get(language.lower())


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, stripped fields) of the non-blank, non-comment rows; all rows equally wide."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = [
            (number, [field.strip() for field in row])
            for number, row in enumerate(csv.reader(handle), start=1)
            if any(field.strip() for field in row) and not row[0].lstrip().startswith("#")
        ]
    if not rows:
        raise ValueError(f"{path}: the file holds no rows")
    width = len(rows[0][1])
    for number, fields in rows:
        if len(fields) != width:
            raise ValueError(
                f"{path} line {number}: expected {width} fields like the first row, got {len(fields)}"
            )
    return rows


def _numeric_columns(rows: list[tuple[int, list[str]]]) -> list[int]:
    """Indices of the columns whose non-empty values all parse as numbers (and that have one)."""
    width = len(rows[0][1])
    return [
        c
        for c in range(width)
        if any(fields[c] for _, fields in rows) and all(_is_number(f[c]) for _, f in rows if f[c])
    ]


def load_distances(path: str | Path, column: str | None = None) -> DistanceTable:
    """Read a language-distance CSV (layouts in the module docstring); ValueError names file and field."""
    path = Path(path)
    rows = _read_rows(path)
    first = rows[0][1]
    if len(first) == 3 and _is_number(first[2]) and column is None:
        header, data, col = ["lang1", "lang2", "distance"], rows, 2
        languages = [0, 1]
    else:
        header, data = first, rows[1:]
        if len(header) < 3 or not data:
            raise ValueError(
                f"{path}: expected a header and rows with two language columns and a distance "
                f"column, got header {header}"
            )
        numeric = _numeric_columns(data)
        languages = [c for c in range(len(header)) if c not in numeric][:2]
        if len(languages) < 2:
            raise ValueError(f"{path}: could not find two language columns (non-numeric) in header {header}")
        col = _pick_distance_column(path, header, numeric, column)
    values: dict[frozenset[str], float] = {}
    for number, fields in data:
        a, b, text = fields[languages[0]].lower(), fields[languages[1]].lower(), fields[col]
        if not a or not b or a == b or not text:
            continue
        if not _is_number(text):
            raise ValueError(f"{path} line {number}: field '{header[col]}' is not a number: {text!r}")
        key, value = frozenset((a, b)), float(text)
        if key in values and values[key] != value:
            raise ValueError(
                f"{path} line {number}: pair {a}-{b} appears twice with different "
                f"'{header[col]}' ({values[key]} and {value})"
            )
        values[key] = value
    if not values:
        raise ValueError(f"{path}: no language pair with a '{header[col]}' value")
    others = tuple(header[c] for c in _numeric_columns(data) if c != col)
    return DistanceTable(source=str(path), column=header[col], values=values, alternatives=others)


def _pick_distance_column(path: Path, header: list[str], numeric: list[int], column: str | None) -> int:
    """Index of the distance column: ``column`` if given, else 'distance', else the first numeric one."""
    lowered = [name.lower() for name in header]
    if column is not None:
        if column.lower() not in lowered:
            raise ValueError(
                f"{path}: no column '{column}'; numeric columns are {[header[c] for c in numeric]}"
            )
        return lowered.index(column.lower())
    if "distance" in lowered:
        return lowered.index("distance")
    if not numeric:
        raise ValueError(f"{path}: no numeric distance column in header {header}")
    return numeric[0]


def load_families(path: str | Path, column: str | None = None) -> FamilyTable:
    """Read a language -> family CSV (layouts in the module docstring); ValueError names file and field."""
    path = Path(path)
    rows = _read_rows(path)
    first = [name.lower() for name in rows[0][1]]
    if _HEADER_WORDS & set(first) or column is not None:
        data = rows[1:]
        language = next((first.index(name) for name in _LANGUAGE_HEADERS if name in first), 0)
        wanted = (column or "family").lower()
        if wanted in first:
            family = first.index(wanted)
        elif column is not None:
            raise ValueError(f"{path}: no column '{column}' in header {rows[0][1]}")
        else:
            family = 1 if language != 1 else 0
        if family == language or len(first) < 2:
            raise ValueError(
                f"{path}: could not tell the language and family columns apart in header {rows[0][1]}"
            )
        family_name = rows[0][1][family]
    elif len(first) == 2:
        data, language, family, family_name = rows, 0, 1, "family"
    else:
        raise ValueError(
            f"{path}: expected a header with a 'family' column, or two columns "
            f"language,family; got first row {rows[0][1]}"
        )
    families: dict[str, str] = {}
    for number, fields in data:
        code, label = fields[language].lower(), fields[family]
        if not code or not label:
            continue
        if families.get(code, label) != label:
            raise ValueError(
                f"{path} line {number}: language '{code}' has two values for "
                f"'{family_name}': {families[code]!r} and {label!r}"
            )
        families[code] = label
    if not families:
        raise ValueError(f"{path}: no language has a '{family_name}' value")
    return FamilyTable(source=str(path), column=family_name, families=families)


def distances_from_mapping(values: Mapping[tuple[str, str], float]) -> DistanceTable:
    """A DistanceTable from ``{(a, b): distance}`` (for calls from Python)."""
    return DistanceTable(
        "<mapping>", "distance", {frozenset((a.lower(), b.lower())): float(d) for (a, b), d in values.items()}
    )


def families_from_mapping(values: Mapping[str, str]) -> FamilyTable:
    """A FamilyTable from ``{language: family}`` (for calls from Python)."""
    return FamilyTable("<mapping>", "family", {code.lower(): str(label) for code, label in values.items()})
