"""Gradient surgery in task order: GradVac (Wang et al., ICLR 2021) and its special case PCGrad
(Yu et al., NeurIPS 2020), the sequential methods of the seam. The maths and edge cases are those
of :func:`gradvac_ds.algorithm.solve`: each task's gradient is corrected towards every other task
in a random order, when their cosine is below the target (GradVac: a per-group EMA of the observed
cosines, rate ``beta``; PCGrad: 0), and the update is the sum of the corrected gradients."""

from __future__ import annotations

import dataclasses

import torch

from gradvac_ds.algorithm import DEFAULT_MAX_TARGET, SolveResult, solve
from gradvac_ds.weighting.base import Weighting


@dataclasses.dataclass(frozen=True)
class GradVacOptions:
    """beta: EMA rate of the targets in [0, 1]; max_target: bound on |target| in (0, 1) inside the
    correction (see :mod:`gradvac_ds.algorithm`)."""

    beta: float = 1e-2
    max_target: float = DEFAULT_MAX_TARGET

    def __post_init__(self) -> None:
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"beta = {self.beta!r} must be in [0, 1]")
        if not 0.0 < self.max_target < 1.0:
            raise ValueError(f"max_target = {self.max_target!r} must be in (0, 1)")


class GradVac(Weighting):
    """Gradient Vaccine: targets are EMA cosines, corrections fire below them."""

    name = "gradvac"
    Options = GradVacOptions

    def __call__(
        self, gram: torch.Tensor, targets: torch.Tensor, *, active: torch.Tensor, orders: torch.Tensor
    ) -> SolveResult:
        return solve(
            gram, targets, mode=self.name, beta=self.options.beta, active=active, orders=orders,
            max_target=self.options.max_target,
        )  # fmt: skip


class PCGrad(GradVac):
    """Projecting conflicting gradients: GradVac with target 0 and no EMA (``beta`` is unused)."""

    name = "pcgrad"
