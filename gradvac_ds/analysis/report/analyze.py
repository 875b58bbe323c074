"""analyze_run: a run's similarity log -> figures, report.json and report.txt.

Quantities (L groups, K tasks, U units; see :mod:`.units` for tasks -> units):
- run similarity: the count-weighted mean cosine per (group, task pair) over the run, averaged over
  the selected groups (each group equally; ``groups`` is a regular expression on group names, all
  groups by default), then aggregated to units -> sim [U, U];
- per-window similarity: the same per window -> [W, U, U] (similarity over training);
- layer profile: per group, the mean of the unit similarity over unit pairs -> [L];
- fire rate of task i towards j: fired / evaluated, summed over groups and steps -> [K, K];
  mean |coefficient| likewise over the fired evaluations;
- target warm-up (GradVac runs): how much of its EMA targets' weight the observed cosines carry
  after the steps each task pair spent together (:func:`target_warmup`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gradvac_ds.analysis.log.reader import SimilarityLogData, load_similarity_log
from gradvac_ds.analysis.log.window import Window
from gradvac_ds.analysis.report import plots
from gradvac_ds.analysis.report.layers import layer_profile
from gradvac_ds.analysis.report.metrics import distance_correlation, family_agreement, similarity_linkage
from gradvac_ds.analysis.report.output import jsonable, write_json, write_text
from gradvac_ds.analysis.report.tables import (
    DistanceTable,
    FamilyTable,
    distances_from_mapping,
    families_from_mapping,
    load_distances,
    load_families,
)
from gradvac_ds.analysis.report.units import (
    LANGUAGE,
    UnitMapping,
    group_mean,
    off_diagonal_mean,
    unit_mapping,
    unit_similarity,
)
from gradvac_ds.analysis.statistics import mantel_test

DEFAULT_PAIRS_EACH = 3
"""Without --pairs, the over-time plot shows this many most and least similar pairs."""


def pair_key(a: str, b: str) -> str:
    """The label of a pair of units or tasks: "a|b"."""
    return f"{a}|{b}"


def select_groups(group_names: Sequence[str], pattern: str | None) -> list[int]:
    """Indices of the groups whose name matches the regular expression ``pattern`` (all if None)."""
    if pattern is None:
        return list(range(len(group_names)))
    try:
        regex = re.compile(pattern)
    except re.error as err:
        raise ValueError(f"--groups: {pattern!r} is not a regular expression: {err}") from None
    chosen = [l for l, name in enumerate(group_names) if regex.search(name)]
    if not chosen:
        raise ValueError(f"--groups: {pattern!r} matches none of the groups {list(group_names)}")
    return chosen


def parse_pairs(spec: Sequence[str] | str, units: Sequence[str]) -> list[tuple[int, int]]:
    """Unit index pairs from "a|b,c|d" (or a list of "a|b"); ValueError names an unknown unit."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    pairs = []
    for item in (item.strip() for item in items):
        names = item.split("|")
        if len(names) != 2 or names[0] == names[1]:
            raise ValueError(f"--pairs: {item!r} is not two different names joined by '|'")
        missing = [name for name in names if name not in units]
        if missing:
            raise ValueError(f"--pairs: unknown {missing} in {item!r}; known: {', '.join(units)}")
        pairs.append((units.index(names[0]), units.index(names[1])))
    return pairs


def extreme_pairs(sim: np.ndarray, count: int) -> list[tuple[int, int]]:
    """The ``count`` most and ``count`` least similar unit pairs (a < b, finite), most similar first."""
    rows, cols = np.triu_indices(len(sim), k=1)
    values = sim[rows, cols]
    order = [k for k in np.argsort(-values) if np.isfinite(values[k])]
    chosen = order if len(order) <= 2 * count else order[:count] + order[-count:]
    return [(int(rows[k]), int(cols[k])) for k in chosen]


