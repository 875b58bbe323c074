"""Which ranks hold which copy of a gradient element: the parallel layout the engine reduces over.

With data-parallel size N and tensor-parallel size T (``world = N * T``, no pipeline), a gradient
element on a rank is held by

- 1 rank when the rank's buffer is a ZeRO partition (disjoint over data-parallel ranks) of a
  tensor-parallel-sharded parameter,
- T ranks for a partition of a parameter that every tensor-parallel rank replicates (LayerNorm),
- N times as many at ZeRO stage 0, where every data-parallel rank holds the full gradient.

The local Gram slice of an element range is weighted by ``1 / holders``, so one all-reduce of the
weighted slices over all ``N * T`` ranks (the ``gram`` group) counts every element exactly once.
The library reads megatron-core only through the application's adapter
(:func:`gradvac_ds.training.megatron.megatron_layout`); without one, T = 1.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import torch

from gradvac_ds.comm import Comm
from gradvac_ds.errors import UnsupportedEngineError
from gradvac_ds.zero import is_tensor_parallel_parameter


@dataclass(frozen=True)
class ParallelLayout:
    """Process groups of the GradVac reductions.

    tensor_parallel: ranks sharing one model replica's shards; None means T = 1
    gram:            ranks of the one Gram all-reduce (data x tensor parallel); None means the world
    """

    tensor_parallel: Any = None
    gram: Any = None

    def tensor_parallel_size(self, comm: Comm) -> int:
        return comm.world_size(self.tensor_parallel) if self.tensor_parallel is not None else 1

    def is_sharded(self, param: torch.nn.Parameter) -> bool:
        """True when each tensor-parallel rank holds a different shard of ``param``."""
        return is_tensor_parallel_parameter(param)

    def holders(self, param: torch.nn.Parameter, *, partitioned: bool, comm: Comm, dp_size: int) -> int:
        """Number of ranks holding the same local gradient elements of ``param``."""
        replicas = 1 if self.is_sharded(param) else self.tensor_parallel_size(comm)
        return replicas if partitioned else replicas * dp_size

    @classmethod
    def from_mpu(cls, mpu: Any) -> ParallelLayout:
        """The layout of a DeepSpeed ``mpu`` object (megatron-style); T = 1 without one."""
        if mpu is None:
            return cls()
        return cls(tensor_parallel=mpu.get_tensor_model_parallel_group())

    def check(self, comm: Comm, dp_size: int) -> None:
        """Refuse layouts whose Gram group is not data x tensor parallel, and megatron models
        sharded over more ranks than this layout knows (their shards would be summed as if they were
        data-parallel replicas)."""
        tp_size = self.tensor_parallel_size(comm)
        check_megatron_tensor_parallel(tp_size)
        gram_world = comm.world_size(self.gram)
        if gram_world != dp_size * tp_size:
            raise UnsupportedEngineError(
                f"the Gram all-reduce group has {gram_world} ranks, expected data-parallel {dp_size} x "
                f"tensor-parallel {tp_size}; pipeline or other model parallelism is not supported"
            )


def check_megatron_tensor_parallel(tp_size: int) -> None:
    """Refuse when megatron-core's parallel_state (if the program imported and initialised it; the
    library never imports megatron itself) shards the model over another tensor-parallel size."""
    parallel_state = sys.modules.get("megatron.core.parallel_state")
    if parallel_state is None or not parallel_state.model_parallel_is_initialized():
        return
    megatron_tp = int(parallel_state.get_tensor_model_parallel_world_size())
    if megatron_tp != tp_size:
        raise UnsupportedEngineError(
            f"megatron parallel_state has tensor-parallel size {megatron_tp} but the engine sees "
            f"{tp_size}: pass mpu=gradvac_ds.training.megatron.MegatronMPU() to gradvac_ds.initialize"
        )
