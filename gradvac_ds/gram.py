"""Per-group Gram slices and the weighted combination, on flat per-task gradient buffers.

A *task buffer* is a tensor ``X[K, N]``: row k holds task k's gradient on N flat elements (a
ZeRO partition on one rank, or a whole model in one process). A *segment table* says which
contiguous element ranges belong to which parameter group, and with which weight c: the inverse of
the number of ranks that hold the same elements (so that a sum over ranks counts them once).
Then, for group l,

    G[l] += c X[:, a:b] X[:, a:b]^T     over the segments (a, b) of l          (one GEMM each)
    out[a:b] = w[l] @ X[:, a:b]                                               (one GEMV each)

Gram slices are accumulated in float64 whatever the buffer dtype, so that the cosines GradVac
compares against its targets are as exact as the gradients themselves. Segments are processed in
column chunks of at most ``CHUNK_ELEMENTS / K`` columns, so the float64 (or upcast) temporary stays
near ``CHUNK_ELEMENTS`` elements however large a parameter's slice is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

CHUNK_ELEMENTS = 1 << 22
"""Elements of the largest temporary block (K rows x columns) upcast at once: 32 MiB in float64."""


@dataclass(frozen=True)
class Segment:
    """Elements ``[start, stop)`` of a flat buffer belong to parameter group ``group``; their Gram
    slice counts with weight ``scale``."""

    start: int
    stop: int
    group: int
    scale: float = 1.0


def merge_segments(segments: Iterable[Segment]) -> list[Segment]:
    """Sort by start and fuse touching segments of the same group and scale (fewer, longer GEMMs)."""
    merged: list[Segment] = []
    for seg in sorted(segments, key=lambda s: s.start):
        if seg.stop <= seg.start:
            continue
        last = merged[-1] if merged else None
        if last and last.stop == seg.start and (last.group, last.scale) == (seg.group, seg.scale):
            merged[-1] = Segment(last.start, seg.stop, seg.group, seg.scale)
        else:
            merged.append(seg)
    return merged


def _column_chunks(segment: Segment, rows: int) -> Iterable[tuple[int, int]]:
    width = max(1, CHUNK_ELEMENTS // max(rows, 1))
    for start in range(segment.start, segment.stop, width):
        yield start, min(start + width, segment.stop)


def accumulate_gram(gram: torch.Tensor, buffer: torch.Tensor, segments: Iterable[Segment]) -> torch.Tensor:
    """Add the Gram slices of ``buffer[K, N]`` into ``gram[L, K, K]`` (float64) in place."""
    for seg in segments:
        for start, stop in _column_chunks(seg, buffer.shape[0]):
            block = buffer[:, start:stop].to(torch.float64)
            gram[seg.group].addmm_(block, block.T, alpha=seg.scale)
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
        for start, stop in _column_chunks(seg, buffer.shape[0]):
            out[start:stop] = weights[seg.group] @ buffer[:, start:stop].to(compute_dtype)
    return out
