"""The single-process front end against the dense reference."""

from __future__ import annotations

import torch
from torch import nn

from gradvac_ds.algorithm import draw_task_orders, step_generator
from gradvac_ds.config import GradVacConfig
from gradvac_ds.local import LocalGradVac
from gradvac_ds.reference import dense_gradvac_groups, dense_weighted_groups

TASKS = ("de-en", "fr-en", "ja-en")


def _model() -> nn.Module:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0)
    return nn.Sequential(
        nn.TransformerEncoder(layer, 2, enable_nested_tensor=False), nn.Linear(8, 3)
    ).double()


def _losses(model: nn.Module, step: int) -> dict[str, torch.Tensor]:
    out = {}
    for k, task in enumerate(TASKS):
        gen = torch.Generator().manual_seed(100 * step + k)
        x = torch.randn(4, 5, 8, generator=gen, dtype=torch.float64)
        out[task] = ((model(x) - k) ** 2).mean()
    return out


def test_three_steps_match_reference():
    model, ref = _model(), _model()
    cfg = GradVacConfig(beta=0.3, tasks=TASKS)
    gv = LocalGradVac(model, cfg)
    params = [(n, p) for n, p in ref.named_parameters()]
    slices, offset = [[] for _ in gv.grouping.group_names], 0
    for name, p in params:
        slices[gv.grouping.group_of[name]].append(slice(offset, offset + p.numel()))
        offset += p.numel()
    ref_targets = torch.zeros(gv.grouping.num_groups, 3, 3, dtype=torch.float64)
    opt, ref_opt = torch.optim.SGD(model.parameters(), lr=0.1), torch.optim.SGD(ref.parameters(), lr=0.1)
    fired = 0
    for step in range(3):
        opt.zero_grad()
        result = gv.backward(_losses(model, step))
        fired += int(result.fired.sum())
        opt.step()
        flat = []
        for loss in _losses(ref, step).values():
            grads = torch.autograd.grad(loss, [p for _, p in params])
            flat.append(torch.cat([g.reshape(-1) for g in grads]))
        orders = draw_task_orders(3, step_generator(0, step)).tolist()
        update, ref_targets, _ = dense_gradvac_groups(
            flat, slices, ref_targets, mode="gradvac", beta=0.3, active=[True] * 3, orders=orders
        )
        offset = 0
        for _, p in params:
            p.grad = update[offset : offset + p.numel()].view_as(p)
            offset += p.numel()
        ref_opt.step()
    assert fired > 0
    torch.testing.assert_close(gv.state.targets, ref_targets, rtol=1e-9, atol=1e-12)
    for (n, p), (_, q) in zip(model.named_parameters(), ref.named_parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12, msg=n)


def test_non_finite_task_skips_step_and_keeps_targets():
    model = _model()
    gv = LocalGradVac(model, GradVacConfig(tasks=TASKS))
    gv.backward(_losses(model, 0))
    before = gv.state.targets.clone()
    losses = _losses(model, 1)
    losses["fr-en"] = losses["fr-en"] * float("inf")
    assert gv.backward(losses) is None
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(gv.state.targets, before)


def test_sum_mode_is_plain_backward_and_absent_task():
    model = _model()
    gv = LocalGradVac(model, GradVacConfig(mode="sum", tasks=TASKS))
    losses = _losses(model, 0)
    del losses["ja-en"]
    gv.backward(losses)
    combined = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    sum(losses.values()).backward()
    for got, p in zip(combined, model.parameters(), strict=True):
        torch.testing.assert_close(got, p.grad, rtol=1e-12, atol=1e-14)


def test_gramian_methods_match_the_dense_method_on_full_vectors():
    for mode in ("upgrad", "mgda", "imtl_g", "aligned_mtl"):
        model = _model()
        gv = LocalGradVac(model, GradVacConfig(mode=mode, tasks=TASKS))
        params = list(model.named_parameters())
        slices, offset = [[] for _ in gv.grouping.group_names], 0
        for name, p in params:
            slices[gv.grouping.group_of[name]].append(slice(offset, offset + p.numel()))
            offset += p.numel()
        losses = _losses(model, 0)
        flat = []
        for loss in losses.values():
            grads = torch.autograd.grad(loss, [p for _, p in params], retain_graph=True)
            flat.append(torch.cat([g.reshape(-1) for g in grads]))
        result = gv.backward(losses)
        want = dense_weighted_groups(flat, slices, gv.config.weighting, active=[True] * 3)
        got = torch.cat([p.grad.reshape(-1) for _, p in params])
        assert (got - want).abs().max() <= 1e-12 * want.abs().max(), mode
        assert (result.weights - 1).abs().max() > 1e-3 and not result.fired.any(), mode
        assert gv.state.step == 1 and not gv.state.targets.any(), mode
