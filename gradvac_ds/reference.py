"""The dense GradVac loop on explicit per-task gradient vectors: the oracle for tests.

This is DESIGN.md section 1 written literally, one group at a time, on full gradient vectors, with
the same edge-case decisions as :mod:`gradvac_ds.algorithm` (zero-norm gradients and inactive tasks
are skipped, targets are clamped inside the correction). It is deliberately slow and simple and is
not a code path of the product. :func:`dense_weighted_groups` is the same oracle for the Gramian
methods of :mod:`gradvac_ds.weighting`: their weights from the Gram of the full vectors.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from gradvac_ds.algorithm import DEFAULT_MAX_TARGET, ZERO_RTOL, Mode
from gradvac_ds.weighting import GramianWeighting


class DenseResult(NamedTuple):
    """What the dense loop produces for one group ([n] update, [K, K] tensors) or for all groups
    ([P] update, [L, K, K] tensors).

    ``conditioning[i, j]`` is ``kappa = sum_k |A[i, k]| ||g_k|| / ||g_i'||`` when task i visited j
    (NaN where it did not): how far g_i' had cancelled. A Gram-space solver computes
    ``||g_i'||^2 = A_i G A_i^T`` with absolute error ~ eps ||sum_k |A_ik| g_k||^2, so its cosines agree
    with this loop to about ``eps * kappa^2``; tests scale their tolerance with it.
    """

    update: torch.Tensor
    targets: torch.Tensor
    conditioning: torch.Tensor


def dense_gradvac(
    task_grads: list[torch.Tensor],
    targets: torch.Tensor,
    *,
    mode: Mode | str,
    beta: float,
    active: list[bool],
    orders: list[list[int]],
    max_target: float = DEFAULT_MAX_TARGET,
) -> DenseResult:
    """Run the paper's loop on one group (targets bounded by ``max_target`` inside the correction,
    as in :func:`gradvac_ds.algorithm.solve`).

    task_grads: K vectors [n] (the task gradients on this group)
    targets:    [K, K] EMA targets phi_hat before the step
    Returns the update vector ``sum_i g_i'`` [n], the targets after the step [K, K] and the
    conditioning of each visit [K, K] (see :class:`DenseResult`).
    """
    mode = Mode(mode)
    grads = [g.to(torch.float64) for g in task_grads]
    new_targets = targets.to(torch.float64).clone()
    conditioning = torch.full_like(new_targets, float("nan"))
    update = torch.zeros_like(grads[0])
    for i, g_i in enumerate(grads):
        if not active[i]:
            continue
        if mode is Mode.SUM:
            update += g_i
            continue
        g_mod = g_i.clone()
        built_from = g_i.norm().item()  # sum of |coefficient| * norm over the vectors in g_mod
        for j in orders[i]:
            if not active[j]:
                continue
            norm_i, norm_j = g_mod.norm().item(), grads[j].norm().item()
            if norm_i <= ZERO_RTOL * built_from or norm_j == 0.0:
                continue
            conditioning[i, j] = built_from / norm_i
            phi = max(-1.0, min(1.0, (g_mod @ grads[j]).item() / (norm_i * norm_j)))
            stored = float(targets[i, j])
            target = 0.0 if mode is Mode.PCGRAD else min(max(stored, -max_target), max_target)
            if phi < target:
                root_t = math.sqrt(1 - target**2)
                coef = norm_i * (target * math.sqrt(max(1 - phi**2, 0.0)) - phi * root_t) / (norm_j * root_t)
                g_mod = g_mod + coef * grads[j]
                built_from += abs(coef) * norm_j
            if mode is Mode.GRADVAC:
                new_targets[i, j] = (1 - beta) * stored + beta * phi
        update += g_mod
    return DenseResult(update, new_targets, conditioning)


def dense_gradvac_groups(
    task_grads: list[torch.Tensor],
    group_slices: list[list[slice]],
    targets: torch.Tensor,
    *,
    mode: Mode | str,
    beta: float,
    active: list[bool],
    orders: list[list[int]],
    max_target: float = DEFAULT_MAX_TARGET,
) -> DenseResult:
    """The loop for every group of a flat gradient.

    task_grads:   K flat vectors [P]
    group_slices: for each group l, the slices of the flat vector that belong to it
    targets:      [L, K, K]
    Returns the flat update [P], the targets after the step [L, K, K] and the conditioning of each
    visit [L, K, K].
    """
    update = torch.zeros_like(task_grads[0], dtype=torch.float64)
    new_targets = targets.to(torch.float64).clone()
    conditioning = torch.full_like(new_targets, float("nan"))
    for l, slices in enumerate(group_slices):
        pieces = [torch.cat([g[s] for s in slices]) for g in task_grads]
        group_update, new_targets[l], conditioning[l] = dense_gradvac(
            pieces, targets[l], mode=mode, beta=beta, active=active, orders=orders, max_target=max_target
        )
        offset = 0
        for s in slices:
            n = s.stop - s.start
            update[s] = group_update[offset : offset + n]
            offset += n
    return DenseResult(update, new_targets, conditioning)


def dense_weighted_groups(
    task_grads: list[torch.Tensor],
    group_slices: list[list[slice]],
    weighting: GramianWeighting,
    *,
    active: list[bool],
) -> torch.Tensor:
    """A Gramian method on full gradient vectors: for each group l, the matrix X_l [k, n_l] of the
    k active tasks' pieces, its Gram ``X_l X_l^T`` in float64, the method's weights w_l [k] on it,
    and the update ``w_l^T X_l``. Returns the flat update [P] (absent tasks contribute nothing)."""
    update = torch.zeros_like(task_grads[0], dtype=torch.float64)
    present = [k for k, is_active in enumerate(active) if is_active]
    for slices in group_slices:
        matrix = torch.stack([torch.cat([task_grads[k][s] for s in slices]) for k in present]).double()
        weights = weighting.weights((matrix @ matrix.T).unsqueeze(0))[0]
        group_update, offset = weights @ matrix, 0
        for s in slices:
            update[s] = group_update[offset : offset + s.stop - s.start]
            offset += s.stop - s.start
    return update
