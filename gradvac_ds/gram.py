"""Per-group Gram slices and the weighted combination, on flat per-task gradient buffers.

A *task buffer* is a tensor ``X[K, N]``: row k holds task k's gradient on N flat elements (a
ZeRO partition on one rank, or a whole model in one process). A *segment table* says which
contiguous element ranges belong to which parameter group. Then, for group l,

    G[l] += X[:, a:b] X[:, a:b]^T       over the segments (a, b) of l          (one GEMM each)
    out[a:b] = w[l] @ X[:, a:b]                                               (one GEMV each)

Gram slices are accumulated in float64 whatever the buffer dtype, so that the cosines GradVac
compares against its targets are as exact as the gradients themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Segment:
    """Elements ``[start, stop)`` of a flat buffer belong to parameter group ``group``."""

    start: int
    stop: int
    group: int


def merge_segments(segments: Iterable[Segment]) -> list[Segment]:
    """Sort by start and fuse touching segments of the same group (fewer, longer GEMMs)."""
    merged: list[Segment] = []
    for seg in sorted(segments, key=lambda s: s.start):
        if seg.stop <= seg.start:
            continue
        if merged and merged[-1].stop == seg.start and merged[-1].group == seg.group:
            merged[-1] = Segment(merged[-1].start, seg.stop, seg.group)
        else:
            merged.append(seg)
    return merged


def accumulate_gram(gram: torch.Tensor, buffer: torch.Tensor, segments: Iterable[Segment]) -> torch.Tensor:
    """Add the Gram slices of ``buffer[K, N]`` into ``gram[L, K, K]`` (float64) in place."""
    for seg in segments:
        block = buffer[:, seg.start : seg.stop].to(torch.float64)
        gram[seg.group] += block @ block.T
    return gram


def combine_segments(
    buffer: torch.Tensor, segments: Iterable[Segment], weights: torch.Tensor, out: torch.Tensor
) -> torch.Tensor:
    """Write ``out[a:b] = weights[l] @ buffer[:, a:b]`` for every segment; elements outside any
    segment (ZeRO padding) are set to 0. ``weights`` is [L, K]; ``out`` is [N] and sets the dtype."""
    out.zero_()
    compute_dtype = torch.promote_types(buffer.dtype, torch.float32)
    weights = weights.to(device=buffer.device, dtype=compute_dtype)
    for seg in segments:
        block = buffer[:, seg.start : seg.stop].to(compute_dtype)
        out[seg.start : seg.stop] = weights[seg.group] @ block
    return out
