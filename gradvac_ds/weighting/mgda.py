"""MGDA: the minimum-norm point of the convex hull of the task gradients (Désidéri, 2012; as a
multi-task method Sener & Koltun, NeurIPS 2018, "Multi-Task Learning as Multi-Objective
Optimization"), with their Frank-Wolfe solver (Algorithm 2), batched over the L groups.

    w = argmin_{w in simplex} w^T G w          (update sum_k w_k g_k: the min-norm convex combination)

Frank-Wolfe from the centre ``w = 1/k``: pick ``t = argmin_j (G w)_j`` (the vertex e_t of steepest
descent), then the exact line search on the segment [w, e_t] of the quadratic
``(1 - g)^2 w^T G w + 2 g (1 - g) (G w)_t + g^2 G_tt``:

    g = 1                                  if G_tt <= (G w)_t
    g = 0                                  elif w^T G w <= (G w)_t
    g = (w^T G w - (G w)_t) / (w^T G w + G_tt - 2 (G w)_t)     otherwise

and ``w <- (1 - g) w + g e_t``; a group stops once its step g falls below ``epsilon`` (the step is
still applied, as in the paper's loop) or after ``max_iters`` steps. Groups run in lockstep, each
with its own stop. The result does not depend on the scale of G except through the step tests.
"""

from __future__ import annotations

import dataclasses

import torch

from gradvac_ds.weighting.base import GramianWeighting


@dataclasses.dataclass(frozen=True)
class MGDAOptions:
    """epsilon: stop when the Frank-Wolfe step is below it (> 0); max_iters: at most this many
    steps (>= 1). Defaults are TorchJD's."""

    epsilon: float = 1e-3
    max_iters: int = 100

    def __post_init__(self) -> None:
        if not self.epsilon > 0:
            raise ValueError(f"epsilon = {self.epsilon!r} must be > 0")
        if self.max_iters < 1:
            raise ValueError(f"max_iters = {self.max_iters!r} must be >= 1")


class MGDA(GramianWeighting):
    """Min-norm convex combination by batched Frank-Wolfe."""

    name = "mgda"
    Options = MGDAOptions

    def weights(self, gram: torch.Tensor) -> torch.Tensor:
        groups, k = gram.shape[:2]
        w = torch.full((groups, k), 1.0 / k, dtype=torch.float64)
        running = torch.ones(groups, dtype=torch.bool)
        rows = torch.arange(groups)
        for _ in range(self.options.max_iters):
            gw = (gram @ w.unsqueeze(-1)).squeeze(-1)  # [L, k]
            t = gw.argmin(-1)
            a = gw[rows, t]  # w^T G e_t
            b = (w * gw).sum(-1)  # w^T G w
            c = gram[rows, t, t]  # e_t^T G e_t
            inner = (b - a) / torch.where(b + c - 2 * a != 0, b + c - 2 * a, 1.0)
            step = torch.where(c <= a, 1.0, torch.where(b <= a, 0.0, inner))
            step = torch.where(running, step, 0.0)
            w = w * (1 - step).unsqueeze(-1)
            w[rows, t] += step
            running &= step >= self.options.epsilon
            if not running.any():
                break
        return w
