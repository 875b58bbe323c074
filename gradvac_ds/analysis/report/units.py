"""Analysis units (languages or tasks) and task-level -> unit-level similarity aggregation.

Tasks are language pairs "src-tgt". For language-level analysis a task stands for the language that
varies across tasks: the pivot is the one language common to all tasks (e.g. "en" in de-en, en-fr,
...), and task "de-en" maps to "de". Without a unique pivot (or with task names that are not
"src-tgt") the tasks themselves are the units.

The similarity of units a != b is the weighted mean of the task-level cosines over the task pairs
(i, j), i != j, with unit(i) = a and unit(j) = b, restricted to same-direction pairs (both into or
both out of the pivot) when any exist: the paper analyses X->En and En->X separately, and a
cross-direction pair compares gradients of different decoder languages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LANGUAGE = "language"
TASK = "task"


@dataclass(frozen=True)
class UnitMapping:
    """How tasks map to units.

    kind:           "language" or "task"
    units:          U unit labels
    task_unit:      int [K], the unit of each task
    task_direction: int [K], 0 = into the pivot, 1 = out of the pivot, -1 = no pivot
    unit_language:  U language codes used to look units up in distance/family tables (None: none)
    pivot:          the pivot language, if any
    note:           why the units are what they are, for the report
    """

    kind: str
    units: list[str]
    task_unit: np.ndarray
    task_direction: np.ndarray
    unit_language: list[str | None]
    pivot: str | None
    note: str

    def task_pairs(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Task index arrays (rows, cols) whose pairs feed unit pair (a, b); see the module docstring."""
        distinct = ~np.eye(len(self.task_unit), dtype=bool)
        rows, cols = np.nonzero((self.task_unit[:, None] == a) & (self.task_unit[None, :] == b) & distinct)
        same = self.task_direction[rows] == self.task_direction[cols]
        if same.any():
            return rows[same], cols[same]
        return rows, cols


def split_task(name: str) -> tuple[str, str] | None:
    """("de", "en") for "de-en"; None when the name is not two non-empty codes joined by '-'."""
    parts = name.split("-")
    if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
        return None
    return parts[0], parts[1]


def detect_pivot(task_names: Sequence[str]) -> str | None:
    """The single language common to all tasks, or None (unparseable names, none or several)."""
    pairs = [split_task(name) for name in task_names]
    if not pairs or any(pair is None for pair in pairs):
        return None
    common = set.intersection(*(set(pair) for pair in pairs if pair is not None))
    return common.pop() if len(common) == 1 else None


def unit_mapping(task_names: Sequence[str], group_by: str = LANGUAGE) -> UnitMapping:
    """Map tasks to units for ``group_by`` = "language" (falls back to tasks) or "task"."""
    if group_by not in (LANGUAGE, TASK):
        raise ValueError(f"group_by must be '{LANGUAGE}' or '{TASK}', got {group_by!r}")
    num_tasks = len(task_names)
    pivot = detect_pivot(task_names)
    varying: list[str | None] = [None] * num_tasks
    direction = np.full(num_tasks, -1)
    for k, pair in enumerate(split_task(name) for name in task_names):
        if pivot is not None and pair is not None:
            varying[k] = pair[0] if pair[1] == pivot else pair[1]
            direction[k] = 0 if pair[1] == pivot else 1
    if group_by == TASK or pivot is None:
        note = (
            "units are tasks (--group-by task)"
            if group_by == TASK
            else ("units are tasks: no single pivot language is common to all tasks")
        )
        return UnitMapping(TASK, list(task_names), np.arange(num_tasks), direction, varying, pivot, note)
    units = list(dict.fromkeys(language for language in varying if language is not None))
    task_unit = np.array([units.index(language) for language in varying if language is not None])
    note = f"units are languages: each task maps to its non-pivot language (pivot '{pivot}')"
    return UnitMapping(LANGUAGE, units, task_unit, direction, list(units), pivot, note)


def unit_similarity(cosine: np.ndarray, weight: np.ndarray, mapping: UnitMapping) -> np.ndarray:
    """Unit-level similarity [..., U, U] from task-level cosines [..., K, K] and weights [..., K, K].

    Entry (a, b), a != b: sum(w c) / sum(w) over the task pairs of :meth:`UnitMapping.task_pairs`
    with a finite cosine c and weight w > 0; NaN where there is none. The diagonal is 1.
    """
    num_units = len(mapping.units)
    out = np.full((*cosine.shape[:-2], num_units, num_units), np.nan)
    for a in range(num_units):
        out[..., a, a] = 1.0
        for b in range(num_units):
            if a == b:
                continue
            rows, cols = mapping.task_pairs(a, b)
            values = cosine[..., rows, cols]
            weights = np.where(np.isfinite(values), weight[..., rows, cols], 0.0)
            weighted = (np.where(weights > 0, values, 0.0) * weights).sum(-1)
            out[..., a, b] = _safe_ratio(weighted, weights.sum(-1))
    return out


def _safe_ratio(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    """total / count elementwise, NaN where count is 0."""
    out = np.full(np.shape(total), np.nan)
    np.divide(total, count, out=out, where=np.asarray(count) > 0)
    return out


def group_mean(cos_mean: np.ndarray, cos_count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average over the group axis: [..., L, K, K] -> mean [..., K, K] and summed count [..., K, K].

    Each group with data counts equally (as in the paper's model-level numbers); NaN where no group
    has data.
    """
    has_data = cos_count > 0
    groups = has_data.sum(-3)
    total = np.where(has_data, cos_mean, 0.0).sum(-3)
    return _safe_ratio(total, groups), cos_count.sum(-3)


def off_diagonal_mean(matrix: np.ndarray) -> np.ndarray:
    """Mean of the finite off-diagonal entries of [..., U, U] -> [...] (NaN where none)."""
    size = matrix.shape[-1]
    mask = ~np.eye(size, dtype=bool) & np.isfinite(matrix)
    count = mask.sum((-2, -1))
    return _safe_ratio(np.where(mask, matrix, 0.0).sum((-2, -1)), count)
