"""Resampling statistics on constructed inputs with known answers (and their negative controls)."""

from __future__ import annotations

import numpy as np
import pytest

from gradvac_ds.analysis.statistics import (
    block_length,
    interval_dict,
    mantel_test,
    partial_mantel_test,
    partial_spearman,
    two_level_bootstrap,
)


def _points(seed: int, size: int = 10) -> tuple[np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(size, 2))
    return np.linalg.norm(x[:, None] - x[None], axis=-1), rng


def _symmetric_noise(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    noise = rng.normal(0, scale, (size, size))
    return (noise + noise.T) / 2


def _mean_of(drawn: list[list[float]]) -> float:
    return float(np.mean([x for group in drawn for x in group]))


def test_bootstrap_interval_covers_the_mean_and_narrows_with_more_data():
    rng = np.random.default_rng(0)
    small = two_level_bootstrap([list(rng.normal(3.0, 1.0, 40))], _mean_of, 500)
    large = two_level_bootstrap([list(rng.normal(3.0, 1.0, 400))], _mean_of, 500)
    for interval in (small, large):
        assert interval.low < 3.0 < interval.high
    assert (large.high - large.low) < 0.5 * (small.high - small.low)


def test_identical_items_give_a_zero_width_interval():
    interval = two_level_bootstrap([[2.0] * 30], _mean_of, 200)
    assert interval.low == interval.high == interval.estimate == 2.0


def test_resampling_seeds_widens_the_interval_when_seeds_disagree():
    rng = np.random.default_rng(1)
    seeds = [list(rng.normal(centre, 0.1, 50)) for centre in (0.0, 1.0, 2.0)]
    pooled = two_level_bootstrap([[x for group in seeds for x in group]], _mean_of, 500)
    hierarchical = two_level_bootstrap(seeds, _mean_of, 500)
    assert hierarchical.high - hierarchical.low > 5 * (pooled.high - pooled.low)


def test_array_statistics_get_one_interval_per_element():
    rng = np.random.default_rng(2)
    data = [[np.array([v, 10 * v]) for v in rng.normal(1.0, 1.0, 100)]]
    interval = two_level_bootstrap(data, lambda drawn: np.mean([x for g in drawn for x in g], axis=0), 300)
    assert interval.estimate.shape == (2,)
    first, second = interval_dict(interval, 0), interval_dict(interval, 1)
    assert second["low"] == pytest.approx(10 * first["low"]) and second["high"] == pytest.approx(
        10 * first["high"]
    )


def test_bootstrap_rejects_empty_groups_and_bad_levels():
    with pytest.raises(ValueError, match="empty group"):
        two_level_bootstrap([[1.0], []], _mean_of)
    with pytest.raises(ValueError, match="level"):
        two_level_bootstrap([[1.0]], _mean_of, level=1.5)


def test_mantel_detects_a_planted_matrix_correlation_and_not_a_shuffled_one():
    distance, rng = _points(0)
    similarity = -distance + _symmetric_noise(rng, len(distance), 0.1)
    planted = mantel_test(similarity, distance, 999)
    assert planted.rho < -0.8 and planted.p_value < 0.01 and planted.num_pairs == 45
    perm = rng.permutation(len(distance))
    shuffled = mantel_test(similarity[np.ix_(perm, perm)], distance, 999)
    assert shuffled.p_value > 0.05


def test_mantel_is_exact_for_few_units_and_ignores_unknown_pairs():
    distance, _ = _points(3, size=4)
    similarity = -distance
    similarity[0, 1] = similarity[1, 0] = np.nan
    result = mantel_test(similarity, distance, 9999, alternative="less")
    assert result.permutations == 24 and result.num_pairs == 5 and result.rho == pytest.approx(-1.0)


def test_mantel_undefined_for_a_constant_matrix():
    distance, _ = _points(4)
    result = mantel_test(np.ones_like(distance), distance, 99)
    assert result.rho is None and result.p_value is None


def test_mantel_rejects_mismatched_shapes_and_alternatives():
    distance, _ = _points(5)
    with pytest.raises(ValueError, match="square"):
        mantel_test(distance, distance[:3, :3])
    with pytest.raises(ValueError, match="alternative"):
        mantel_test(distance, distance, alternative="up")


def test_partial_spearman_removes_a_common_cause():
    rng = np.random.default_rng(6)
    z = rng.normal(size=400)
    x, y = z + 0.3 * rng.normal(size=400), z + 0.3 * rng.normal(size=400)
    assert np.corrcoef(x, y)[0, 1] > 0.8
    assert abs(partial_spearman(x, y, z)) < 0.15
    assert partial_spearman(x, x + 0.01 * rng.normal(size=400), z) > 0.5


def test_partial_mantel_separates_overlap_from_distance():
    distance, rng = _points(7, size=12)
    overlap = -distance + _symmetric_noise(rng, 12, 0.05)
    driven_by_overlap = overlap + _symmetric_noise(rng, 12, 0.05)
    assert mantel_test(driven_by_overlap, distance, 999).p_value < 0.01
    assert partial_mantel_test(driven_by_overlap, distance, overlap, 999).p_value > 0.05
    unrelated_overlap = _symmetric_noise(rng, 12, 1.0)
    driven_by_distance = -distance + _symmetric_noise(rng, 12, 0.1)
    partial = partial_mantel_test(driven_by_distance, distance, unrelated_overlap, 999)
    assert partial.rho < -0.7 and partial.p_value < 0.01


def test_block_length_grows_as_the_cube_root():
    assert [block_length(n) for n in (1, 7, 20, 27, 1000)] == [1, 2, 3, 3, 10]


def test_block_one_is_the_iid_bootstrap_and_none_picks_the_cube_root_rule():
    items = [list(np.random.default_rng(3).normal(size=27))]
    iid = two_level_bootstrap(items, _mean_of, 200, seed=4)
    one = two_level_bootstrap(items, _mean_of, 200, seed=4, block=1)
    auto = two_level_bootstrap(items, _mean_of, 200, seed=4, block=None)
    three = two_level_bootstrap(items, _mean_of, 200, seed=4, block=3)
    assert (iid.low, iid.high) == (one.low, one.high)
    assert (auto.low, auto.high) == (three.low, three.high)
    assert (auto.low, auto.high) != (iid.low, iid.high)


def test_blocks_widen_the_interval_of_an_autocorrelated_series():
    # an AR(1) series with phi = 0.9: the variance of its mean is ~(1 + phi) / (1 - phi) = 19 times
    # the iid formula, so the iid bootstrap is far too narrow and blocks recover much of the width
    rng = np.random.default_rng(5)
    series = np.zeros(400)
    for t in range(1, 400):
        series[t] = 0.9 * series[t - 1] + rng.normal()
    iid = two_level_bootstrap([list(series)], _mean_of, 500, block=1)
    blocked = two_level_bootstrap([list(series)], _mean_of, 500, block=20)
    assert (blocked.high - blocked.low) > 2.5 * (iid.high - iid.low)


def test_blocks_keep_iid_data_intervals_about_the_same():
    items = [list(np.random.default_rng(6).normal(size=400))]
    iid = two_level_bootstrap(items, _mean_of, 500, block=1)
    blocked = two_level_bootstrap(items, _mean_of, 500, block=7)
    assert 0.7 < (blocked.high - blocked.low) / (iid.high - iid.low) < 1.4


def test_bootstrap_rejects_non_positive_blocks():
    with pytest.raises(ValueError, match="block"):
        two_level_bootstrap([[1.0, 2.0]], _mean_of, block=0)
