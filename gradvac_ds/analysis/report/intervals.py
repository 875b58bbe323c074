"""Intervals and permutation tests for "gradient similarity tracks language distance".

Input: the similarity logs of one mode over S seeds (same tasks and groups), a language-distance
table and, optionally, the SentencePiece piece counts per language (``piece_counts.npz`` of the
trainer). Shapes: W_s windows of seed s, L groups, K tasks, U units (languages; see :mod:`.units`).

Measures of one merged window (count-weighted over the drawn windows; :func:`measures`):

- ``similarity[a|b]``: the run similarity of units a, b (groups equally weighted, as in analyze);
- ``rho``: Spearman of similarity and distance over unit pairs; ``rho[<direction>]`` on the tasks
  into (``xx-en``) or out of (``en-xx``) the pivot only;
- ``rho[<layer>]`` per transformer layer (``encoder.3``; the layer's groups averaged) and per
  other group; ``rho[encoder]``, ``rho[decoder]``, ``rho[embedding_output]``,
  ``rho[transformer_layers]`` on the groups of that side or class averaged;
- ``share[<class>]``: the part of the model-level mean similarity carried by the groups of each
  class: with m_l the mean off-diagonal unit similarity of group l, sum over the class of m_l
  divided by sum over all groups of m_l (classes: ``embedding_output``, ``transformer_layers``,
  ``other``); ``mean_similarity[<class>]`` the class's mean of m_l;
- vocabulary control: ``overlap`` of languages a, b = sum_v min(p_a(v), p_b(v)) with p the
  normalised piece counts (1 = the same piece distribution, 0 = no piece in common);
  ``rho_overlap`` = Spearman(similarity, overlap); ``partial_rho`` = partial Spearman of similarity
  and distance given overlap.

Intervals: :func:`~gradvac_ds.analysis.statistics.two_level_bootstrap` over seeds and, inside a
seed, over circular blocks of consecutive windows (``block``; default round(W^(1/3)) windows, since
neighbouring windows of one run share its training state and are correlated).
Mantel tests (unit relabelings) on the point estimate: similarity vs distance, vs overlap, and the
partial test of similarity vs distance given overlap.

Findings (:func:`distance_finding`): ``finding`` from ``rho`` and the Mantel test of similarity vs
distance; with piece counts also ``finding_given_overlap`` from ``partial_rho`` and the partial
Mantel test, i.e. whether distance still predicts similarity once shared vocabulary is accounted for.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gradvac_ds.analysis.log.reader import SimilarityLogData
from gradvac_ds.analysis.report.tables import DistanceTable
from gradvac_ds.analysis.report.units import (
    UnitMapping,
    group_mean,
    off_diagonal_mean,
    unit_mapping,
    unit_similarity,
)
from gradvac_ds.analysis.statistics import (
    block_length,
    interval_dict,
    mantel_test,
    partial_mantel_test,
    partial_spearman,
    spearman,
    two_level_bootstrap,
)
from gradvac_ds.grouping import stack_layer

EMBEDDING_OUTPUT, LAYERS, OTHER = "embedding_output", "transformer_layers", "other"
_EMBEDDING_OUTPUT = re.compile(r"(?:^|\.)(?:embedding|embeddings|output_layer|lm_head)(?:\.|$)")
DIRECTIONS = ("into pivot", "out of pivot")


def group_class(name: str) -> str:
    """``transformer_layers`` (inside ``encoder/decoder.layers.N``), ``embedding_output``
    (embeddings, output layer) or ``other`` (final layer norms, whole-model groups, ...)."""
    if stack_layer(name) is not None:
        return LAYERS
    return EMBEDDING_OUTPUT if _EMBEDDING_OUTPUT.search(name) else OTHER


def group_side(name: str) -> str | None:
    """``encoder`` or ``decoder`` for a group inside that stack, else None."""
    match = re.search(r"(?:^|\.)(encoder|decoder)(?:\.|$)", name)
    return match.group(1) if match else None


def layer_key(name: str) -> str:
    """``encoder.3`` for any group of encoder layer 3; the group's own name otherwise."""
    parsed = stack_layer(name)
    return f"{parsed[0]}.{parsed[1]}" if parsed else name


