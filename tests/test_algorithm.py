"""The coefficient-space solver against the dense loop on explicit vectors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gradvac_ds.algorithm import (
    cosine_matrix,
    draw_task_orders,
    solve,
    step_generator,
)
from gradvac_ds.errors import NonFiniteGramError
from gradvac_ds.reference import dense_gradvac_groups


def _problem(seed: int, num_tasks: int, num_groups: int):
    """Random task vectors on random-size groups, their Gram, random targets and orders."""
    gen = torch.Generator().manual_seed(seed)
    sizes = torch.randint(1, 20, (num_groups,), generator=gen).tolist()
    grads = torch.randn(num_tasks, sum(sizes), generator=gen, dtype=torch.float64)
    # shared directions make fired and unfired corrections both common
    grads += torch.randn(1, sum(sizes), generator=gen, dtype=torch.float64) * torch.rand(
        num_tasks, 1, generator=gen
    )
    bounds = [0, *torch.tensor(sizes).cumsum(0).tolist()]
    slices = [[slice(bounds[l], bounds[l + 1])] for l in range(num_groups)]
    gram = torch.stack([grads[:, s[0]] @ grads[:, s[0]].T for s in slices])
    targets = torch.rand(num_groups, num_tasks, num_tasks, generator=gen, dtype=torch.float64) * 1.98 - 0.99
    orders = draw_task_orders(num_tasks, gen)
    return grads, slices, gram, targets, orders


def _apply(weights: torch.Tensor, grads: torch.Tensor, slices) -> torch.Tensor:
    out = torch.zeros(grads.shape[1], dtype=torch.float64)
    for l, group in enumerate(slices):
        for s in group:
            out[s] = weights[l] @ grads[:, s]
    return out


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


EPS = torch.finfo(torch.float64).eps


def _assert_matches(result, want, grads: torch.Tensor, slices, beta: float) -> None:
    """Solver against the dense loop within what float64 allows for the problem's conditioning.

    The solver reads ||g_i'|| from the Gram, so where corrections cancelled g_i' by kappa (see
    DenseResult) its cosines differ from the loop's by up to ~eps * kappa^2; the tolerance of task i's
    targets on group l uses the worst kappa of its visits there, the update's the worst of all. The
    update is compared on the scale of the terms that build it, sum_k |w[l, k]| ||g_k||, since the
    tasks' corrected gradients may cancel in the sum (collinear tasks on a one-element group).
    """
    kappa = want.conditioning.nan_to_num(1.0).amax(-1, keepdim=True).clamp_min(1.0)  # [L, K, 1]
    slack = 64 * EPS * kappa.square()
    norms = torch.stack([grads[:, s[0]].norm(dim=1) for s in slices])  # [L, K]
    scale = max(want.update.norm().item(), (result.weights.abs() * norms).sum(1).norm().item(), 1e-300)
    error = (_apply(result.weights, grads, slices) - want.update).norm().item()
    assert error <= (1e-9 + slack.max().item()) * scale
    error = (result.targets - want.targets).abs()
    allowed = 1e-12 + 1e-9 * want.targets.abs() + beta * slack
    worst = (error - allowed).argmax()
    assert (error <= allowed).all(), f"targets differ by {error.flatten()[worst]:.3g} at {worst}"


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    num_tasks=st.integers(1, 12),
    num_groups=st.integers(1, 6),
    beta=st.floats(0.0, 1.0),
    mode=st.sampled_from(["gradvac", "pcgrad"]),
)
def test_solver_matches_dense_reference(seed, num_tasks, num_groups, beta, mode):
    grads, slices, gram, targets, orders = _problem(seed, num_tasks, num_groups)
    active = torch.ones(num_tasks, dtype=torch.bool)
    result = solve(gram, targets, mode=mode, beta=beta, active=active, orders=orders)
    want = dense_gradvac_groups(
        list(grads), slices, targets, mode=mode, beta=beta, active=active.tolist(), orders=orders.tolist()
    )
    _assert_matches(result, want, grads, slices, beta)
    if mode == "pcgrad":
        torch.testing.assert_close(result.targets, targets, rtol=0, atol=0)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), num_tasks=st.integers(2, 8), num_groups=st.integers(1, 4))
def test_absent_tasks_match_reference_and_keep_targets(seed, num_tasks, num_groups):
    grads, slices, gram, targets, orders = _problem(seed, num_tasks, num_groups)
    gen = torch.Generator().manual_seed(seed + 1)
    active = torch.rand(num_tasks, generator=gen) < 0.6
    grads[~active] = 0.0  # an absent task ran no backward
    gram = torch.stack([grads[:, s[0]] @ grads[:, s[0]].T for s in slices])
    result = solve(gram, targets, mode="gradvac", beta=0.3, active=active, orders=orders)
    want = dense_gradvac_groups(
        list(grads), slices, targets, mode="gradvac", beta=0.3, active=active.tolist(), orders=orders.tolist()
    )
    _assert_matches(result, want, grads, slices, 0.3)
    absent = ~active
    assert torch.equal(result.weights[:, absent], torch.zeros_like(result.weights[:, absent]))
    assert torch.equal(result.targets[:, absent, :], targets[:, absent, :])
    assert torch.equal(result.targets[:, :, absent], targets[:, :, absent])
    assert not result.fired[:, absent, :].any() and not result.fired[:, :, absent].any()


def _pcgrad_formula(grads: torch.Tensor, orders: torch.Tensor) -> torch.Tensor:
    """PCGrad (Yu et al. 2020): project g_i onto the normal plane of each conflicting g_j."""
    total = torch.zeros_like(grads[0])
    for i in range(grads.shape[0]):
        g = grads[i].clone()
        for j in orders[i].tolist():
            dot = g @ grads[j]
            if dot < 0:
                g = g - dot / (grads[j] @ grads[j]) * grads[j]
        total += g
    return total


@pytest.mark.parametrize("seed", range(5))
def test_pcgrad_equals_projection_formula(seed):
    grads, _, gram, targets, orders = _problem(seed, 6, 1)
    result = solve(
        gram, targets, mode="pcgrad", beta=0.5, active=torch.ones(6, dtype=torch.bool), orders=orders
    )
    assert result.fired.any(), "the problem must contain conflicting pairs"
    assert _rel(result.weights[0] @ grads, _pcgrad_formula(grads, orders)) <= 1e-10


def test_sum_mode_is_plain_sum_without_surgery():
    _, _, gram, targets, orders = _problem(3, 5, 3)
    active = torch.tensor([True, True, False, True, True])
    result = solve(gram, targets, mode="sum", beta=0.5, active=active, orders=orders)
    assert torch.equal(result.weights, active.double().expand(3, 5))
    assert torch.equal(result.targets, targets)
    assert not result.fired.any()


def test_gradvac_reaches_target_similarity_when_fired():
    """After one correction of g_0 towards g_1, cos(g_0', g_1) equals the target (paper, eq. 2)."""
    g = torch.tensor([[1.0, 0.0], [-0.6, 0.8]], dtype=torch.float64)
    gram = (g @ g.T).unsqueeze(0)
    target = 0.5
    targets = torch.full((1, 2, 2), target, dtype=torch.float64)
    orders = torch.tensor([[1], [0]])
    result = solve(
        gram, targets, mode="gradvac", beta=0.0, active=torch.ones(2, dtype=torch.bool), orders=orders
    )
    g0 = g[0] + result.coefficient[0, 0, 1] * g[1]
    assert result.fired[0, 0, 1]
    assert math.isclose((g0 @ g[1] / (g0.norm() * g[1].norm())).item(), target, rel_tol=1e-12)


def test_zero_gradient_task_is_left_alone():
    g = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0], [-1.0, 0.5, 1.0]], dtype=torch.float64)
    gram = (g @ g.T).unsqueeze(0)
    targets = torch.full((1, 3, 3), 0.9, dtype=torch.float64)
    orders = draw_task_orders(3, torch.Generator().manual_seed(0))
    result = solve(
        gram, targets, mode="gradvac", beta=0.5, active=torch.ones(3, dtype=torch.bool), orders=orders
    )
    assert torch.isfinite(result.weights).all()
    assert not result.fired[0, 1, :].any() and not result.fired[0, :, 1].any()
    assert torch.equal(result.targets[0, 1, :], targets[0, 1, :])
    assert torch.equal(result.targets[0, :, 1], targets[0, :, 1])
    assert result.cosine[0, 1].isnan().sum() == 3
    assert result.fired[0, 0, 2] and result.fired[0, 2, 0]


