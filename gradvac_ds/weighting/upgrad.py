"""UPGrad (Quinton & Rey, 2024, "Jacobian Descent for Multi-Objective Optimization"): project each
task gradient onto the dual cone of all task gradients (the directions that conflict with none)
and average the projections; batched over the L groups and the k projections.

By the paper's Proposition 1 the projection of ``X^T u`` is ``X^T v`` with

    v = argmin_{v >= u} v^T G v

so with the preference ``p`` (uniform 1/k) and ``u_i = p_i e_i``, ``w = sum_i v_i``. As in TorchJD
the Gram is first scaled to unit trace (:func:`~gradvac_ds.weighting.base.normalized`) and made
positive definite with ``reg_eps I``; TorchJD instead zeroes a Gram whose trace is below an absolute
``norm_eps`` (1e-4), so tiny gradients give it the mean, not UPGrad.

The k·L quadratic programs are solved together by :func:`nonnegative_qp` on ``x = v - u >= 0``.
"""

from __future__ import annotations

import dataclasses

import torch

from gradvac_ds.weighting.base import GramianWeighting, normalized


@dataclasses.dataclass(frozen=True)
class UPGradOptions:
    """reg_eps: added to the diagonal of the unit-trace Gram (> 0, TorchJD's default 1e-4)."""

    reg_eps: float = 1e-4

    def __post_init__(self) -> None:
        if not self.reg_eps > 0:
            raise ValueError(f"reg_eps = {self.reg_eps!r} must be > 0")


class NotConvergedError(RuntimeError):
    """The active-set solver exceeded its iteration bound."""


def nonnegative_qp(hessian: torch.Tensor, linear: torch.Tensor, tolerance: float = 1e-13) -> torch.Tensor:
    """``argmin_{x >= 0} x^T H x / 2 + c^T x`` for a batch of positive definite H [B, n, n] and
    c [B, n], by the primal active-set method of Lawson & Hanson (1974, NNLS), all problems in
    lockstep.

    A free set F starts empty with x = 0. While some x_j = 0 has a negative gradient
    ``(H x + c)_j < -tolerance``, the most negative such j joins F; then the unconstrained minimum z
    on F (``H_FF z_F = -c_F``) is taken if it is positive, else x moves towards z until a coordinate
    reaches 0, which leaves F, and z is solved again. Each problem has a unique solution (H positive
    definite), reached in finitely many steps; 4n + 8 rounds bound them here.
    """
    batch, n = linear.shape
    x = torch.zeros_like(linear)
    free = torch.zeros(batch, n, dtype=torch.bool)
    settled = torch.ones(batch, dtype=torch.bool)  # x is the minimum on its free set
    done = torch.zeros(batch, dtype=torch.bool)
    eye = torch.eye(n, dtype=hessian.dtype).expand_as(hessian)
    for _ in range(4 * n + 8):
        gradient = (hessian @ x.unsqueeze(-1)).squeeze(-1) + linear
        candidate = torch.where(~free & (gradient < -tolerance), gradient, float("inf"))
        has_candidate = torch.isfinite(candidate).any(-1)
        done |= settled & ~has_candidate
        if done.all():
            return x
        enter = settled & has_candidate & ~done
        free[enter, candidate[enter].argmin(-1)] = True
        both = free.unsqueeze(-1) & free.unsqueeze(-2)
        system = torch.where(both, hessian, eye)
        z = torch.linalg.solve(system, torch.where(free, -linear, 0.0).unsqueeze(-1)).squeeze(-1)
        z = torch.where(free, z, 0.0)
        blocked = free & (z <= 0)
        ratio = torch.where(blocked, x / torch.where(blocked, x - z, 1.0), float("inf"))
        alpha = ratio.amin(-1, keepdim=True).clamp(0.0, 1.0)
        feasible = ~blocked.any(-1)
        moving = ~done & ~feasible
        x = torch.where(done.unsqueeze(-1), x, torch.where(feasible.unsqueeze(-1), z, x + alpha * (z - x)))
        leaving = moving.unsqueeze(-1) & free & (blocked & (ratio <= alpha) | (x <= 0))
        x = torch.where(leaving, 0.0, x)
        free &= ~leaving
        settled = feasible | done
    raise NotConvergedError(f"the active-set QP did not converge in {4 * n + 8} rounds")


class UPGrad(GramianWeighting):
    """Average of the task gradients projected onto the dual cone of all of them."""

    name = "upgrad"
    Options = UPGradOptions

    def weights(self, gram: torch.Tensor) -> torch.Tensor:
        groups, k = gram.shape[:2]
        hessian = normalized(gram) + self.options.reg_eps * torch.eye(k, dtype=gram.dtype)
        lower = torch.eye(k, dtype=gram.dtype) / k  # row i: u_i = p_i e_i
        problems = hessian.unsqueeze(1).expand(groups, k, k, k).reshape(groups * k, k, k)
        bounds = lower.expand(groups, k, k).reshape(groups * k, k)
        # v = u + x, x >= 0: minimise (u + x)^T H (u + x) / 2 -> linear term H u
        shift = (problems @ bounds.unsqueeze(-1)).squeeze(-1)
        v = bounds + nonnegative_qp(problems, shift)
        return v.view(groups, k, k).sum(1)
