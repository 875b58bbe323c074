"""What every ZeRO adapter provides: where the reduced local gradient lives and how to use it.

DeepSpeed has no public hook between "gradient reduced" and "optimizer step". Each adapter knows,
for one optimizer type, the flat buffers in which the rank's reduced gradient sits after an
accumulation boundary, and which parameter elements each buffer position holds.

Buffer i of a rank is a flat tensor of ``numel`` elements. Its layout is a list of
:class:`Fragment`: elements ``[dst, dst + n)`` of the buffer hold elements ``[src, src + n)`` of
the flattened parameter called ``name``. Positions outside every fragment are padding.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Fragment:
    """Elements [dst, dst + n) of a local buffer hold elements [src, src + n) of parameter ``name``."""

    name: str
    param: torch.nn.Parameter
    src: int
    dst: int
    n: int


@dataclass(frozen=True)
class BufferLayout:
    """One flat local gradient buffer: its length and the parameter fragments in it."""

    numel: int
    fragments: tuple[Fragment, ...]


class GradientAdapter(ABC):
    """Read, clear and write the reduced local gradient of one DeepSpeed optimizer type.

    ``partitioned`` is True when each data-parallel rank holds a disjoint slice of the gradient
    (ZeRO >= 1), False when every rank holds the full averaged gradient (stage 0).
    """

    partitioned: bool = True
    device: torch.device | None = None
    """Where the reduced gradient lives when that is not the accelerator (optimizer offload: host
    memory); the engine keeps the task buffers, computes the Gram and combines there."""

    def __init__(self, layouts: list[BufferLayout]) -> None:
        self.layouts = layouts

    def begin_task(self) -> None:  # noqa: B027 (an optional hook, not an abstract method)
        """Called when a task starts, before its first backward; adapters whose optimizer
        allocates its reduction buffer anew for every accumulation window hand it a persistent one
        here. Default: nothing."""

    @abstractmethod
    def read_into(self, index: int, out: torch.Tensor) -> None:
        """Copy the reduced gradient of buffer ``index`` into ``out`` [numel] (zeros if none)."""

    @abstractmethod
    def clear(self) -> None:
        """Drop the reduced gradient so that the next task accumulates from zero."""

    @abstractmethod
    def write(self, index: int, flat: torch.Tensor) -> None:
        """Install ``flat`` [numel] as buffer ``index``'s gradient for the optimizer step."""

    def output_buffer(
        self, index: int, device: torch.device, spare: torch.Tensor | None = None
    ) -> torch.Tensor:
        """A float32 tensor [numel] to combine buffer ``index`` into before :meth:`write`.

        ``spare`` is storage the engine offers: a row of its task buffers, whose content is not
        needed after the combination. Adapters whose :meth:`write` copies ``flat`` or hands views of
        it to an optimizer that drops them after its step use it when it is float32, so that the
        combination allocates nothing (a fresh tensor of P/N elements costs a page fault per 4 KiB
        on a host, every step); otherwise a new tensor."""
        if spare is not None and spare.dtype == torch.float32 and spare.numel() == self.layouts[index].numel:
            return spare
        return torch.empty(self.layouts[index].numel, dtype=torch.float32, device=device)


def copy_tensors_into(tensors: list[torch.Tensor], out: torch.Tensor) -> None:
    """Copy a list of tensors, flattened and concatenated, into ``out`` without a temporary (one
    ``torch.cat`` kernel into ``out``, not one copy per tensor)."""
    total = sum(t.numel() for t in tensors)
    if total != out.numel():
        raise RuntimeError(f"gradient partition holds {total} elements, expected {out.numel()}")
    torch.cat([t.reshape(-1) for t in tensors], out=out)