@pytest.mark.parametrize("target", [1.0, -1.0])
def test_targets_at_plus_minus_one_stay_finite(target):
    grads, slices, gram, _, orders = _problem(7, 4, 2)
    targets = torch.full((2, 4, 4), target, dtype=torch.float64)
    active = torch.ones(4, dtype=torch.bool)
    result = solve(gram, targets, mode="gradvac", beta=0.1, active=active, orders=orders)
    assert torch.isfinite(result.weights).all() and torch.isfinite(result.targets).all()
    want = dense_gradvac_groups(
        list(grads), slices, targets, mode="gradvac", beta=0.1, active=active.tolist(), orders=orders.tolist()
    )
    _assert_matches(result, want, grads, slices, 0.1)
    if target == -1.0:
        assert not result.fired.any(), "no cosine lies below -1"
    else:
        assert result.fired[:, ~torch.eye(4, dtype=torch.bool)].all()


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_gram_is_refused(bad):
    _, _, gram, targets, orders = _problem(1, 3, 2)
    gram[1, 2, 2] = bad
    with pytest.raises(NonFiniteGramError):
        solve(gram, targets, mode="gradvac", beta=0.1, active=torch.ones(3, dtype=torch.bool), orders=orders)


def test_single_task_is_passed_through():
    gram = torch.tensor([[[4.0]]], dtype=torch.float64)
    orders = draw_task_orders(1, torch.Generator().manual_seed(0))
    assert orders.shape == (1, 0)
    result = solve(
        gram,
        torch.zeros(1, 1, 1),
        mode="gradvac",
        beta=0.1,
        active=torch.ones(1, dtype=torch.bool),
        orders=orders,
    )
    assert torch.equal(result.weights, torch.ones(1, 1, dtype=torch.float64))


