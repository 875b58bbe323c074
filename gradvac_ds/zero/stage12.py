"""ZeRO stages 1 and 2: ``DeepSpeedZeroOptimizer`` (runtime/zero/stage_1_and_2.py).

After the accumulation-boundary epilogue the rank's reduced, averaged partition of optimizer
param group i is ``opt.averaged_gradients[i]``: a list of per-parameter views plus zero pads, or a
``GradPartitionBufferGroup`` whose ``flat_partition`` is the fp32 buffer (bf16/fp16 params with
fp32 gradient accumulation). The element -> parameter map of the partition comes from the
optimizer's insertion offsets, which are correct under ``round_robin_gradients`` too.
"""

from __future__ import annotations

import torch
from deepspeed import comm as dist
from deepspeed.runtime.zero.stage_1_and_2 import DeepSpeedZeroOptimizer, GradPartitionBufferGroup

from gradvac_ds.zero.base import BufferLayout, Fragment, GradientAdapter, copy_tensors_into


def _layouts(opt: DeepSpeedZeroOptimizer, names: dict[torch.nn.Parameter, str]) -> list[BufferLayout]:
    layouts = []
    for i in range(len(opt.bit16_groups)):
        rank = dist.get_rank(group=opt.real_dp_process_group[i])
        size = int(opt.partition_size[i])
        fragments = []
        for p in opt.params_in_partition[i]:
            q = opt.get_param_id(p)
            src = int(opt.grad_start_offset[i][rank][q])
            dst = int(opt.grad_partition_insertion_offset[i][rank][q])
            n = min(p.numel() - src, size - dst)
            if n > 0:
                fragments.append(Fragment(names[p], p, src, dst, n))
        layouts.append(BufferLayout(size, tuple(fragments)))
    return layouts


class Zero12Adapter(GradientAdapter):
    """Reduced partitions of ``DeepSpeedZeroOptimizer`` (ZeRO-1 and ZeRO-2)."""

    def __init__(self, opt: DeepSpeedZeroOptimizer, names: dict[torch.nn.Parameter, str]) -> None:
        super().__init__(_layouts(opt, names))
        self.opt = opt

    def read_into(self, index: int, out: torch.Tensor) -> None:
        grads = self.opt.averaged_gradients.get(index)
        if grads is None:
            out.zero_()
        elif isinstance(grads, GradPartitionBufferGroup):
            out.copy_(grads.flat_partition.view(-1))
        else:
            copy_tensors_into(list(grads), out)

    def clear(self) -> None:
        for i in range(len(self.layouts)):
            self.opt.averaged_gradients[i] = None
            self.opt.all_grad_tensors[i] = None

    def write(self, index: int, flat: torch.Tensor) -> None:
        """Install a GradPartitionBufferGroup of per-parameter views over ``flat`` (fp32); pads are
        marked ``_zero_padding`` as DeepSpeed marks its own, so norms and overflow checks skip them."""
        views, cursor = [], 0
        for frag in self.layouts[index].fragments:
            if frag.dst > cursor:
                views.append(_padding(flat, cursor, frag.dst))
            view = flat.narrow(0, frag.dst, frag.n)
            views.append(view.view(frag.param.shape) if frag.n == frag.param.numel() else view)
            cursor = frag.dst + frag.n
        if cursor < flat.numel():
            views.append(_padding(flat, cursor, flat.numel()))
        self.opt.averaged_gradients[index] = GradPartitionBufferGroup(views, flat)


def _padding(flat: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    pad = flat.narrow(0, start, stop - start)
    pad._zero_padding = True
    return pad