def piece_overlap(languages: Sequence[str], counts: np.ndarray, wanted: Sequence[str | None]) -> np.ndarray:
    """[U, U] overlap sum_v min(p_a(v), p_b(v)) of the piece distributions of ``wanted`` languages
    (rows of ``counts`` [n, V] in ``languages`` order; NaN where a language is missing)."""
    index = {lang: k for k, lang in enumerate(languages)}
    totals = counts.sum(1, keepdims=True)
    dist = counts / np.maximum(totals, 1)
    size = len(wanted)
    out = np.full((size, size), np.nan)
    for a, la in enumerate(wanted):
        for b, lb in enumerate(wanted):
            if la in index and lb in index:
                out[a, b] = np.minimum(dist[index[la]], dist[index[lb]]).sum()
    return out


def load_piece_counts(path: str | Path) -> tuple[list[str], np.ndarray]:
    """``languages`` and ``counts`` [n, V] from the trainer's piece_counts.npz."""
    with np.load(Path(path)) as data:
        if "languages" not in data or "counts" not in data:
            raise ValueError(f"{path}: expected arrays 'languages' and 'counts' (written by the trainer)")
        return [str(x) for x in data["languages"]], np.asarray(data["counts"], dtype=np.float64)


def distance_matrix(mapping: UnitMapping, table: DistanceTable) -> np.ndarray:
    """[U, U] distances of the units' languages (NaN where the table lacks the pair)."""
    size = len(mapping.units)
    out = np.full((size, size), np.nan)
    for a, la in enumerate(mapping.unit_language):
        for b, lb in enumerate(mapping.unit_language):
            value = table.get(la, lb) if la and lb and la != lb else None
            out[a, b] = np.nan if value is None else value
    return out


def _upper(matrix: np.ndarray) -> np.ndarray:
    return matrix[np.triu_indices(len(matrix), k=1)]


def _rho(sim: np.ndarray, dist: np.ndarray) -> float:
    return spearman(_upper(sim), _upper(dist))


class Measures:
    """The measures of the module docstring for fixed tasks, groups, distances and overlap."""

    def __init__(
        self,
        task_names: Sequence[str],
        group_names: Sequence[str],
        distance: DistanceTable,
        overlap: tuple[list[str], np.ndarray] | None,
    ) -> None:
        self.mapping = unit_mapping(task_names)
        self.groups = list(group_names)
        self.distance = distance_matrix(self.mapping, distance)
        self.overlap = (
            piece_overlap(overlap[0], overlap[1], self.mapping.unit_language) if overlap is not None else None
        )
        self.directions = {}
        for code, label in enumerate(DIRECTIONS):
            tasks = np.nonzero(self.mapping.task_direction == code)[0]
            if 0 < len(tasks) < len(task_names):
                sub = unit_mapping([task_names[k] for k in tasks])
                order = [sub.units.index(u) if u in sub.units else None for u in self.mapping.units]
                self.directions[label] = (tasks, sub, order)
        self.layer_keys = list(dict.fromkeys(layer_key(name) for name in self.groups))
        self.selections = {
            key: [l for l, n in enumerate(self.groups) if layer_key(n) == key] for key in self.layer_keys
        }
        for side in ("encoder", "decoder"):
            self.selections[side] = [l for l, n in enumerate(self.groups) if group_side(n) == side]
        for cls in (EMBEDDING_OUTPUT, LAYERS):
            self.selections[cls] = [l for l, n in enumerate(self.groups) if group_class(n) == cls]
        shape = (len(self.groups), len(task_names), len(task_names))
        self.names = list(self(np.zeros(shape), np.ones(shape)))

    def __call__(self, cos_sum: np.ndarray, count: np.ndarray) -> dict[str, float]:
        """All measures from summed cosines and counts [L, K, K] of the drawn windows."""
        mean = np.where(count > 0, cos_sum / np.maximum(count, 1), np.nan)
        units = self.mapping.units
        sim = unit_similarity(*group_mean(mean, count), self.mapping)
        out = {
            f"similarity[{units[a]}|{units[b]}]": float(sim[a, b])
            for a in range(len(units))
            for b in range(a + 1, len(units))
        }
        out["mean_similarity"] = float(off_diagonal_mean(sim))
        out["rho"] = _rho(sim, self.distance)
        if self.overlap is not None:
            out["rho_overlap"] = _rho(sim, self.overlap)
            out["partial_rho"] = partial_spearman(_upper(sim), _upper(self.distance), _upper(self.overlap))
        for label, (tasks, sub, order) in self.directions.items():
            part = unit_similarity(
                *group_mean(mean[:, tasks][:, :, tasks], count[:, tasks][:, :, tasks]), sub
            )
            present = [k for k, o in enumerate(order) if o is not None]
            idx = [order[k] for k in present]
            out[f"rho[{label}]"] = _rho(part[np.ix_(idx, idx)], self.distance[np.ix_(present, present)])
        per_group = unit_similarity(mean, count, self.mapping)
        for key, chosen in self.selections.items():
            if chosen:
                with warnings.catch_warnings():  # unit pairs no chosen group observed stay NaN
                    warnings.simplefilter("ignore", RuntimeWarning)
                    block = np.nanmean(per_group[chosen], axis=0)
                out[f"rho[{key}]"] = _rho(block, self.distance)
        profile = off_diagonal_mean(per_group)
        classes = np.array([group_class(n) for n in self.groups])
        total = np.nansum(profile)
        for cls in (EMBEDDING_OUTPUT, LAYERS, OTHER):
            values = profile[classes == cls]
            out[f"mean_similarity[{cls}]"] = (
                float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
            )
            out[f"share[{cls}]"] = float(np.nansum(values) / total) if total != 0 else float("nan")
        return out


