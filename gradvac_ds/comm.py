"""The engine's seams: the collectives it calls (:class:`Comm`) and the phases it reports
(:class:`StepObserver`).

Tests and benchmarks pass their own subclass to :class:`~gradvac_ds.engine.GradVacEngine` to count
bytes, record Gram tensors or time phases, instead of patching module globals. Every collective
the engine issues goes through one ``Comm``; DeepSpeed's own gradient reductions do not (DeepSpeed's
``comms_logger`` counts those).

Phases of one engine step, in order: ``capture`` (per task: copy of the reduced partition),
``gram`` (local Gram slices), ``all_reduce`` (the one ``[L, K, K]`` all-reduce), ``solve``,
``agreement`` (cross-rank check, every ``consistency_check_interval`` steps), ``combine`` (the
weighted sum written where the optimizer reads), ``optimizer`` (DeepSpeed's ``step()``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from deepspeed import comm as dist

PHASES = ("capture", "gram", "all_reduce", "solve", "agreement", "combine", "optimizer")


class Comm:
    """Collectives over ``deepspeed.comm`` (NCCL, gloo, ...); ``group=None`` is the world."""

    def all_reduce(self, tensor: torch.Tensor, op: Any = dist.ReduceOp.SUM, group: Any = None) -> None:
        """In-place reduction of ``tensor`` over ``group``."""
        dist.all_reduce(tensor, op=op, group=group)

    def all_gather_into_tensor(self, output: torch.Tensor, tensor: torch.Tensor, group: Any = None) -> None:
        """``output`` [world * n] receives every rank's ``tensor`` [n], in rank order."""
        dist.all_gather_into_tensor(output, tensor, group=group)

    def all_gather_object(self, value: Any, group: Any = None) -> list[Any]:
        """Every rank's ``value`` (picklable), in rank order; only on error paths."""
        out: list[Any] = [None] * self.world_size(group)
        dist.all_gather_object(out, value, group=group)
        return out

    def world_size(self, group: Any = None) -> int:
        return dist.get_world_size(group=group)

    def rank(self, group: Any = None) -> int:
        return dist.get_rank(group=group)


class StepObserver:
    """Receives the engine's phases; the default does nothing and costs nothing."""

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Wraps the work of phase ``name`` (one of :data:`PHASES`)."""
        yield
