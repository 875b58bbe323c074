"""ZeRO stage 3: ``DeepSpeedZeroOptimizer_Stage3`` (runtime/zero/stage3.py).

All reduced local gradient partitions live in one flat buffer ``opt.grad_partitions_flat_buffer``,
parameters in ``chain(opt.fp16_groups)`` order, ``p.partition_numel()`` elements each; this rank's
slice of parameter p is ``[rank * pn, rank * pn + pn)`` of the flattened parameter, clipped to
``p.ds_numel``. The buffer accumulates across micro-batches, is zeroed in place, and the optimizer
reads it in place, so GradVac combines straight into it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import torch
from deepspeed import comm as dist

from gradvac_ds.zero.base import BufferLayout, Fragment, GradientAdapter


def partition_fragments(
    params: Iterable[torch.nn.Parameter], names: dict[torch.nn.Parameter, str], offset: int = 0
) -> tuple[list[Fragment], int]:
    """The fragments of ``params`` laid out from ``offset`` in a ZeRO-3 flat partition buffer
    (``p.partition_numel()`` elements each), and the offset after them."""
    fragments = []
    for p in params:
        pn = p.partition_numel()
        start = dist.get_rank(group=p.ds_process_group) * pn
        n = max(0, min(pn, p.ds_numel - start))
        if n > 0:
            fragments.append(Fragment(names[p], p, start, offset, n))
        offset += pn
    return fragments, offset


class Zero3Adapter(GradientAdapter):
    """The flat gradient partition buffer of ZeRO-3."""

    def __init__(self, opt, names: dict[torch.nn.Parameter, str]) -> None:
        fragments, offset = partition_fragments(itertools.chain.from_iterable(opt.fp16_groups), names)
        super().__init__([BufferLayout(offset, tuple(fragments))])
        self.opt = opt

    def read_into(self, index: int, out: torch.Tensor) -> None:
        out.copy_(self.opt.grad_partitions_flat_buffer)

    def clear(self) -> None:
        self.opt.grad_partitions_flat_buffer.zero_()

    def write(self, index: int, flat: torch.Tensor) -> None:
        buffer = self.opt.grad_partitions_flat_buffer
        if flat.data_ptr() != buffer.data_ptr():
            buffer.copy_(flat)

    def output_buffer(
        self, index: int, device: torch.device, spare: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Combine in place: the optimizer reads this very buffer."""
        return self.opt.grad_partitions_flat_buffer
