"""ZeRO stages 1 and 2: ``DeepSpeedZeroOptimizer`` (runtime/zero/stage_1_and_2.py).

After the accumulation-boundary epilogue the rank's reduced, averaged partition of optimizer
param group i is ``opt.averaged_gradients[i]``: a list of per-parameter views plus zero pads, or a
``GradPartitionBufferGroup`` whose ``flat_partition`` is the fp32 buffer (bf16/fp16 params with
fp32 gradient accumulation). The element -> parameter map of the partition comes from the
optimizer's insertion offsets, which are correct under ``round_robin_gradients`` too.

**The reduction buffer.** With ``contiguous_gradients`` the optimizer copies each reduced
gradient of its partition into ``grads_in_partition`` (whole parameters, in reduction order,
``sum(p.numel() for p in params_in_partition)`` elements of ``opt.dtype``), allocated when it is
None; every backward's epilogue sets it back to None, and the partition views keep the tensor alive
until they are dropped. Plain DeepSpeed drops them after its step. GradVac drops them after each
task's capture, so each of the K tasks would allocate a fresh P/N tensor during its reduction (a
page fault per 4 KiB on a host) and free it again inside the capture (an unmap).
:meth:`Zero12Adapter.begin_task` therefore hands the optimizer one persistent tensor at the start
of every task.
"""

from __future__ import annotations

import torch
from deepspeed import comm as dist
from deepspeed.accelerator import get_accelerator
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
        self._reduction_buffer: torch.Tensor | None = None
        # DeepSpeed uses grads_in_partition only with contiguous gradients, without offload, and
        # for groups that do not accumulate in a separate fp32 partition (the compact buffer)
        self._reduces_into_partition_buffer = (
            opt.contiguous_gradients
            and not opt.cpu_offload
            and not all(opt._use_compact_grad_partition_buffer(i) for i in range(len(opt.bit16_groups)))
        )

    def begin_task(self) -> None:
        """Install the persistent ``grads_in_partition`` for the task's first micro-batch.

        Safe because nothing reads the tensor when a task starts: the previous task's views were
        copied into its task row and dropped by :meth:`clear`, and the step's combined gradient
        lives in the engine's buffers. Only the first micro-batch uses it; the later micro-batches
        of the task find the attribute None again and allocate, as without GradVac, because the
        first micro-batch's views accumulate theirs. Under ``overlap_comm`` the copies into the
        tensor run on the reduction stream, which waits for the current stream before each
        reduction, so they are ordered after the previous task's capture copy out of it.
        """
        opt = self.opt
        if not self._reduces_into_partition_buffer or opt.grads_in_partition is not None:
            return
        if self._reduction_buffer is None:
            total = sum(p.numel() for group in opt.params_in_partition for p in group)
            device = get_accelerator().current_device_name()
            self._reduction_buffer = torch.empty(int(total), dtype=opt.dtype, device=device)
        opt.grads_in_partition = self._reduction_buffer
        opt.grads_in_partition_offset = 0

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
