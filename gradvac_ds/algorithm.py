"""GradVac / PCGrad in coefficient space, vectorised over parameter groups.

Every corrected task gradient is a linear combination of the original task gradients,
``g_i' = sum_k A[i, k] g_k``, so the paper's loop (Wang et al., ICLR 2021, Algorithm 1) needs only
the Gram tensor ``G[l] = X_l X_l^T`` of the K original task gradients on each group l:

    g_i' . g_j   = (A G)[i, j] = (G A_i)[j]        (G symmetric)
    ||g_i'||^2   = A_i . (G A_i)
    ||g_j||^2    = G[j, j]

For task i and each other task j in i's visiting order, with ``phi = cos(g_i', g_j)`` and target
``t = phi_hat[l, i, j]``:

    if phi < t:   A[i, j] += ||g_i'|| (t sqrt(1 - phi^2) - phi sqrt(1 - t^2)) / (||g_j|| sqrt(1 - t^2))
    phi_hat[l, i, j] <- (1 - beta) phi_hat[l, i, j] + beta phi

and the update on group l is ``sum_i g_i' = sum_k w[l, k] g_k`` with ``w[l] = 1^T A``. PCGrad is
the case t = 0 with no EMA; ``sum`` applies no surgery (w = 1 on the active tasks).

Shapes: L groups, K tasks. The only Python loop runs over the K - 1 positions of the visiting
orders; each iteration visits one partner for every task i and every group at once, with a handful
of [L, K] tensor operations. Everything is float64.

Edge cases, decided here and mirrored by :mod:`gradvac_ds.reference`:
- a task with a zero gradient on a group neither corrects nor is corrected there, and its targets on
  that group stay as they are (cosine undefined). ``g_i'`` counts as zero when
  ``||g_i'|| <= ZERO_RTOL * sum_k |A[i, k]| ||g_k||``, i.e. when it has cancelled down to rounding
  noise of the vectors that built it (a correction can cancel g_i exactly when g_j is antiparallel).
  Reading ``||g_i'||`` from the Gram costs precision as g_i' cancels: with
  ``kappa = sum_k |A[i, k]| ||g_k|| / ||g_i'||`` the cosines carry a relative error of about
  ``eps * kappa^2`` (float64 eps 2.2e-16), at most ~2e-4 at the threshold, where g_i' is a
  millionth of its parts and its corrections are as small;
- a task absent from the step (``active[k]`` False) has weight 0 and untouched targets;
- targets are clamped to ``[-max_target, max_target]`` inside the correction formula (the stored
  EMA is not clamped). This bounds the correction: with ``t = max_target`` the multiple of g_j
  added to g_i' has norm at most ``||g_i'|| (t / sqrt(1 - t^2) + 1)``, 23.4 ||g_i'|| at the
  default 0.999, where targets of +-1 would otherwise divide by zero and targets within 1e-6 of 1
  amplify up to ~700x. Targets inside the bound (EMA cosines below 0.999, the normal range) follow
  the paper's rule exactly;
- a non-finite Gram is refused with :class:`NonFiniteGramError`; the caller skips the step.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import torch

from gradvac_ds.errors import NonFiniteGramError

DEFAULT_MAX_TARGET = 0.999
"""Largest |target| the correction formula uses (it divides by sqrt(1 - t^2)); see the docstring."""

ZERO_RTOL = 1e-6
"""A corrected gradient whose norm is below this fraction of the norms that built it is zero."""


class Mode(str, Enum):
    """Gradient surgery applied across tasks."""

    GRADVAC = "gradvac"
    PCGRAD = "pcgrad"
    SUM = "sum"


@dataclass
class SolveResult:
    """Output of :func:`solve` for one step.

    weights:      [L, K]    update on group l is sum_k weights[l, k] g_k
    targets:      [L, K, K] EMA targets after this step (a new tensor; the input is not modified)
    cosine:       [L, K, K] cosine of the original task gradients, NaN where undefined
    visit_cosine: [L, K, K] cos(g_i', g_j) when task i visited j, NaN where not visited
    fired:        [L, K, K] bool, the correction of i towards j fired
    coefficient:  [L, K, K] multiple of g_j added to g_i' (0 where not fired)
    active:       [K]       bool, tasks present in this step
    """

    weights: torch.Tensor
    targets: torch.Tensor
    cosine: torch.Tensor
    visit_cosine: torch.Tensor
    fired: torch.Tensor
    coefficient: torch.Tensor
    active: torch.Tensor


def draw_task_orders(num_tasks: int, generator: torch.Generator) -> torch.Tensor:
    """One visiting order per task over the other tasks: LongTensor [K, K - 1].

    Row i is a uniformly random permutation of ``{0..K-1} \\ {i}`` drawn from ``generator``; ranks
    that seed the generator identically draw identical orders.
    """
    orders = torch.empty(num_tasks, max(num_tasks - 1, 0), dtype=torch.long)
    everyone = torch.arange(num_tasks)
    for i in range(num_tasks):
        others = torch.cat([everyone[:i], everyone[i + 1 :]])
        orders[i] = others[torch.randperm(num_tasks - 1, generator=generator)]
    return orders


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator for one step's task orders, a pure function of (seed, step).

    Deriving it per step (rather than carrying one generator along) makes a resumed run draw the
    same orders as an uninterrupted one without checkpointing generator state.
    """
    return torch.Generator().manual_seed((seed * 1_000_003 + step) % (2**63 - 1))


def cosine_matrix(gram: torch.Tensor) -> torch.Tensor:
    """Cosines of the original gradients from their Gram [L, K, K]; NaN where a norm is zero."""
    norms = gram.diagonal(dim1=-2, dim2=-1).clamp_min(0).sqrt()
    denom = norms.unsqueeze(-1) * norms.unsqueeze(-2)
    cos = gram / denom
    return cos.masked_fill(denom == 0, float("nan")).clamp(-1.0, 1.0)


def check_inputs(
    gram: torch.Tensor, targets: torch.Tensor, active: torch.Tensor, orders: torch.Tensor
) -> None:
    """Shapes [L, K, K], [L, K, K], [K], [K, K - 1] (ValueError) and a finite Gram
    (:class:`NonFiniteGramError`)."""
    if gram.dim() != 3 or gram.shape[1] != gram.shape[2]:
        raise ValueError(f"gram must have shape [L, K, K], got {tuple(gram.shape)}")
    num_tasks = gram.shape[1]
    if targets.shape != gram.shape:
        raise ValueError(f"targets must have shape {tuple(gram.shape)}, got {tuple(targets.shape)}")
    if active.shape != (num_tasks,):
        raise ValueError(f"active must have shape [{num_tasks}], got {tuple(active.shape)}")
    if orders.shape != (num_tasks, max(num_tasks - 1, 0)):
        raise ValueError(f"orders must have shape [{num_tasks}, {num_tasks - 1}], got {tuple(orders.shape)}")
    if not torch.isfinite(gram).all():
        raise NonFiniteGramError("the Gram tensor holds NaN or Inf; skip this step")


def solve(
    gram: torch.Tensor,
    targets: torch.Tensor,
    *,
    mode: Mode | str,
    beta: float,
    active: torch.Tensor,
    orders: torch.Tensor,
    max_target: float = DEFAULT_MAX_TARGET,
) -> SolveResult:
    """Combination weights for one step (see the module docstring for the maths).

    gram:    [L, K, K] Gram of the original task gradients per group (any float dtype; used in float64)
    targets: [L, K, K] EMA targets phi_hat before the step
    active:  [K] bool, tasks present in the step
    orders:  [K, K - 1] long, task i visits orders[i] in sequence (see :func:`draw_task_orders`)
    max_target: bound on |target| inside the correction, in (0, 1)
    """
    mode = Mode(mode)
    check_inputs(gram, targets, active, orders)
    gram = gram.to(torch.float64)
    targets = targets.to(torch.float64)
    active = active.to(torch.bool)
    num_groups, num_tasks, _ = gram.shape
    cosine = cosine_matrix(gram)
    nan = torch.full_like(gram, float("nan"))
    fired = torch.zeros(gram.shape, dtype=torch.bool)
    coefficient = torch.zeros_like(gram)
    if mode is Mode.SUM:
        weights = active.to(torch.float64).expand(num_groups, num_tasks).clone()
        return SolveResult(weights, targets.clone(), cosine, nan, fired, coefficient, active.clone())

    # A[l, i, :] are the coefficients of g_i' on group l; GA[l, i, k] = g_k . g_i' (G symmetric).
    coef = torch.diag_embed(active.to(torch.float64)).expand(num_groups, -1, -1).clone()
    gram_coef = gram * active.to(torch.float64).view(1, -1, 1)
    task_norm = gram.diagonal(dim1=-2, dim2=-1).clamp_min(0).sqrt()  # [L, K]
    built_from = task_norm * active  # [L, K]: sum_k |A_ik| ||g_k||, scale of the rounding noise
    new_targets = targets.clone()
    visit_cosine = nan.clone()
    rows = torch.arange(num_tasks)
    # Visits at the same position of different tasks' orders are independent (task i only changes
    # its own g_i'), so each iteration visits (i, orders[i, p]) for every i at once.
    for position in range(num_tasks - 1):
        partner = orders[:, position]  # [K]: task i visits j = partner[i]
        index = partner.view(1, num_tasks, 1).expand(num_groups, num_tasks, 1)
        norm_i = (coef * gram_coef).sum(-1).clamp_min(0).sqrt()  # ||g_i'|| [L, K]
        norm_j = task_norm[:, partner]
        pair_active = active & active[partner]
        valid = pair_active & (norm_i > ZERO_RTOL * built_from) & (norm_j > 0)
        denom = torch.where(valid, norm_i * norm_j, torch.ones_like(norm_i))
        phi = (gram_coef.gather(2, index).squeeze(2) / denom).clamp(-1.0, 1.0)
        phi = torch.where(valid, phi, torch.zeros_like(phi))
        stored = targets[:, rows, partner]
        if mode is Mode.PCGRAD:
            target = torch.zeros_like(phi)
        else:
            target = stored.clamp(-max_target, max_target)
        fire = valid & (phi < target)
        root_t = (1.0 - target * target).sqrt()
        root_phi = (1.0 - phi * phi).clamp_min(0).sqrt()
        safe_norm_j = torch.where(valid, norm_j, torch.ones_like(norm_j))
        added = norm_i * (target * root_phi - phi * root_t) / (safe_norm_j * root_t)
        added = torch.where(fire, added, torch.zeros_like(added))
        coef.scatter_add_(2, index, added.unsqueeze(2))
        gram_coef += added.unsqueeze(2) * gram[:, partner, :]
        built_from += added.abs() * norm_j
        visit_cosine[:, rows, partner] = torch.where(valid, phi, visit_cosine[:, rows, partner])
        fired[:, rows, partner] = fire
        coefficient[:, rows, partner] = added
        if mode is Mode.GRADVAC:
            new_targets[:, rows, partner] = torch.where(valid, (1.0 - beta) * stored + beta * phi, stored)
    weights = coef.sum(1)
    return SolveResult(weights, new_targets, cosine, visit_cosine, fired, coefficient, active.clone())
