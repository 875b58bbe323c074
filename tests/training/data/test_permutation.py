"""KeyedPermutation: a bijection for every size, a pure function of its key, and well mixed."""

import numpy as np
import pytest
from scipy import stats

from gradvac_ds.training.data.permutation import KeyedPermutation


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 17, 64, 65, 1000, 4097, 100_003])
def test_is_a_permutation_of_range(size: int) -> None:
    values = KeyedPermutation(size, (7, size))(np.arange(size))
    assert values.dtype == np.int64
    assert np.array_equal(np.sort(values), np.arange(size))


def test_pure_function_of_size_and_key_evaluated_pointwise() -> None:
    whole = KeyedPermutation(5000, (1, 2, 3))(np.arange(5000))
    again = KeyedPermutation(5000, (1, 2, 3))
    positions = np.array([4999, 0, 17, 17, 2500])
    assert np.array_equal(again(positions), whole[positions])
    assert np.array_equal(again(positions.reshape(5, 1)), whole[positions].reshape(5, 1))
    other = KeyedPermutation(5000, (1, 2, 4))(np.arange(5000))
    assert np.mean(other == whole) < 0.01, "another key gives another order"


def test_mixes_like_a_random_permutation() -> None:
    size = 20_000
    values = KeyedPermutation(size, (11,))(np.arange(size))
    # No rank correlation between position and value (|rho| < 4 standard errors of 1/sqrt(N)).
    assert abs(stats.spearmanr(np.arange(size), values).statistic) < 4 / np.sqrt(size)
    # Neighbouring positions land far apart: their gaps are spread like those of a random order.
    gaps = np.abs(np.diff(values))
    assert np.median(gaps) > 0.2 * size
    # Over keys, where position 0 lands is uniform (chi-square over 10 bins, 2000 keys).
    landing = [KeyedPermutation(1000, (key,))(np.array([0]))[0] for key in range(2000)]
    counts = np.bincount(np.asarray(landing) // 100, minlength=10)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_rejects_bad_sizes_and_positions() -> None:
    with pytest.raises(ValueError, match="size >= 1"):
        KeyedPermutation(0, (1,))
    permutation = KeyedPermutation(10, (1,))
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        permutation(np.array([3, 10]))
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        permutation(np.array([-1]))
    assert permutation(np.array([], dtype=np.int64)).shape == (0,)