def _as_families(families: str | Path | Mapping[str, str] | None, column: str | None) -> FamilyTable | None:
    if families is None or isinstance(families, FamilyTable):
        return families
    if isinstance(families, Mapping):
        return families_from_mapping(families)
    return load_families(families, column)


def _as_distances(
    distances: str | Path | Mapping[tuple[str, str], float] | None, column: str | None
) -> DistanceTable | None:
    if distances is None or isinstance(distances, DistanceTable):
        return distances
    if isinstance(distances, Mapping):
        return distances_from_mapping(distances)
    return load_distances(distances, column)


def _fire_statistics(log: SimilarityLogData, total: Window) -> dict[str, Any]:
    """Fire rate and mean |coefficient| per ordered task pair "i|j" (i corrected towards j) and overall,
    from ``total``, the log's windows merged."""
    off = ~np.eye(len(log.task_names), dtype=bool)
    evaluated = np.where(off, total.cos_count.sum(0), 0)
    fired = np.where(off, total.fire_count.sum(0), 0)
    coefficient_sum = (np.where(total.fire_count > 0, total.coef_abs_mean, 0.0) * total.fire_count).sum(0)
    rate = np.where(evaluated > 0, fired / np.maximum(evaluated, 1), np.nan)
    coefficient = np.where(fired > 0, coefficient_sum / np.maximum(fired, 1), np.nan)
    names = log.task_names
    pairs = [(i, j) for i in range(len(names)) for j in range(len(names)) if i != j]
    return {
        "rate_matrix": rate,
        "coefficient_matrix": coefficient,
        "fire_rate": {
            "overall": fired.sum() / evaluated.sum() if evaluated.sum() else None,
            "per_pair": {pair_key(names[i], names[j]): float(rate[i, j]) for i, j in pairs},
        },
        "mean_abs_coefficient": {
            "overall": coefficient_sum[off].sum() / fired.sum() if fired.sum() else None,
            "per_pair": {pair_key(names[i], names[j]): float(coefficient[i, j]) for i, j in pairs},
        },
    }


def target_warmup(log: SimilarityLogData, total: Window) -> dict[str, Any] | None:
    """How far GradVac's EMA targets can have moved from their start at 0 (None unless the log's
    metadata says mode gradvac and gives beta).

    A target phi_hat[l, i, j] moves only on the steps where tasks i and j are both present; after n
    such steps it is ``(1 - beta)^n * 0 + sum_t beta (1 - beta)^(n - t) phi_t``, so its observed
    cosines carry the weight ``1 - (1 - beta)^n`` and the zero start the rest: while that weight is
    small GradVac acts like PCGrad (target about 0). n_ij is the most steps over groups on which the
    pair's cosine was evaluated (``total``: the log's windows merged); reported as the median and
    the minimum over task pairs."""
    beta = log.metadata.get("beta")
    if log.metadata.get("mode") != "gradvac" or not isinstance(beta, int | float):
        return None
    counts = total.cos_count.max(axis=0)
    together = counts[np.triu_indices(len(log.task_names), k=1)].astype(np.float64)
    if together.size == 0:
        return None
    median, least = float(np.median(together)), float(together.min())
    return {
        "beta": float(beta),
        "steps": log.num_steps,
        "steps_together": {"median": median, "min": least},
        "observed_weight": {"median": 1 - (1 - beta) ** median, "min": 1 - (1 - beta) ** least},
    }


