"""The Weighting seam: one step's task weights from the per-group Gram of the task gradients.

Every method here maps the Gram tensor ``G[l] = X_l X_l^T`` [L, K, K] of the K task gradients on
each of the L parameter groups to combination weights ``w`` [L, K]; the update on group l is
``sum_k w[l, k] g_k``. Nothing else of the gradients is needed, which is why the engine can run
any of them on ZeRO shards: the Gram is summed over shards with one all-reduce, the weights are
applied to each rank's own shard.

Two kinds:

- :class:`GramianWeighting`: a pure function of the Gram of the tasks present in the step
  (UPGrad, MGDA, IMTL-G, Aligned-MTL, sum). It sees the [L, k, k] sub-Gram of the k active tasks
  and returns [L, k]; absent tasks get weight 0.
- sequential methods (GradVac, PCGrad): they build a [L, K, K] combination ``A`` task by task in
  random visiting orders and keep EMA targets; ``w = 1^T A``. They implement
  :meth:`Weighting.__call__` directly.

Both return a :class:`~gradvac_ds.algorithm.SolveResult`, so the engine, the statistics and the
analysis read every method the same way; a method without surgery reports no visits and no firing.
"""

from __future__ import annotations

import dataclasses
import typing
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import torch

from gradvac_ds.algorithm import SolveResult, check_inputs, cosine_matrix


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """A method without options."""


class Weighting(ABC):
    """One multi-task method. ``name`` is its ``gradvac.mode``; ``Options`` the dataclass of its
    ``gradvac.options`` (every field with a default)."""

    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions

    def __init__(self, options: Any = None) -> None:
        self.options = self.Options() if options is None else options

    @classmethod
    def parse_options(cls, values: Mapping[str, Any]) -> Any:
        """``Options`` from a mapping; ValueError naming the field and the allowed fields/types."""
        fields = {f.name: f for f in dataclasses.fields(cls.Options)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(f"{unknown} are not options of mode {cls.name!r}; allowed: {sorted(fields)}")
        hints = typing.get_type_hints(cls.Options)
        for key, value in values.items():
            expected = hints[key]
            numeric = expected is float and isinstance(value, int) and not isinstance(value, bool)
            if not ((isinstance(value, expected) and not isinstance(value, bool)) or numeric):
                raise ValueError(f"{key} = {value!r} must be {expected.__name__}")
        return cls.Options(**{k: float(v) if hints[k] is float else v for k, v in values.items()})

    @abstractmethod
    def __call__(
        self, gram: torch.Tensor, targets: torch.Tensor, *, active: torch.Tensor, orders: torch.Tensor
    ) -> SolveResult:
        """Weights for one step.

        gram:    [L, K, K] Gram of the task gradients per group (any float dtype)
        targets: [L, K, K] EMA targets (returned unchanged by methods that do not use them)
        active:  [K] bool, the tasks present in the step
        orders:  [K, K - 1] long, the step's task visiting orders (sequential methods only)
        Raises :class:`~gradvac_ds.errors.NonFiniteGramError` on a non-finite Gram.
        """


class GramianWeighting(Weighting):
    """A method whose weights are a function of the active tasks' Gram alone."""

    @abstractmethod
    def weights(self, gram: torch.Tensor) -> torch.Tensor:
        """[L, k, k] float64 Gram of the k >= 1 active tasks -> [L, k] float64 weights."""

    def __call__(
        self, gram: torch.Tensor, targets: torch.Tensor, *, active: torch.Tensor, orders: torch.Tensor
    ) -> SolveResult:
        check_inputs(gram, targets, active, orders)
        gram = gram.to(torch.float64)
        active = active.to(torch.bool)
        present = active.nonzero().flatten()
        weights = torch.zeros(gram.shape[:2], dtype=torch.float64)
        if len(present):
            weights[:, present] = self.weights(gram[:, present][:, :, present])
        nan = torch.full_like(gram, float("nan"))
        return SolveResult(
            weights=weights,
            targets=targets.to(torch.float64).clone(),
            cosine=cosine_matrix(gram),
            visit_cosine=nan,
            fired=torch.zeros(gram.shape, dtype=torch.bool),
            coefficient=torch.zeros_like(gram),
            active=active.clone(),
        )


def normalized(gram: torch.Tensor) -> torch.Tensor:
    """``G / trace(G)`` per group [L, k, k] (0 where the trace is 0): the Gram of the task
    gradients scaled to unit total squared norm, so that epsilons and tolerances are relative."""
    trace = gram.diagonal(dim1=-2, dim2=-1).sum(-1)
    scale = torch.where(trace > 0, 1.0 / trace.clamp_min(torch.finfo(gram.dtype).tiny), 0.0)
    return gram * scale.view(-1, 1, 1)
