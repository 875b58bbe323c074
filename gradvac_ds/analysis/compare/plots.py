"""compare.png: BLEU and chrF per pair and mode (mean ± sd over seeds) with the verdicts marked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from gradvac_ds.analysis.compare.significance import BETTER, METRICS, WORSE

_MARK = {BETTER: "+", WORSE: "−"}


def plot_scores(results: dict[str, Any], path: Path) -> Path:
    """One panel per metric: grouped bars per pair (and the average), error bars = sd over seeds;
    above each non-baseline bar "+" (better) or "−" (worse) when significant."""
    modes, rows = results["modes"], [*results["pairs"], "all"]
    fig = Figure(figsize=(max(6.0, 0.6 * len(rows) * len(modes)), 7.0))
    axes = fig.subplots(len(METRICS), 1, squeeze=False)[:, 0]
    width = 0.8 / len(modes)
    x = np.arange(len(rows))
    for ax, metric in zip(axes, METRICS, strict=True):
        for k, mode in enumerate(modes):
            cells = [results["scores"][mode][row][metric] for row in rows]
            means = [c["mean"] for c in cells]
            errors = [c["sd"] or 0.0 for c in cells]
            offset = x + (k - (len(modes) - 1) / 2) * width
            ax.bar(offset, means, width, yerr=errors, capsize=2, label=mode)
            for xi, row, mean, err in zip(offset, rows, means, errors, strict=True):
                outcome = results["comparisons"].get(mode, {}).get(row, {}).get(metric, {}).get("verdict")
                if outcome in _MARK:
                    ax.annotate(_MARK[outcome], (xi, mean + err), ha="center", va="bottom")
        ax.set_xticks(x, [("average" if r == "all" else r) for r in rows], rotation=60, ha="right")
        ax.set_ylabel(f"{metric} (mean ± sd over seeds)")
    axes[0].legend(loc="best")
    axes[0].set_title(
        f"vs {results['baseline']}: + better, − worse (alpha {results['alpha']}); unmarked: not significant"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path
