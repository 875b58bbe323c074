"""Resampling statistics for the evidence reports: bootstrap intervals and matrix permutation tests.

- :func:`two_level_bootstrap`: percentile interval of a statistic of grouped items (training
  windows grouped by seed), resampling the groups and then the items inside each drawn group, in
  circular blocks of consecutive items (:func:`block_length` for autocorrelated windows).
- :func:`mantel_test`: Spearman correlation of two symmetric [U, U] matrices over their upper
  triangles, with a permutation p-value that relabels the units of one matrix (rows and columns
  together). Pairs of units share units and are not independent, so the ordinary Spearman p-value
  of ``U (U - 1) / 2`` pairs is too optimistic; the label permutation respects that dependence.
- :func:`partial_mantel_test`: the same for the partial Spearman correlation of two matrices
  given a third (e.g. gradient similarity and language distance given vocabulary overlap).

Permutations use ``scipy.stats.permutation_test`` (exact when ``U!`` is at most ``n_resamples``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from scipy.stats import permutation_test, rankdata, spearmanr

T = TypeVar("T")

ALTERNATIVES = ("two-sided", "less", "greater")


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile bootstrap interval, elementwise for array statistics.

    estimate: the statistic on the data as observed; low/high: the ``(1 - level) / 2`` and
    ``(1 + level) / 2`` quantiles of the statistic over ``resamples`` resamples (NaN draws, e.g. an
    undefined correlation, are left out per element).
    """

    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    level: float
    resamples: int


def block_length(num_items: int) -> int:
    """The default block of the within-group resample: round(n^(1/3)), at least 1.

    n^(1/3) is the rate at which the mean-squared-error-optimal block of a moving/circular block
    bootstrap grows for a variance (Hall, Horowitz and Jing, 1995); 20 windows give blocks of 3.
    """
    return max(1, round(num_items ** (1 / 3)))


