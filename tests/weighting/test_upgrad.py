"""The batched active-set solver of UPGrad against quadprog (through qpsolvers, dev extra)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from qpsolvers import solve_qp

from gradvac_ds.weighting.upgrad import nonnegative_qp


@pytest.mark.parametrize("n", [1, 2, 5, 16])
def test_nonnegative_qp_matches_quadprog(n):
    gen = torch.Generator().manual_seed(n)
    factor = torch.randn(
        64, n, max(n // 2, 1), generator=gen, dtype=torch.float64
    )  # low rank: many bounds bind
    hessian = factor @ factor.transpose(-1, -2) + 1e-4 * torch.eye(n, dtype=torch.float64)
    linear = torch.randn(64, n, generator=gen, dtype=torch.float64)
    ours = nonnegative_qp(hessian, linear)
    bound = 0
    for h, c, x in zip(hessian.numpy(), linear.numpy(), ours.numpy(), strict=True):
        expected = solve_qp(h, c, -np.eye(n), np.zeros(n), solver="quadprog")
        ours_value, best = (0.5 * v @ h @ v + c @ v for v in (x, expected))
        assert (x >= 0).all()
        assert abs(ours_value - best) <= 1e-10 * max(1.0, abs(best))
        assert np.abs(x - expected).max() <= 1e-6 * max(1.0, np.abs(expected).max())
        bound += int(((x == 0) & (c > 0)).sum())
    assert bound > 0, "some bounds must bind"


def test_a_positive_unconstrained_minimum_is_returned_as_is():
    hessian = torch.tensor([[[2.0, 0.0], [0.0, 4.0]]], dtype=torch.float64)
    linear = torch.tensor([[-2.0, -4.0]], dtype=torch.float64)
    assert nonnegative_qp(hessian, linear).tolist() == [[1.0, 1.0]]
    assert nonnegative_qp(hessian, -linear).tolist() == [[0.0, 0.0]]
