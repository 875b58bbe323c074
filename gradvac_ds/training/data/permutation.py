"""A seeded permutation of ``[0, N)`` evaluated position by position, without an N-element array.

The training schedule shuffles every task once per epoch. ``rng.permutation(N)`` would hold an
int64 array of N entries on every rank (800 MB at 100M pairs); :class:`KeyedPermutation` instead
computes ``pi(i)`` for the positions it is asked for, in O(1) memory per position.

**Construction.** Let h = ceil(b / 2) with b the bit length of N - 1 (h >= 1), so the domain
D = 2^(2h) satisfies N <= D < 4N (for N > 1). A balanced Feistel network on 2h-bit words,
``(L, R) -> (R, L xor F_k(R))`` for ``ROUNDS`` round keys k, is a bijection of ``[0, D)`` for
any round function F; here F_k(R) is SplitMix64's finaliser of ``R xor k``, cut to h bits.
Positions that land in ``[N, D)`` are walked along their cycle (the network is applied again)
until they land in ``[0, N)``: cycle walking restricts a permutation of D to one of N, and as
D < 4N it takes fewer than 4 applications on average.

The keys are drawn from NumPy's generator seeded by ``key``, so the permutation is a pure function
of ``(N, key)``: equal on every rank and after a restart.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ROUNDS = 4
"""Feistel rounds; four give a pseudo-random permutation (Luby and Rackoff, 1988)."""

_SHIFT_1, _SHIFT_2, _SHIFT_3 = np.uint64(30), np.uint64(27), np.uint64(31)
_MULTIPLY_1, _MULTIPLY_2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64 values (a bijection with full avalanche; wraps mod 2^64)."""
    z = values ^ (values >> _SHIFT_1)
    z *= _MULTIPLY_1
    z ^= z >> _SHIFT_2
    z *= _MULTIPLY_2
    return z ^ (z >> _SHIFT_3)


class KeyedPermutation:
    """The permutation pi of ``[0, size)`` determined by ``key`` (see the module docstring).

    Args:
        size: N >= 1.
        key: integers >= 0 seeding the round keys (e.g. ``(seed, task, epoch)``).
    """

    def __init__(self, size: int, key: Sequence[int]) -> None:
        if size < 1:
            raise ValueError(f"a permutation needs size >= 1, got {size}")
        self.size = size
        half = max(1, ((size - 1).bit_length() + 1) // 2)
        self._half = np.uint64(half)
        self._low = np.uint64((1 << half) - 1)
        generator = np.random.default_rng(list(key))
        top = np.iinfo(np.uint64).max
        self._keys = generator.integers(0, top, size=ROUNDS, dtype=np.uint64, endpoint=True)

    def _network(self, words: np.ndarray) -> np.ndarray:
        left, right = words >> self._half, words & self._low
        for key in self._keys:
            left, right = right, left ^ (_mix(right ^ key) & self._low)
        return (left << self._half) | right

    def __call__(self, positions: np.ndarray | Sequence[int]) -> np.ndarray:
        """``pi(positions)``: int64 array of the shape of ``positions``.

        Raises:
            ValueError: if a position is outside ``[0, size)``.
        """
        positions = np.asarray(positions, dtype=np.int64)
        if positions.size and (positions.min() < 0 or positions.max() >= self.size):
            found = f"[{positions.min()}, {positions.max()}]"
            raise ValueError(f"positions must lie in [0, {self.size}), got {found}")
        values = self._network(positions.astype(np.uint64).reshape(-1))
        outside = np.flatnonzero(values >= self.size)
        while outside.size:
            values[outside] = self._network(values[outside])
            outside = outside[values[outside] >= self.size]
        return values.astype(np.int64).reshape(positions.shape)
