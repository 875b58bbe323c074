"""One aggregated window of GradVac statistics, its accumulation from steps, and pairwise merging.

Shapes: L parameter groups, K tasks. For a window covering steps ``S`` and a pair ``(l, i, j)``,
let ``V = {s in S : tasks i and j active at s and cosine[s, l, i, j] finite}`` (the evaluations):

    cos_count[l, i, j]     = |V|
    cos_mean[l, i, j]      = mean_{s in V} cosine[s, l, i, j]            (NaN when |V| = 0)
    fire_count[l, i, j]    = |{s in V : fired[s, l, i, j]}|
    coef_abs_mean[l, i, j] = mean |coefficient| over the fired s in V     (NaN when none fired)

The fire rate is ``fire_count / cos_count``: the correction can only fire where both gradients are
non-zero on the group, which is where the cosine is defined. Counts make merging exact: two
windows merge by count-weighted means (:func:`merge_windows`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gradvac_ds.stats import StepArrays


@dataclass(frozen=True)
class Window:
    """Aggregate of consecutive recorded steps ``step_first..step_last`` (``num_steps`` of them).

    cos_mean, coef_abs_mean: float64 [L, K, K]; cos_count, fire_count: int64 [L, K, K].
    """

    step_first: int
    step_last: int
    num_steps: int
    cos_mean: np.ndarray
    cos_count: np.ndarray
    fire_count: np.ndarray
    coef_abs_mean: np.ndarray

    @property
    def fire_rate(self) -> np.ndarray:
        """fire_count / cos_count, float64 [L, K, K]; NaN where nothing was evaluated."""
        return _ratio(self.fire_count.astype(np.float64), self.cos_count)


def _ratio(total: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Elementwise total / count with NaN where count is 0."""
    out = np.full(total.shape, np.nan)
    np.divide(total, count, out=out, where=count > 0)
    return out


class WindowAccumulator:
    """Running sums over the steps of the current window.

    Holds cos_sum, cos_count, fire_count and coef_abs_sum, each [L, K, K]; :meth:`window` turns
    them into means.
    """

    def __init__(self, num_groups: int, num_tasks: int) -> None:
        shape = (num_groups, num_tasks, num_tasks)
        self.shape = shape
        self.cos_sum = np.zeros(shape)
        self.cos_count = np.zeros(shape, dtype=np.int64)
        self.fire_count = np.zeros(shape, dtype=np.int64)
        self.coef_abs_sum = np.zeros(shape)
        self.step_first: int | None = None
        self.step_last: int | None = None
        self.num_steps = 0

    def add(self, step: int, arrays: StepArrays) -> None:
        """Add one step (see the module docstring for which entries count)."""
        self.cos_sum += np.where(arrays.valid, arrays.cosine, 0.0)
        self.cos_count += arrays.valid
        self.fire_count += arrays.fired
        self.coef_abs_sum += np.where(arrays.fired, np.abs(arrays.coefficient), 0.0)
        if self.step_first is None:
            self.step_first = step
        self.step_last = step
        self.num_steps += 1

    def window(self) -> Window:
        """The window of the steps added so far; requires at least one step."""
        if self.step_first is None or self.step_last is None:
            raise ValueError("cannot close an empty window")
        return Window(
            step_first=self.step_first,
            step_last=self.step_last,
            num_steps=self.num_steps,
            cos_mean=_ratio(self.cos_sum, self.cos_count),
            cos_count=self.cos_count.copy(),
            fire_count=self.fire_count.copy(),
            coef_abs_mean=_ratio(self.coef_abs_sum, self.fire_count),
        )


def _weighted_sum(mean: np.ndarray, count: np.ndarray) -> np.ndarray:
    """mean * count with the NaN means of empty entries treated as 0."""
    return np.where(count > 0, mean, 0.0) * count


def merge_windows(windows: Sequence[Window]) -> Window:
    """Merge consecutive windows into one with count-weighted means (exact: as if never split).

    cos_mean = sum_w cos_mean_w cos_count_w / sum_w cos_count_w, and likewise coef_abs_mean
    weighted by fire_count; counts add.
    """
    if not windows:
        raise ValueError("merge_windows needs at least one window")
    cos_count = sum(w.cos_count for w in windows)
    fire_count = sum(w.fire_count for w in windows)
    cos_sum = sum(_weighted_sum(w.cos_mean, w.cos_count) for w in windows)
    coef_sum = sum(_weighted_sum(w.coef_abs_mean, w.fire_count) for w in windows)
    return Window(
        step_first=windows[0].step_first,
        step_last=windows[-1].step_last,
        num_steps=sum(w.num_steps for w in windows),
        cos_mean=_ratio(cos_sum, cos_count),
        cos_count=cos_count,
        fire_count=fire_count,
        coef_abs_mean=_ratio(coef_sum, fire_count),
    )
