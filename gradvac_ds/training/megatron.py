"""Data- and tensor-parallel topology: megatron-core ``parallel_state`` when it is initialised,
plain DeepSpeed data parallelism (TP = 1, DP = world) otherwise.

Ranks are laid out by megatron: ``world = tp * dp`` with consecutive ranks forming a
tensor-parallel group. A tensor-parallel-sharded parameter's Gram contributions are summed over
the tensor-parallel group, then everything over the data-parallel group.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.distributed as dist
from megatron.core import parallel_state

from gradvac_ds.config import divisors


class MegatronMPU:
    """The ``mpu`` object for ``deepspeed.initialize(mpu=...)``.

    DeepSpeed calls ``get_model_parallel_world_size``/``get_model_parallel_rank``, which
    ``parallel_state`` lacks; they are answered from megatron's model-parallel group (TP x PP).
    Every other attribute is forwarded to ``megatron.core.parallel_state``.
    """

    def __getattr__(self, name: str) -> object:
        return getattr(parallel_state, name)

    def get_model_parallel_world_size(self) -> int:
        """Size of megatron's model-parallel group."""
        return dist.get_world_size(group=parallel_state.get_model_parallel_group())

    def get_model_parallel_rank(self) -> int:
        """This rank's index in megatron's model-parallel group."""
        return dist.get_rank(group=parallel_state.get_model_parallel_group())


def init_model_parallel(tensor_parallel_size: int = 1) -> None:
    """Initialise megatron's parallel_state after ``deepspeed.init_distributed``.

    Idempotent for the same size; raises if it is already initialised with another size, if
    ``torch.distributed`` is not initialised, or if the size does not divide the world size.
    """
    if (
        isinstance(tensor_parallel_size, bool)
        or not isinstance(tensor_parallel_size, int)
        or tensor_parallel_size < 1
    ):
        raise ValueError(f"tensor_parallel_size must be a positive integer, got {tensor_parallel_size!r}")
    if not dist.is_initialized():
        raise RuntimeError("torch.distributed is not initialised: call deepspeed.init_distributed() first")
    world = dist.get_world_size()
    if world % tensor_parallel_size:
        raise ValueError(
            f"tensor_parallel_size {tensor_parallel_size} must divide the world size {world}; "
            f"allowed: {divisors(world)}"
        )
    if parallel_state.model_parallel_is_initialized():
        current = parallel_state.get_tensor_model_parallel_world_size()
        if current != tensor_parallel_size:
            raise RuntimeError(
                f"megatron parallel_state is already initialised with tensor-parallel size "
                f"{current}, not {tensor_parallel_size}"
            )
        return
    parallel_state.initialize_model_parallel(tensor_model_parallel_size=tensor_parallel_size)


@dataclass(frozen=True)
class ParallelGroups:
    """Groups the GradVac engine reduces over.

    ``data_parallel``: ranks holding replicas of the same shard (ZeRO partitions over it).
    ``tensor_parallel``: ranks sharing one model replica; None when ``tp_size == 1`` without megatron.
    """

    data_parallel: dist.ProcessGroup
    tensor_parallel: dist.ProcessGroup | None
    tp_size: int


def parallel_groups() -> ParallelGroups:
    """Groups from megatron's parallel_state if initialised, else DP = world and TP = 1."""
    if parallel_state.model_parallel_is_initialized():
        return ParallelGroups(
            parallel_state.get_data_parallel_group(),
            parallel_state.get_tensor_model_parallel_group(),
            parallel_state.get_tensor_model_parallel_world_size(),
        )
    if not dist.is_initialized():
        raise RuntimeError("torch.distributed is not initialised: call deepspeed.init_distributed() first")
    return ParallelGroups(dist.group.WORLD, None, 1)
