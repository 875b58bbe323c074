"""The similarity part of a comparison: per mode, intervals over its seeds' similarity logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gradvac_ds.analysis.compare.runs import RunSet
from gradvac_ds.analysis.log.reader import load_similarity_log
from gradvac_ds.analysis.log.storage import META_NAME, log_dir
from gradvac_ds.analysis.report.intervals import load_piece_counts, similarity_intervals
from gradvac_ds.analysis.report.tables import DistanceTable

_HEADLINE = ("rho", "rho_overlap", "partial_rho", "mean_similarity")


def similarity_by_mode(
    runs: RunSet,
    distances: DistanceTable,
    pieces: Path | None,
    *,
    alpha: float,
    resamples: int,
    permutations: int,
    steps: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """``{mode: similarity_intervals(...)}`` for each mode whose every seed has a similarity log;
    ``steps = (first, stop)`` keeps the windows inside GradVac steps first <= step < stop."""
    overlap = load_piece_counts(pieces) if pieces is not None else None
    out = {}
    for mode in runs.modes:
        folders = [runs.folders[seed] / mode for seed in runs.seeds]
        if not all((log_dir(folder) / META_NAME).is_file() for folder in folders):
            continue
        logs = [load_similarity_log(folder) for folder in folders]
        if steps is not None:
            logs = [log.steps_between(*steps) for log in logs]
        first = min(log.windows[0].step_first for log in logs)
        covered = [first, max(log.windows[-1].step_last for log in logs)]
        out[mode] = {
            **similarity_intervals(
                logs, distances, overlap, resamples=resamples, permutations=permutations, alpha=alpha
            ),
            "steps": covered,
        }
    return out


def _interval(cell: dict[str, Any]) -> str:
    if cell["estimate"] is None:
        return "n/a"
    low, high = cell["low"], cell["high"]
    bounds = f"[{low:+.3f}, {high:+.3f}]" if low is not None and high is not None else "[n/a]"
    return f"{cell['estimate']:+.3f} {bounds}"


def format_similarity(similarity: dict[str, Any]) -> str:
    """Text: per mode the headline measures with intervals, the Mantel tests, per-layer rho, shares."""
    lines = []
    for mode, result in similarity.items():
        measures, level = result["measures"], result["level"]
        lines += [
            "",
            f"gradient similarity vs language distance ({result['distance_column']}), {mode}: "
            f"{result['seeds']} seed(s), steps {result['steps'][0]}-{result['steps'][1]}, "
            f"{sum(result['windows'])} windows; {level:.0%} bootstrap intervals "
            f"(seeds, then blocks of {'/'.join(map(str, result['block_windows']))} consecutive windows)",
        ]
        width = max(len(name) for name in measures) + 2
        lines += [f"  {name:<{width}}{_interval(measures[name])}" for name in _HEADLINE if name in measures]
        for name, test in result["mantel"].items():
            rho, p = test["rho"], test["p_value"]
            shown = "n/a" if rho is None or p is None else f"rho {rho:+.3f}, p = {p:.4f}"
            count = f"{test['permutations']} permutations, {test['num_pairs']} pairs"
            lines.append(f"  Mantel {name}: {shown} ({count})")
        lines.append(f"  finding 'similarity falls with distance': {result['finding']}")
        if "finding_given_overlap" in result:
            lines.append(
                "  finding 'similarity falls with distance beyond shared vocabulary': "
                f"{result['finding_given_overlap']}"
            )
        per_part = [n for n in measures if n.startswith("rho[")]
        lines += [f"  {name:<{width}}{_interval(measures[name])}" for name in per_part]
        shares = [n for n in measures if n.startswith(("share[", "mean_similarity["))]
        lines += [f"  {name:<{width}}{_interval(measures[name])}" for name in shares]
        lines += [f"  note: {note}" for note in result["notes"]]
    return "\n".join(lines) + "\n"
