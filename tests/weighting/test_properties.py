"""What each method promises, checked on its own output (independently of TorchJD)."""

from __future__ import annotations

import torch

from gradvac_ds.weighting import make_weighting


def _conflicting(k: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(k, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_mgda_gives_the_min_norm_point_of_the_hull():
    x = _conflicting(6, 3, 1)
    gram = x @ x.T
    w = make_weighting("mgda", {"epsilon": 1e-12, "max_iters": 20000}).weights(gram.unsqueeze(0))[0]
    assert (w >= 0).all() and abs(w.sum().item() - 1) < 1e-12
    norm = w @ gram @ w
    trials = torch.distributions.Dirichlet(torch.ones(6, dtype=torch.float64)).sample((20000,))
    assert norm <= ((trials @ gram) * trials).sum(-1).min() + 1e-9


def test_imtl_g_update_has_equal_projections_on_every_task_direction():
    x = _conflicting(5, 12, 2)
    w = make_weighting("imtl_g").weights((x @ x.T).unsqueeze(0))[0]
    projections = (w @ x) @ (x / x.norm(dim=1, keepdim=True)).T
    assert abs(w.sum().item() - 1) < 1e-12
    assert (projections - projections.mean()).abs().max() < 1e-10 * projections.abs().max()


def test_aligned_mtl_balance_makes_the_tasks_orthogonal_with_equal_norms():
    x = _conflicting(4, 9, 3)
    gram = x @ x.T
    w = make_weighting("aligned_mtl").weights(gram.unsqueeze(0))[0]
    eigenvalues, vectors = torch.linalg.eigh(gram)
    balance = eigenvalues.min().sqrt() * vectors @ torch.diag(eigenvalues.rsqrt()) @ vectors.T
    aligned = balance @ x  # rows B X: orthogonal, each of squared norm lambda_min
    assert torch.allclose(
        aligned @ aligned.T, eigenvalues.min() * torch.eye(4, dtype=torch.float64), atol=1e-10
    )
    assert torch.allclose(w, balance @ torch.full((4,), 0.25, dtype=torch.float64), atol=1e-14)


def test_upgrad_update_conflicts_with_no_task():
    # the mean conflicts with task 1; [0.5, 1, 0] conflicts with none, so the dual cone is not {0}
    x = torch.tensor([[1.0, 0.1, 0.0], [-0.3, 1.0, 0.0], [10.0, -1.0, 0.5]], dtype=torch.float64)
    assert ((x.mean(0) @ x.T) < 0).any()
    w = make_weighting("upgrad", {"reg_eps": 1e-12}).weights((x @ x.T).unsqueeze(0))[0]
    update = w @ x
    assert (update @ x.T >= -1e-9 * update.norm() * x.norm(dim=1)).all() and update.norm() > 0.1
    # with the default regularisation (TorchJD's 1e-4 of the unit-trace Gram) it is close to that
    loose = make_weighting("upgrad").weights((x @ x.T).unsqueeze(0))[0] @ x
    assert (loose - update).norm() < 1e-2 * update.norm()


def test_sum_weights_the_active_tasks_by_one_and_absent_ones_by_zero():
    x = _conflicting(3, 5, 5)
    gram = (x @ x.T).unsqueeze(0)
    active = torch.tensor([True, False, True])
    result = make_weighting("sum")(
        gram, torch.zeros_like(gram), active=active, orders=torch.zeros(3, 2, dtype=torch.long)
    )
    assert result.weights.tolist() == [[1.0, 0.0, 1.0]]


def test_an_absent_task_gets_weight_0_and_the_others_the_method_on_their_own_gram():
    x = _conflicting(4, 3, 6)
    gram = (x @ x.T).unsqueeze(0)
    active = torch.tensor([True, False, True, True])
    orders = torch.zeros(4, 3, dtype=torch.long)
    for mode in ("upgrad", "mgda", "imtl_g", "aligned_mtl"):
        method = make_weighting(mode)
        weights = method(gram, torch.zeros_like(gram), active=active, orders=orders).weights[0]
        present = x[[0, 2, 3]]
        assert weights[1] == 0, mode
        assert torch.allclose(weights[[0, 2, 3]], method.weights((present @ present.T).unsqueeze(0))[0]), mode