def _circular_blocks(rng: np.random.Generator, size: int, block: int) -> np.ndarray:
    """``size`` indices into ``range(size)``: ceil(size / block) blocks of ``block`` consecutive
    indices (wrapping around) from uniform starts, cut to ``size``. ``block = 1`` is the iid draw."""
    if block == 1:
        return rng.integers(size, size=size)
    starts = rng.integers(size, size=-(-size // block))
    return ((starts[:, None] + np.arange(block)[None, :]) % size).reshape(-1)[:size]


def two_level_bootstrap(
    groups: Sequence[Sequence[T]],
    statistic: Callable[[list[list[T]]], np.ndarray | float],
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    block: int | None = 1,
) -> Interval:
    """Percentile interval of ``statistic`` over a two-level resample of ``groups``.

    One resample draws ``G = len(groups)`` groups with replacement, then, inside each drawn group
    of ``n_g`` items in their order, ``n_g`` items as circular blocks of ``block`` consecutive items
    (``block = 1``: items with replacement, which treats them as exchangeable; ``None``:
    :func:`block_length` of each group, which keeps the autocorrelation of training windows
    inside a block, so the interval is not made narrow by it). ``statistic`` receives the list of
    drawn groups (each a list of items) and returns a scalar or an array of fixed shape. With one
    group only the items are resampled.
    """
    if not groups or any(len(group) == 0 for group in groups):
        raise ValueError("two_level_bootstrap needs at least one group and no empty group")
    if not 0 < level < 1:
        raise ValueError(f"level = {level!r} must be in (0, 1)")
    if block is not None and block < 1:
        raise ValueError(f"block = {block!r} must be a positive number of items, or None")
    blocks = [min(block or block_length(len(group)), len(group)) for group in groups]
    rng = np.random.default_rng(seed)
    observed = np.asarray(statistic([list(group) for group in groups]), dtype=np.float64)
    draws = np.empty((n_resamples, *observed.shape))
    for r in range(n_resamples):
        chosen = rng.integers(len(groups), size=len(groups)) if len(groups) > 1 else [0]
        sample = [[groups[g][i] for i in _circular_blocks(rng, len(groups[g]), blocks[g])] for g in chosen]
        draws[r] = statistic(sample)
    with warnings.catch_warnings():  # an element NaN in every draw stays NaN, without a warning
        warnings.simplefilter("ignore", RuntimeWarning)
        low = np.nanquantile(draws, (1 - level) / 2, axis=0) if n_resamples else observed
        high = np.nanquantile(draws, (1 + level) / 2, axis=0) if n_resamples else observed
    return Interval(observed, np.asarray(low), np.asarray(high), level, n_resamples)


@dataclass(frozen=True)
class MantelResult:
    """Spearman correlation ``rho`` of two matrices over ``num_pairs`` unit pairs and its permutation
    p-value (``alternative`` as in scipy); rho and p are None when undefined (< 3 pairs, constant)."""

    rho: float | None
    p_value: float | None
    num_pairs: int
    permutations: int
    alternative: str


def _upper(matrix: np.ndarray) -> np.ndarray:
    return matrix[np.triu_indices(len(matrix), k=1)]


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rho of x and y over entries finite in both (NaN: < 3 entries or a constant side)."""
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return float("nan")
    return float(spearmanr(x[ok], y[ok]).statistic)


def partial_spearman(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> float:
    """Spearman partial correlation of x and y given z (1-D, NaN entries dropped).

    Ranks r_x, r_y, r_z; each of r_x, r_y is regressed on [1, r_z] by least squares and the
    Pearson correlation of the two residuals is returned (NaN when < 4 values or a residual is 0).
    """
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(z)
    if ok.sum() < 4:
        return float("nan")
    rx, ry, rz = (rankdata(v[ok]) for v in (x, y, z))
    design = np.column_stack([np.ones_like(rz), rz])
    residuals = [r - design @ np.linalg.lstsq(design, r, rcond=None)[0] for r in (rx, ry)]
    norms = [np.linalg.norm(e) for e in residuals]
    if min(norms) < 1e-12 * len(rx):
        return float("nan")
    return float(residuals[0] @ residuals[1] / (norms[0] * norms[1]))


def _check_square(name: str, matrix: np.ndarray, size: int | None = None) -> None:
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or (size is not None and len(matrix) != size):
        raise ValueError(f"{name}: expected a square [U, U] matrix (U = {size}), got shape {matrix.shape}")


def _permutation_p(
    size: int, statistic: Callable[[np.ndarray], float], n_resamples: int, alternative: str, seed: int
) -> tuple[float | None, int]:
    """p-value of ``statistic(identity)`` against relabelings ``statistic(perm)`` of ``size`` units."""
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative = {alternative!r}; allowed: {list(ALTERNATIVES)}")
    if not np.isfinite(statistic(np.arange(size))):
        return None, 0
    result = permutation_test(
        (np.arange(size),),
        lambda perm: statistic(np.asarray(perm)),
        permutation_type="pairings",
        n_resamples=n_resamples,
        alternative=alternative,
        vectorized=False,
        rng=seed,
    )
    return float(result.pvalue), len(result.null_distribution)


def mantel_test(
    a: np.ndarray,
    b: np.ndarray,
    n_resamples: int = 9999,
    alternative: str = "two-sided",
    seed: int = 0,
) -> MantelResult:
    """Mantel test: Spearman rho of upper(a) and upper(b); p over relabelings of b's units.

    a, b: [U, U] symmetric (NaN = unknown pair, left out). The null hypothesis is that b's unit
    labels are exchangeable with respect to a; the statistic of each relabeling ``b[perm][:, perm]``
    forms the null distribution.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    _check_square("a", a)
    _check_square("b", b, len(a))
    upper_a = _upper(a)

    def statistic(perm: np.ndarray) -> float:
        return spearman(upper_a, _upper(b[np.ix_(perm, perm)]))

    rho = statistic(np.arange(len(a)))
    pairs = int((np.isfinite(upper_a) & np.isfinite(_upper(b))).sum())
    p_value, count = _permutation_p(len(a), statistic, n_resamples, alternative, seed)
    return MantelResult(None if np.isnan(rho) else rho, p_value, pairs, count, alternative)


def partial_mantel_test(
    a: np.ndarray,
    b: np.ndarray,
    control: np.ndarray,
    n_resamples: int = 9999,
    alternative: str = "two-sided",
    seed: int = 0,
) -> MantelResult:
    """Partial Mantel test: partial Spearman of upper(a), upper(b) given upper(control); b relabeled."""
    a, b, control = (np.asarray(m, dtype=np.float64) for m in (a, b, control))
    _check_square("a", a)
    _check_square("b", b, len(a))
    _check_square("control", control, len(a))
    upper_a, upper_c = _upper(a), _upper(control)

    def statistic(perm: np.ndarray) -> float:
        return partial_spearman(upper_a, _upper(b[np.ix_(perm, perm)]), upper_c)

    rho = statistic(np.arange(len(a)))
    ok = np.isfinite(upper_a) & np.isfinite(_upper(b)) & np.isfinite(upper_c)
    p_value, count = _permutation_p(len(a), statistic, n_resamples, alternative, seed)
    return MantelResult(None if np.isnan(rho) else rho, p_value, int(ok.sum()), count, alternative)


def interval_dict(interval: Interval, index: int | tuple[int, ...] = ()) -> dict[str, Any]:
    """``{"estimate", "low", "high", "level"}`` of one element of an Interval (NaN -> None)."""

    def clean(value: np.ndarray) -> float | None:
        number = float(np.asarray(value)[index])
        return number if np.isfinite(number) else None

    return {
        "estimate": clean(interval.estimate),
        "low": clean(interval.low),
        "high": clean(interval.high),
        "level": interval.level,
    }
