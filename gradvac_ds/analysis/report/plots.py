"""PNG figures of the similarity analysis (matplotlib Figure objects; no pyplot global state)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Patch
from scipy.cluster.hierarchy import dendrogram

from gradvac_ds.analysis.report.layers import LayerProfile
from gradvac_ds.analysis.report.metrics import DistanceCorrelation

DPI = 120
_ANNOTATE_MAX = 16
"""Matrices up to this size get their values written in the cells."""


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _symmetric_limit(values: np.ndarray) -> float:
    """Colour limit for a diverging map: the largest finite |value|, at least 0.05."""
    finite = np.abs(values[np.isfinite(values)])
    return max(float(finite.max()) if finite.size else 0.0, 0.05)


def _matrix(
    ax: Axes, matrix: np.ndarray, labels: Sequence[str], cmap: str, vmin: float, vmax: float, fmt: str
) -> AxesImage:
    """Draw ``matrix`` [N, N] with its diagonal masked (grey), tick labels and, if small, cell values.

    The cells fill the axes (aspect "auto"): callers size the axes square, so that the dendrogram above
    and the colour bar beside line up with them.
    """
    size = len(labels)
    shown = np.ma.masked_where(np.eye(size, dtype=bool) | ~np.isfinite(matrix), matrix)
    image = ax.imshow(
        shown,
        cmap=colormaps[cmap].with_extremes(bad="0.85"),
        vmin=vmin,
        vmax=vmax,
        interpolation="nearest",
        aspect="auto",
    )
    ax.set_xticks(range(size), labels, rotation=90, fontsize=_label_size(size))
    ax.set_yticks(range(size), labels, fontsize=_label_size(size))
    if size <= _ANNOTATE_MAX:
        middle = (vmin + vmax) / 2
        span = (vmax - vmin) / 2 or 1.0
        for r in range(size):
            for c in range(size):
                if r != c and np.isfinite(matrix[r, c]):
                    dark = abs(matrix[r, c] - middle) / span > 0.6
                    ax.text(
                        c,
                        r,
                        format(matrix[r, c], fmt),
                        ha="center",
                        va="center",
                        fontsize=max(5, 9 - size // 4),
                        color="white" if dark else "black",
                    )
    return image


def _label_size(count: int) -> int:
    return 10 if count <= 12 else 8 if count <= 32 else 6


def _colour_labels(heat_ax: Axes, legend_ax: Axes, groups: Mapping[str, str], title: str) -> None:
    """Colour the tick labels of ``heat_ax`` by group (e.g. family); draw the legend in ``legend_ax``."""
    palette = colormaps["tab10" if len(set(groups.values())) <= 10 else "tab20"]
    colours = {group: palette(k % palette.N) for k, group in enumerate(sorted(set(groups.values())))}
    for tick in [*heat_ax.get_xticklabels(), *heat_ax.get_yticklabels()]:
        group = groups.get(tick.get_text())
        if group is not None:
            tick.set_color(colours[group])
            tick.set_fontweight("bold")
    handles = [Patch(color=colour, label=group) for group, colour in colours.items()]
    legend_ax.legend(
        handles=handles, title=title, loc="upper left", fontsize=8, title_fontsize=9, frameon=False
    )


def plot_similarity_heatmap(
    sim: np.ndarray,
    units: Sequence[str],
    link: np.ndarray,
    title: str,
    path: Path,
    families: Mapping[str, str] | None = None,
    family_title: str = "family",
) -> Path:
    """Heatmap of ``sim`` [U, U] ordered by the dendrogram of ``link`` (drawn above), with a colour bar.

    ``families`` (unit -> family), when given, colours the unit labels (legend titled ``family_title``).
    """
    size = len(units)
    side = max(5.0, 2.5 + 0.45 * size)
    legend_width = 1.8 if families else 0.01
    fig = Figure(figsize=(side + 1.4 + legend_width, side + 1.6))
    # rows: dendrogram, heatmap; columns: heatmap, colour bar, gap for the bar's label, family legend
    grid = fig.add_gridspec(
        2,
        4,
        height_ratios=[1.2, side],
        width_ratios=[side, 0.25, 0.9, legend_width],
        hspace=0.02,
        wspace=0.04,
    )
    tree_ax = fig.add_subplot(grid[0, 0])
    tree = dendrogram(link, ax=tree_ax, no_labels=True, color_threshold=0, above_threshold_color="0.3")
    tree_ax.set_axis_off()
    order = tree["leaves"]
    ordered = sim[np.ix_(order, order)]
    limit = _symmetric_limit(np.where(np.eye(size, dtype=bool), np.nan, ordered))
    heat_ax = fig.add_subplot(grid[1, 0])
    image = _matrix(heat_ax, ordered, [units[k] for k in order], "RdBu_r", -limit, limit, ".2f")
    fig.colorbar(image, cax=fig.add_subplot(grid[1, 1]), label="mean gradient cosine")
    if families:
        legend_ax = fig.add_subplot(grid[1, 3])
        legend_ax.set_axis_off()
        _colour_labels(heat_ax, legend_ax, families, family_title)
    tree_ax.set_title(title, fontsize=12)
    return _save(fig, path)


def plot_similarity_over_time(
    steps: np.ndarray, series: Mapping[str, np.ndarray], overall: np.ndarray, path: Path
) -> Path:
    """Lines of similarity per window (x = window centre step) for chosen pairs and the all-pair mean."""
    fig = Figure(figsize=(9, 5))
    ax = fig.add_subplot()
    for label, values in series.items():
        ax.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3, label=label)
    ax.plot(steps, overall, color="black", linestyle="--", linewidth=1.5, label="mean over all pairs")
    ax.axhline(0.0, color="0.6", linewidth=0.8)
    ax.set_xlabel("training step")
    ax.set_ylabel("mean gradient cosine (over groups)")
    ax.set_title("Gradient similarity over training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, path)


def plot_layer_profile(profile: LayerProfile, path: Path) -> Path:
    """Mean cosine per layer, encoder and decoder bottom to top; other groups as bars beside them."""
    stacks = {stack: data for stack, data in profile.layers.items() if data[0]}
    panels = int(bool(stacks)) + int(bool(profile.other))
    fig = Figure(figsize=(6.5 * panels, 4.8))
    axes = [fig.add_subplot(1, panels, k + 1) for k in range(panels)]
    if stacks:
        ax = axes[0]
        for stack, (indices, values) in stacks.items():
            ax.plot(indices, values, marker="o", label=stack)
        ax.set_xticks(sorted({i for indices, _ in stacks.values() for i in indices}))
        ax.set_xlabel("layer (bottom -> top)")
        ax.set_ylabel("mean gradient cosine over pairs")
        ax.set_title("Per-layer gradient similarity")
        ax.axhline(0.0, color="0.6", linewidth=0.8)
        ax.grid(alpha=0.3)
        ax.legend()
    if profile.other:
        ax = axes[-1]
        names = list(profile.other)
        ax.barh(range(len(names)), [profile.other[n] for n in names], color="tab:gray")
        ax.set_yticks(range(len(names)), names, fontsize=_label_size(len(names)))
        ax.invert_yaxis()
        ax.axvline(0.0, color="0.3", linewidth=0.8)
        ax.set_xlabel("mean gradient cosine over pairs")
        ax.set_title("Other parameter groups")
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return _save(fig, path)


def plot_fire_rate(fire_rate: np.ndarray, coefficient: np.ndarray, tasks: Sequence[str], path: Path) -> Path:
    """Heatmaps [K, K] of GradVac fire rate and mean |coefficient| (row i corrected towards column j)."""
    size = len(tasks)
    side = 2.5 + 0.3 * size
    fig = Figure(figsize=(2 * side + 3.0, side))
    # columns: matrix, colour bar, spacer (room for the bar's label and the next y labels), matrix, bar
    grid = fig.add_gridspec(1, 5, width_ratios=[side, 0.25, 2.2, side, 0.25], wspace=0.06)
    panels = (
        (fire_rate, "fire rate", "GradVac fire rate", "viridis", 0.0, 1.0, ".2f"),
        (
            coefficient,
            "mean |coefficient| when fired",
            "Mean added coefficient",
            "magma_r",
            0.0,
            max(_symmetric_limit(coefficient), 1e-3),
            ".2g",
        ),
    )
    for k, (matrix, label, title, cmap, vmin, vmax, fmt) in enumerate(panels):
        ax = fig.add_subplot(grid[0, 3 * k])
        image = _matrix(ax, matrix, tasks, cmap, vmin, vmax, fmt)
        ax.set_xlabel("task j (added to i)")
        ax.set_ylabel("task i (corrected)")
        ax.set_title(title)
        fig.colorbar(image, cax=fig.add_subplot(grid[0, 3 * k + 1]), label=label)
    return _save(fig, path)


def plot_similarity_vs_distance(correlation: DistanceCorrelation, column: str, path: Path) -> Path:
    """Scatter of unit-pair similarity against language distance, with Spearman rho, p and n."""
    fig = Figure(figsize=(6.5, 5))
    ax = fig.add_subplot()
    ax.scatter(correlation.distances, correlation.similarities, s=18, alpha=0.7)
    ax.set_xlabel(f"language distance ({column})")
    ax.set_ylabel("mean gradient cosine")
    if correlation.rho is None or correlation.p_value is None:
        ax.set_title("Gradient similarity vs language distance (Spearman rho undefined)", fontsize=10)
    else:
        ax.set_title(
            f"Gradient similarity vs language distance\nSpearman rho = {correlation.rho:.3f}, "
            f"p = {correlation.p_value:.2g}, n = {correlation.num_pairs} pairs",
            fontsize=10,
        )
    ax.grid(alpha=0.3)
    return _save(fig, path)
