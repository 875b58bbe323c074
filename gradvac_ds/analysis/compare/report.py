"""compare_runs: modes x seeds -> the statistics of :mod:`.comparison` (and, with distances, of
:mod:`.similarity`), written as compare.json, the text of :mod:`.text` as compare.txt, and a plot."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gradvac_ds.analysis.compare.comparison import (
    compare_modes,
    compare_validation,
    mean_sd,
    seed_scores,
    summary,
    validation_by_step,
    validation_histories,
    validation_losses,
)
from gradvac_ds.analysis.compare.plots import plot_scores
from gradvac_ds.analysis.compare.runs import load_runs
from gradvac_ds.analysis.compare.similarity import format_similarity, similarity_by_mode
from gradvac_ds.analysis.compare.text import format_report
from gradvac_ds.analysis.report.output import jsonable, write_json
from gradvac_ds.analysis.report.tables import load_distances


def compare_runs(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    baseline: str | None = None,
    alpha: float = 0.05,
    min_effect: float = 0.1,
    min_loss_effect: float = 0.001,
    bootstrap_samples: int = 1000,
    randomisation_trials: int = 10000,
    tokenize: str = "13a",
    distances: str | Path | None = None,
    distance_column: str | None = None,
    pieces: str | Path | None = None,
    resamples: int = 1000,
    permutations: int = 9999,
    steps: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Compare the modes of ``run_dirs`` (see :mod:`.runs`); write compare.{json,txt,png} to out_dir.

    With ``distances`` (a CSV for :func:`~gradvac_ds.analysis.report.tables.load_distances`), every
    mode with a similarity log in each seed also gets the intervals of
    :func:`~gradvac_ds.analysis.report.intervals.similarity_intervals` (``results["similarity"]``);
    ``pieces`` is the trainer's piece_counts.npz (default: the first run folder's, if present);
    ``steps = (first, stop)`` limits that part to the log windows inside those GradVac steps.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"--alpha {alpha!r} must be in (0, 1)")
    runs = load_runs(run_dirs)
    chosen = baseline or ("sum" if "sum" in runs.modes else runs.modes[0])
    if chosen not in runs.modes:
        raise ValueError(f"--baseline {chosen!r} is not one of the modes {runs.modes}")
    runs = dataclasses.replace(runs, modes=[chosen, *(m for m in runs.modes if m != chosen)])
    raw = seed_scores(runs, tokenize)
    for name, value in (("--min-effect", min_effect), ("--min-loss-effect", min_loss_effect)):
        if not value >= 0:
            raise ValueError(f"{name} {value!r} must be >= 0")
    comparisons = compare_modes(
        runs, raw, chosen, alpha, bootstrap_samples, randomisation_trials, tokenize, min_effect
    )
    results = {
        "runs": [str(p) for p in run_dirs],
        "folders": {seed: str(folder) for seed, folder in runs.folders.items()},
        "seeds": runs.seeds,
        "modes": runs.modes,
        "pairs": runs.pairs,
        "sentences": {pair: len(refs) for pair, refs in runs.references.items()},
        "baseline": chosen,
        "alpha": alpha,
        "min_effect": min_effect,
        "min_loss_effect": min_loss_effect,
        "scores": {
            mode: {
                pair: {m: {**mean_sd(list(v.values())), "per_seed": v} for m, v in by.items()}
                for pair, by in t.items()
            }
            for mode, t in raw.items()
        },
        "comparisons": comparisons,
        "summary": summary(comparisons, runs.pairs),
    }
    histories = validation_histories(runs)
    losses = validation_losses(runs, histories) if histories is not None else None
    if losses is not None:
        results["validation"] = {
            "losses": losses,
            "comparisons": compare_validation(losses, runs.seeds, chosen, alpha, min_loss_effect),
        }
    trajectory = validation_by_step(runs, histories, chosen, 1 - alpha) if histories is not None else None
    if trajectory is not None:
        results["validation_by_step"] = trajectory
    if distances is not None:
        piece_file = Path(pieces) if pieces is not None else Path(run_dirs[0]) / "piece_counts.npz"
        results["similarity"] = similarity_by_mode(
            runs, load_distances(distances, distance_column), piece_file if piece_file.is_file() else None,
            alpha=alpha, resamples=resamples, permutations=permutations, steps=steps,
        )  # fmt: skip
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = jsonable(results)
    write_json(results, out / "compare.json")
    text = format_report(results) + (
        format_similarity(results["similarity"]) if "similarity" in results else ""
    )
    (out / "compare.txt").write_text(text, encoding="utf-8")
    plot_scores(results, out / "compare.png")
    return results