def similarity_intervals(
    logs: Sequence[SimilarityLogData],
    distance: DistanceTable,
    overlap: tuple[list[str], np.ndarray] | None = None,
    *,
    resamples: int = 1000,
    permutations: int = 9999,
    level: float = 0.95,
    alpha: float = 0.05,
    seed: int = 0,
    block: int | None = None,
) -> dict[str, Any]:
    """Bootstrap intervals of every measure and the Mantel tests (see the module docstring)."""
    if not logs:
        raise ValueError("similarity_intervals needs at least one similarity log")
    first = logs[0]
    for log in logs[1:]:
        if log.task_names != first.task_names or log.group_names != first.group_names:
            raise ValueError(f"{log.path}: tasks or groups differ from {first.path}")
    measures = Measures(first.task_names, first.group_names, distance, overlap)
    windows = [w for log in logs for w in log.windows]
    sums = np.stack([np.where(w.cos_count > 0, w.cos_mean, 0.0) * w.cos_count for w in windows])
    counts = np.stack([w.cos_count for w in windows]).astype(np.float64)
    groups, start = [], 0
    for log in logs:
        groups.append(list(range(start, start + len(log.windows))))
        start += len(log.windows)
    names = list(measures.names)

    def statistic(drawn: list[list[int]]) -> np.ndarray:
        chosen = [i for group in drawn for i in group]
        values = measures(sums[chosen].sum(0), counts[chosen].sum(0))
        return np.array([values[name] for name in names])

    interval = two_level_bootstrap(groups, statistic, resamples, level, seed, block)
    estimates = {name: interval_dict(interval, k) for k, name in enumerate(names)}
    sim = unit_similarity(*group_mean(*_merged(sums, counts)), measures.mapping)
    tests = {"similarity_vs_distance": vars(mantel_test(sim, measures.distance, permutations, seed=seed))}
    if measures.overlap is not None:
        tests["similarity_vs_overlap"] = vars(mantel_test(sim, measures.overlap, permutations, seed=seed))
        tests["similarity_vs_distance_given_overlap"] = vars(
            partial_mantel_test(sim, measures.distance, measures.overlap, permutations, seed=seed)
        )
    findings = {"finding": distance_finding(estimates["rho"], tests["similarity_vs_distance"], alpha)}
    if measures.overlap is not None:
        findings["finding_given_overlap"] = distance_finding(
            estimates["partial_rho"], tests["similarity_vs_distance_given_overlap"], alpha
        )
    notes = []
    if len(windows) < 2:
        notes.append("one training window in all: the bootstrap intervals have zero width (use more steps)")
    if len(logs) < 2:
        notes.append("one seed: the intervals cover training windows only, not seed-to-seed variation")
    return {
        "notes": notes,
        "seeds": len(logs),
        "windows": [len(log.windows) for log in logs],
        "units": measures.mapping.units,
        "distance_column": distance.column,
        "resamples": resamples,
        "block_windows": [min(block or block_length(len(log.windows)), len(log.windows)) for log in logs],
        "level": level,
        "alpha": alpha,
        "measures": estimates,
        "mantel": tests,
        **findings,
    }


def _merged(sums: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    total, count = sums.sum(0), counts.sum(0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan), count


def distance_finding(rho: dict[str, Any], mantel: dict[str, Any], alpha: float) -> str:
    """ "holds" (similarity falls with distance: interval below 0 and Mantel p < alpha), "reversed"
    (interval above 0 and p < alpha), else "not significant"."""
    p = mantel.get("p_value")
    if rho["low"] is None or rho["high"] is None or p is None or p >= alpha:
        return "not significant"
    if rho["high"] < 0:
        return "holds"
    if rho["low"] > 0:
        return "reversed"
    return "not significant"