def _family_results(
    sim: np.ndarray, mapping: UnitMapping, table: FamilyTable | None, notes: list[str]
) -> dict[str, Any]:
    empty = {
        "adjusted_rand_index": None,
        "intra_family_mean_similarity": None,
        "inter_family_mean_similarity": None,
        "num_families": 0,
        "clusters": {},
        "families": {},
    }
    if table is None:
        notes.append("family results are null: no --families table was given")
        return empty
    labels = [table.get(language) if language else None for language in mapping.unit_language]
    if not any(mapping.unit_language):
        notes.append("family results are null: the units have no language (no pivot language to strip)")
    known = zip(mapping.units, mapping.unit_language, labels, strict=True)
    missing = [unit for unit, language, label in known if language and not label]
    if missing:
        notes.append(f"no family in {table.source} for {', '.join(missing)}; left out of family results")
    agreement = family_agreement(sim, mapping.units, labels)
    if agreement.adjusted_rand_index is None:
        notes.append(
            f"adjusted_rand_index is null: {agreement.num_families} families over "
            f"{len(agreement.units_used)} units (needs >= 2 families and >= 3 units)"
        )
    if agreement.intra_family_mean_similarity is None:
        notes.append("intra_family_mean_similarity is null: no two units share a family")
    if agreement.inter_family_mean_similarity is None:
        notes.append("inter_family_mean_similarity is null: no two units differ in family")
    return {
        "adjusted_rand_index": agreement.adjusted_rand_index,
        "intra_family_mean_similarity": agreement.intra_family_mean_similarity,
        "inter_family_mean_similarity": agreement.inter_family_mean_similarity,
        "num_families": agreement.num_families,
        "clusters": agreement.clusters,
        "families": {unit: label for unit, label in zip(mapping.units, labels, strict=True) if label},
    }


def _distance_results(
    sim: np.ndarray,
    mapping: UnitMapping,
    table: DistanceTable | None,
    out_dir: Path,
    notes: list[str],
    figures: list[str],
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "spearman_rho": None,
        "spearman_p": None,
        "spearman_pairs": 0,
        "mantel_p": None,
        "mantel_permutations": 0,
        "distance_column": None,
    }
    if table is None:
        notes.append("spearman_rho/spearman_p are null: no --distances table was given")
        return result
    size = len(mapping.units)
    pair_distance = np.full((size, size), np.nan)
    for a in range(size):
        for b in range(size):
            la, lb = mapping.unit_language[a], mapping.unit_language[b]
            value = table.get(la, lb) if la and lb and la != lb else None
            pair_distance[a, b] = np.nan if value is None else value
    if table.alternatives:
        notes.append(
            f"distance column '{table.column}' of {table.source} was used; its other numeric "
            f"columns are {', '.join(table.alternatives)} (pick one with --distance-column)"
        )
    correlation = distance_correlation(sim, pair_distance)
    # spearman_p treats the pairs as independent; each unit is in size - 1 of them, so the Mantel
    # test (relabelling the units) is the p that holds
    mantel = mantel_test(sim, pair_distance) if correlation.rho is not None else None
    result.update(
        spearman_rho=correlation.rho,
        spearman_p=correlation.p_value,
        spearman_pairs=correlation.num_pairs,
        mantel_p=None if mantel is None else mantel.p_value,
        mantel_permutations=0 if mantel is None else mantel.permutations,
        distance_column=table.column,
    )
    if correlation.rho is None:
        notes.append(
            f"spearman_rho is null: {correlation.num_pairs} unit pairs have both a similarity and a "
            f"distance in {table.source} (needs >= 3, not constant)"
        )
    else:
        plots.plot_similarity_vs_distance(correlation, table.column, out_dir / "similarity_vs_distance.png")
        figures.append("similarity_vs_distance.png")
    return result