def test_orders_are_permutations_and_reproducible():
    a = draw_task_orders(7, step_generator(11, 5))
    b = draw_task_orders(7, step_generator(11, 5))
    c = draw_task_orders(7, step_generator(11, 6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    for i in range(7):
        assert sorted(a[i].tolist()) == [j for j in range(7) if j != i]


def test_shape_errors_name_the_argument():
    gram = torch.eye(3, dtype=torch.float64).unsqueeze(0)
    with pytest.raises(ValueError, match="orders"):
        solve(
            gram,
            torch.zeros(1, 3, 3),
            mode="gradvac",
            beta=0.1,
            active=torch.ones(3, dtype=torch.bool),
            orders=torch.zeros(3, 3, dtype=torch.long),
        )
    with pytest.raises(ValueError, match="gradvac"):
        solve(
            gram,
            torch.zeros(1, 3, 3),
            mode="gradvacc",
            beta=0.1,
            active=torch.ones(3, dtype=torch.bool),
            orders=draw_task_orders(3, torch.Generator()),
        )


def test_cosine_matrix_marks_undefined_pairs():
    g = torch.tensor([[3.0, 4.0], [0.0, 0.0], [4.0, 3.0]], dtype=torch.float64)
    cos = cosine_matrix((g @ g.T).unsqueeze(0))[0]
    assert math.isclose(cos[0, 2].item(), 24 / 25, rel_tol=1e-12)
    assert cos[1].isnan().all() and cos[:, 1].isnan().all()


def _two_task_gram(phi: float, norm_i: float = 1.0, norm_j: float = 2.0) -> torch.Tensor:
    """Gram [1, 2, 2] of two gradients with norms norm_i, norm_j and cosine phi."""
    off = phi * norm_i * norm_j
    return torch.tensor([[[norm_i**2, off], [off, norm_j**2]]], dtype=torch.float64)


def test_max_target_bounds_the_correction_where_targets_reach_one():
    """Two tasks whose targets reached 1 (identical gradients with beta = 1): the next correction is
    at most ||g_i|| (t / sqrt(1 - t^2) + 1) with t = max_target; without the bound (t -> 1) it is
    hundreds of times the gradient."""
    gram, targets = _two_task_gram(0.5), torch.ones(1, 2, 2, dtype=torch.float64)
    orders, active = torch.tensor([[1], [0]]), torch.tensor([True, True])
    norms = gram.diagonal(dim1=-2, dim2=-1).sqrt()[0]
    for max_target in (0.999, 0.9):
        result = solve(
            gram, targets, mode="gradvac", beta=0.0, active=active, orders=orders, max_target=max_target
        )
        added = result.coefficient[0].abs() * norms.view(1, 2)  # ||coef_ij g_j||
        bound = norms.view(2, 1) * (max_target / math.sqrt(1 - max_target**2) + 1)
        assert bool(result.fired[0, 0, 1]) and bool((added <= bound).all())
    loose = solve(gram, targets, mode="gradvac", beta=0.0, active=active, orders=orders, max_target=1 - 1e-6)
    assert loose.coefficient[0, 0, 1] * norms[1] > 500 * norms[0]


def test_max_target_leaves_the_papers_rule_exact_below_it():
    gram = _two_task_gram(-0.3)
    targets = torch.full((1, 2, 2), 0.6, dtype=torch.float64)
    args = {
        "mode": "gradvac",
        "beta": 0.01,
        "active": torch.tensor([True, True]),
        "orders": torch.tensor([[1], [0]]),
    }
    bounded = solve(gram, targets, max_target=0.999, **args)
    exact = solve(gram, targets, max_target=1 - 1e-12, **args)
    assert torch.equal(bounded.weights, exact.weights) and torch.equal(bounded.targets, exact.targets)
