"""No ZeRO (stage 0): the engine all-reduces (averages) ``param.grad`` in place at the boundary,
so every data-parallel rank holds the full gradient; the GradVac buffer is their concatenation."""

from __future__ import annotations

import torch

from gradvac_ds.zero.base import BufferLayout, Fragment, GradientAdapter, copy_tensors_into


class Zero0Adapter(GradientAdapter):
    """Full gradients in ``param.grad`` of every trainable parameter."""

    partitioned = False

    def __init__(self, params: list[torch.nn.Parameter], names: dict[torch.nn.Parameter, str]) -> None:
        fragments, offset = [], 0
        for p in params:
            fragments.append(Fragment(names[p], p, 0, offset, p.numel()))
            offset += p.numel()
        super().__init__([BufferLayout(offset, tuple(fragments))])
        self.params = params

    def read_into(self, index: int, out: torch.Tensor) -> None:
        copy_tensors_into([p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params], out)

    def clear(self) -> None:
        for p in self.params:
            p.grad = None

    def write(self, index: int, flat: torch.Tensor) -> None:
        for frag in self.layouts[0].fragments:
            p = frag.param
            p.grad = flat[frag.dst : frag.dst + frag.n].view_as(p).to(p.dtype)
