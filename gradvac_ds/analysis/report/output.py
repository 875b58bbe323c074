"""Write the analysis results as report.json (machine-readable) and report.txt (for people)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def jsonable(value: Any) -> Any:
    """``value`` as JSON will hold it: non-finite floats -> None, mapping keys -> str, tuples -> lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value


def write_json(results: Mapping[str, Any], path: Path) -> Path:
    """report.json from :func:`jsonable` ``results``."""
    path.write_text(json.dumps(jsonable(results), indent=2, allow_nan=False) + "\n")
    return path


def _number(value: float | None, fmt: str = ".3f") -> str:
    return "n/a" if value is None or not math.isfinite(value) else format(value, fmt)


def _top_pairs(similarity: Mapping[str, float | None], count: int) -> list[str]:
    finite = sorted(((v, k) for k, v in similarity.items() if v is not None), reverse=True)
    most = [f"  {k}: {_number(v)}" for v, k in finite[:count]]
    least = [f"  {k}: {_number(v)}" for v, k in finite[-count:][::-1]] if len(finite) > count else []
    return ["most similar pairs:", *most, *(["least similar pairs:", *least] if least else [])]


def _spearman_line(results: Mapping[str, Any]) -> str:
    if results["distance_column"] is None:
        return "Spearman rho (similarity vs distance): n/a, no --distances table was given"
    return (
        f"Spearman rho (similarity vs distance '{results['distance_column']}'): "
        f"{_number(results['spearman_rho'])} over {results['spearman_pairs']} pairs; Mantel p = "
        f"{_number(results['mantel_p'], '.3g')} ({results['mantel_permutations']} relabellings of the "
        f"units); p = {_number(results['spearman_p'], '.3g')} if the pairs were independent, which they "
        "are not (they share units)"
    )


def _warmup_lines(warmup: Mapping[str, Any] | None) -> list[str]:
    if warmup is None:
        return []
    together, weight = warmup["steps_together"], warmup["observed_weight"]
    return [
        f"GradVac targets (EMA, beta {warmup['beta']:g}): task pairs present together on a median "
        f"{together['median']:g} of {warmup['steps']} steps (min {together['min']:g}); the targets weigh "
        f"their observed cosines {weight['median']:.0%} (min {weight['min']:.0%}) and their zero start "
        "the rest (while that weight is small, GradVac acts much like PCGrad)"
    ]


def write_text(results: Mapping[str, Any], path: Path) -> Path:
    """report.txt: the headline numbers, the reasons for any missing value, and the figure list."""
    first, last = results["step_range"]
    fire = results["fire_rate"]
    coefficient = results["mean_abs_coefficient"]
    lines = [
        f"GradVac gradient-similarity analysis of {results['run_dir']}",
        f"steps recorded: {results['num_steps']} (steps {first}..{last}, {results['num_windows']} windows)",
        f"tasks: {', '.join(results['tasks'])}",
        f"parameter groups: {len(results['groups'])}",
        f"{results['unit_note']}",
        f"{results['unit']}s: {', '.join(results['languages'])}",
        "",
        f"mean gradient cosine over {results['unit']} pairs: {_number(results['mean_similarity'])}",
        *_top_pairs(results["similarity"], 3),
        "",
        f"GradVac fire rate overall: {_number(fire['overall'])}; mean |coefficient| when fired: "
        f"{_number(coefficient['overall'], '.3g')}",
        *_warmup_lines(results["target_warmup"]),
        "",
        _spearman_line(results),
        f"adjusted Rand index (dendrogram cut into {results['num_families']} clusters vs families): "
        f"{_number(results['adjusted_rand_index'])}",
        f"intra-family mean similarity: {_number(results['intra_family_mean_similarity'])}",
        f"inter-family mean similarity: {_number(results['inter_family_mean_similarity'])}",
    ]
    if results["notes"]:
        lines += ["", "notes:", *(f"  - {note}" for note in results["notes"])]
    lines += ["", "figures:", *(f"  {name}" for name in results["figures"])]
    path.write_text("\n".join(lines) + "\n")
    return path