def analyze_run(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    families: str | Path | Mapping[str, str] | FamilyTable | None = None,
    distances: str | Path | Mapping[tuple[str, str], float] | DistanceTable | None = None,
    pairs: Sequence[str] | str | None = None,
    group_by: str = LANGUAGE,
    distance_column: str | None = None,
    family_column: str | None = None,
    groups: str | None = None,
) -> dict[str, Any]:
    """Analyse the similarity log of ``run_dir``; write figures and reports to ``out_dir``.

    families: CSV path or {language: family}; distances: CSV path or {(lang_a, lang_b): distance};
    pairs: unit pairs "a|b" for the over-time plot; group_by: "language" or "task";
    groups: regular expression selecting the groups that the unit similarity averages over.
    Returns the report.json contents (NaN as None); out_dir defaults to ``run_dir/analysis``.
    """
    log = load_similarity_log(run_dir)
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    family_table = _as_families(families, family_column)
    distance_table = _as_distances(distances, distance_column)
    mapping = unit_mapping(log.task_names, group_by)
    notes: list[str] = []
    figures: list[str] = []

    total = log.total()
    selected = select_groups(log.group_names, groups)
    sim = unit_similarity(*group_mean(total.cos_mean[selected], total.cos_count[selected]), mapping)
    units = mapping.units
    family_results = _family_results(sim, mapping, family_table, notes)
    label = "languages" if mapping.kind == LANGUAGE else "tasks"
    if len(units) >= 2:
        title = f"Mean gradient cosine between {label}\n(ordered by average linkage on 1 - cos)"
        family_title = family_table.column if family_table else "family"
        plots.plot_similarity_heatmap(
            sim,
            units,
            similarity_linkage(sim),
            title,
            out / "similarity_heatmap.png",
            family_results["families"],
            family_title,
        )
        figures.append("similarity_heatmap.png")
    else:
        notes.append("no heatmap or clustering: fewer than 2 units")

    chosen = parse_pairs(pairs, units) if pairs else extreme_pairs(sim, DEFAULT_PAIRS_EACH)
    stacked_mean = np.stack([w.cos_mean for w in log.windows])
    stacked_count = np.stack([w.cos_count for w in log.windows])
    over_time = unit_similarity(*group_mean(stacked_mean[:, selected], stacked_count[:, selected]), mapping)
    if chosen:
        series = {pair_key(units[a], units[b]): over_time[:, a, b] for a, b in chosen}
        plots.plot_similarity_over_time(
            log.step_centres, series, off_diagonal_mean(over_time), out / "similarity_over_time.png"
        )
        figures.append("similarity_over_time.png")

    per_group = off_diagonal_mean(unit_similarity(total.cos_mean, total.cos_count, mapping))
    profile = layer_profile(log.group_names, per_group)
    plots.plot_layer_profile(profile, out / "layer_profile.png")
    figures.append("layer_profile.png")

    fire = _fire_statistics(log, total)
    if len(log.task_names) >= 2:
        plots.plot_fire_rate(
            fire["rate_matrix"], fire["coefficient_matrix"], log.task_names, out / "fire_rate.png"
        )
        figures.append("fire_rate.png")

    results: dict[str, Any] = {
        "run_dir": str(run_dir),
        "log": str(log.path),
        "num_steps": log.num_steps,
        "step_range": [log.windows[0].step_first, log.windows[-1].step_last],
        "num_windows": len(log.windows),
        "window_length": log.window_length,
        "unit": mapping.kind,
        "unit_note": mapping.note,
        "pivot": mapping.pivot,
        "languages": units,
        "tasks": log.task_names,
        "groups": log.group_names,
        "similarity_groups": [log.group_names[l] for l in selected],
        "metadata": log.metadata,
        "mean_similarity": float(off_diagonal_mean(sim)),
        "similarity": {
            pair_key(units[a], units[b]): float(sim[a, b])
            for a in range(len(units))
            for b in range(a + 1, len(units))
        },
        "layer_profile": {
            **{stack: dict(zip(*layers, strict=True)) for stack, layers in profile.layers.items()},
            "other": profile.other,
        },
        "fire_rate": fire["fire_rate"],
        "mean_abs_coefficient": fire["mean_abs_coefficient"],
        "target_warmup": target_warmup(log, total),
        **_distance_results(sim, mapping, distance_table, out, notes, figures),
        **family_results,
    }
    results = jsonable({**results, "notes": notes, "figures": figures})
    write_json(results, out / "report.json")
    write_text(results, out / "report.txt")
    return results
