"""ZeRO-Offload (``zero_optimization.offload_optimizer.device: cpu``) at ZeRO-2 and ZeRO-3.

Where the reduced partition lives under optimizer offload, DeepSpeed 0.19.8:

- ZeRO-2 (``DeepSpeedZeroOptimizer`` with ``cpu_offload``): at each accumulation boundary every
  parameter's reduced partition slice is copied device-to-host into
  ``single_partition_of_fp32_groups[i].grad``, the host fp32 buffer CPU Adam steps on; the
  per-parameter norms for clipping are taken on the device before the copy
  (``norm_for_param_grads``) and overflow is a flag (``local_overflow``). Micro-batches before the
  boundary accumulate through host buffers keyed on ``micro_step_id > 0``.
- ZeRO-3 (``DeepSpeedZeroOptimizer_Stage3`` with ``offload_optimizer``): the accumulation buffer
  ``grad_partitions_flat_buffer`` itself is allocated in host memory, and each boundary also copies
  it into the sub-groups' ``fp32_partitioned_groups_flat[i].grad``, which the optimizer reads;
  norms are again recorded per parameter at the boundary, overflow is checked on the flat buffer.

GradVac therefore captures, computes the Gram and combines **in host memory, after DeepSpeed's own
device-to-host copy**, rather than before it: every task's reduced partition crosses the bus
exactly once, as it does without GradVac (DeepSpeed copies at every boundary), the combined
gradient is written where CPU Adam reads it and never crosses the bus, and the K task buffers
take host memory instead of the accelerator memory that offload exists to free. Capturing on the
device would keep K partitions in accelerator memory and add one host-to-device copy of the
combined gradient per step. The Gram's one [L, K, K] all-reduce still runs on the accelerator.

After writing, the adapters recompute what DeepSpeed recorded from the last task's gradient: the
per-parameter norms (one norm per parameter fragment, O(#parameters) small reductions) and the
overflow flag (the engine has already refused a non-finite Gram, so the combination is finite).
Parameter offload (``offload_param``) and NVMe optimizer offload are refused by
:func:`gradvac_ds.zero.make_adapter`.
"""

from __future__ import annotations

import torch
from deepspeed.runtime.zero.stage_1_and_2 import INITIAL_MICRO_STEP_ID, DeepSpeedZeroOptimizer

from gradvac_ds.zero.base import BufferLayout, Fragment, GradientAdapter
from gradvac_ds.zero.stage3 import partition_fragments


class Zero2OffloadAdapter(GradientAdapter):
    """The host fp32 gradient partitions of ZeRO-2 with ``offload_optimizer: cpu``."""

    def __init__(self, opt: DeepSpeedZeroOptimizer, names: dict[torch.nn.Parameter, str]) -> None:
        layouts = []
        for i, params in enumerate(opt.params_in_partition):
            fragments = []
            for p in params:
                group, src, dst, n = opt.grad_position[opt.get_param_id(p)]
                if group != i:
                    raise RuntimeError(
                        f"ZeRO-2 offload: parameter {names[p]} is in group {group}, expected {i}"
                    )
                if n > 0:
                    fragments.append(Fragment(names[p], p, int(src), int(dst), int(n)))
            layouts.append(BufferLayout(int(opt.partition_size[i]), tuple(fragments)))
        super().__init__(layouts)
        self.opt = opt
        self.device = opt.single_partition_of_fp32_groups[0].grad.device

    def _grad(self, index: int) -> torch.Tensor:
        return self.opt.single_partition_of_fp32_groups[index].grad

    def read_into(self, index: int, out: torch.Tensor) -> None:
        self.opt._wait_for_offload_copies()
        out.copy_(self._grad(index))

    def clear(self) -> None:
        """Zero the host partitions and restart DeepSpeed's micro-step count, so that the next
        task's first micro-batch starts its host accumulation afresh instead of adding this one's."""
        self.opt._wait_for_offload_copies()
        for i in range(len(self.layouts)):
            self._grad(i).zero_()
        self.opt.micro_step_id = INITIAL_MICRO_STEP_ID
        self.opt.local_overflow = False

    def output_buffer(
        self, index: int, device: torch.device, spare: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Combine in place: CPU Adam reads this very buffer."""
        return self._grad(index)

    def write(self, index: int, flat: torch.Tensor) -> None:
        grad = self._grad(index)
        if flat.data_ptr() != grad.data_ptr():
            grad.copy_(flat)
        record_norms(self.opt, self.layouts[index], grad)
        self.opt.local_overflow = False


class Zero3OffloadAdapter(GradientAdapter):
    """The host accumulation buffer of ZeRO-3 with ``offload_optimizer: cpu``; writes go to it (the
    overflow check reads it) and to the sub-groups' fp32 gradients (the optimizer reads those)."""

    def __init__(self, opt, names: dict[torch.nn.Parameter, str]) -> None:
        fragments, offset = [], 0
        self.sub_groups: list[tuple[int, int]] = []  # (start, numel) of each sub-group in the buffer
        for group in opt.fp16_groups:
            start = offset
            group_fragments, offset = partition_fragments(group, names, offset)
            fragments += group_fragments
            self.sub_groups.append((start, offset - start))
        super().__init__([BufferLayout(offset, tuple(fragments))])
        self.opt = opt
        self.device = opt.grad_partitions_flat_buffer.device
        for i, (_, numel) in enumerate(self.sub_groups):
            held = opt.fp32_partitioned_groups_flat[i].grad.numel()
            if held != numel:
                raise RuntimeError(
                    f"ZeRO-3 offload: sub-group {i} holds {held} gradient elements, expected {numel}"
                )

    def read_into(self, index: int, out: torch.Tensor) -> None:
        out.copy_(self.opt.grad_partitions_flat_buffer)

    def clear(self) -> None:
        self.opt.grad_partitions_flat_buffer.zero_()

    def output_buffer(
        self, index: int, device: torch.device, spare: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.opt.grad_partitions_flat_buffer

    def write(self, index: int, flat: torch.Tensor) -> None:
        buffer = self.opt.grad_partitions_flat_buffer
        if flat.data_ptr() != buffer.data_ptr():
            buffer.copy_(flat)
        for i, (start, numel) in enumerate(self.sub_groups):
            self.opt.fp32_partitioned_groups_flat[i].grad.copy_(buffer.narrow(0, start, numel))
        record_norms(self.opt, self.layouts[0], buffer)


def record_norms(opt, layout: BufferLayout, flat: torch.Tensor) -> None:
    """Set ``opt.norm_for_param_grads`` (DeepSpeed's per-parameter L2 norms that clipping sums under
    offload) from the combined gradient ``flat`` [numel]."""
    for frag in layout.fragments:
        opt.norm_for_param_grads[opt.get_param_id(frag.param)] = flat.narrow(0, frag.dst, frag.n).norm(2)


__all__ = ["Zero2OffloadAdapter", "Zero3OffloadAdapter"]
