"""bf16 with fp32 gradient accumulation at ZeRO-1: ``BF16_Optimizer`` (runtime/bf16_optimizer.py).

It keeps a FULL fp32 gradient per param group, ``fp32_groups_gradients_flat[i]``, which the engine
all-reduces (averages) at the boundary; the optimizer steps on this rank's slice
``fp32_groups_gradient_flat_partition[i]`` but computes the norm and clips over the full buffer.
GradVac works on the slice; the combined slices are all-gathered back into the full buffer.
"""

from __future__ import annotations

import torch
from deepspeed import comm as dist
from deepspeed.runtime.bf16_optimizer import BF16_Optimizer

from gradvac_ds.comm import Comm
from gradvac_ds.zero.base import BufferLayout, Fragment, GradientAdapter


class BF16OptimizerAdapter(GradientAdapter):
    """Per-rank slices of ``BF16_Optimizer``'s full fp32 gradient buffers."""

    def __init__(self, opt: BF16_Optimizer, names: dict[torch.nn.Parameter, str], comm: Comm) -> None:
        layouts = []
        for i, group in enumerate(opt.bf16_groups):
            size = opt.fp32_groups_gradient_flat_partition[i].numel()
            start = dist.get_rank(group=opt.real_dp_process_group[i]) * size
            fragments, offset = [], 0
            for p in group:
                lo, hi = max(offset, start), min(offset + p.numel(), start + size)
                if lo < hi:
                    fragments.append(Fragment(names[p], p, lo - offset, lo - start, hi - lo))
                offset += p.numel()
            layouts.append(BufferLayout(size, tuple(fragments)))
        super().__init__(layouts)
        self.opt = opt
        self.comm = comm

    def read_into(self, index: int, out: torch.Tensor) -> None:
        out.copy_(self.opt.fp32_groups_gradient_flat_partition[index])

    def clear(self) -> None:
        self.opt.clear_hp_grads()

    def write(self, index: int, flat: torch.Tensor) -> None:
        full = self.opt.fp32_groups_gradients_flat[index]
        self.comm.all_gather_into_tensor(
            full, flat.to(full.dtype), group=self.opt.real_dp_process_group[index]
        )
        self.opt.fp32_groups_has_gradients[index] = [True] * len(self.opt.bf16_groups[index])
