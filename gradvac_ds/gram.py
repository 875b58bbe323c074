"""Per-group Gram slices and the weighted combination, on flat per-task gradient buffers.

A *task buffer* is a tensor ``X[K, N]``: row k holds task k's gradient on N flat elements (a
ZeRO partition on one rank, or a whole model in one process). A *segment table* says which
contiguous element ranges belong to which parameter group, and with which weight c: the inverse of
the number of ranks that hold the same elements (so that a sum over ranks counts them once).
Then, for group l,

    G[l] += c X[:, a:b] X[:, a:b]^T     over the segments (a, b) of l          (one GEMM each)
    out[a:b] = w[l] @ X[:, a:b]                                               (one GEMV each)

Gram slices are accumulated in float64 whatever the buffer dtype. How the products inside a slice
are formed is the Gram dtype:

- ``torch.float64``: each block is upcast and multiplied in float64 (as exact as the gradients).
- ``torch.float32``: the columns are cut into blocks of ``GRAM_BLOCK`` (4096) elements; each
  block's ``[K, K]`` product is one float32 GEMM (all blocks of a chunk in one batched call) and the
  block products are summed in float64. A float32 dot product of b terms has a rounding error of at
  most ~b u sum_i |x_i y_i| (u = 2^-24), typically ~sqrt(b) u; with b = 4096 that bounds the
  cosine error by 2.4e-4 and typically 4e-6, and the float64 sum over blocks adds nothing
  noticeable. Measured on 500k-element gradients with a 1000x range of magnitudes: 3e-8 against the
  float64 Gram (``tests/test_gram.py`` pins 1e-6). GradVac compares these cosines against EMA
  targets moving by beta ~ 1e-2 per step, so the error is orders of magnitude below what decides
  a correction; it is 4-8x faster on a CPU and uses the GPU's float32 units. Groups whose values
  leave float32's range (overflow, or squared norms small enough for underflow to matter) are
  recomputed in float64, so huge or tiny gradients give the float64 answer.

Segments are processed in column chunks of at most ``CHUNK_ELEMENTS / K`` columns, so the upcast
temporary stays near ``CHUNK_ELEMENTS`` elements however large a parameter's slice is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

SIGNATURE_SLOTS = 4
"""float64 slots the engine appends to its one Gram all-reduce (``[L * K * K + SIGNATURE_SLOTS]``):
two digests of the step's task sequence and their squares."""

CHUNK_ELEMENTS = 1 << 22
"""Elements of the largest temporary block (K rows x columns) upcast at once: 32 MiB in float64."""
COMBINE_BLOCK = 1 << 20
"""Elements (K rows x columns) of one block of a combination into a row of its own buffer: with
K = 4, a 1 MiB float32 temporary that stays in cache between the GEMV and its copy."""
GRAM_BLOCK = 4096
"""Columns of one float32 GEMM block of the float32 Gram (its products are summed in float64)."""
GRAM_DTYPES = (torch.float32, torch.float64)
TINY_SQUARED_NORM = 2.0**-64
"""A float32 Gram group with a squared norm below this is recomputed in float64. Above it,
the products lost to float32 underflow (each at most 2^-149 = 1.4e-45) add up to at most
n * 1.4e-45 for n elements, below 3e-17 of the norm for n <= 1e9."""


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


def _chunk_width(rows: int, limit: int | None = None) -> int:
    """Columns of one chunk of ``rows`` rows: ``limit / rows`` (at least 1); ``limit`` defaults to
    ``CHUNK_ELEMENTS``."""
    return max(1, (limit or CHUNK_ELEMENTS) // max(rows, 1))


def _column_chunks(
    segment: Segment, rows: int, multiple: int = 1, limit: int | None = None
) -> Iterable[tuple[int, int]]:
    """Column ranges of at most :func:`_chunk_width` columns (a multiple of ``multiple``)."""
    width = _chunk_width(rows, limit)
    width = max(multiple, width - width % multiple)
    for start in range(segment.start, segment.stop, width):
        yield start, min(start + width, segment.stop)


def accumulate_gram(
    gram: torch.Tensor,
    buffer: torch.Tensor,
    segments: Iterable[Segment],
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Add the Gram slices of ``buffer[K, N]`` into ``gram[L, K, K]`` (float64) in place; ``dtype`` is
    the GEMM dtype (float64, or float32 blocks summed in float64: see the module docstring).

    With float32 a group whose slice left float32's range is recomputed in float64: a non-finite
    entry (a product or partial sum above 3.4e38, or a non-finite gradient) or a squared norm below
    ``TINY_SQUARED_NORM``: products of its elements fall into float32's subnormals (below 2^-126)
    and lose their significand, down to an exact 0 that cannot be told from a zero gradient, so an
    exactly zero norm is recomputed too (rare: a task with no gradient on a whole group). One [L]
    check per call decides it."""
    if dtype not in GRAM_DTYPES:
        raise ValueError(f"Gram dtype {dtype} is not one of {GRAM_DTYPES}")
    segments = list(segments)
    if dtype == torch.float64:
        return _accumulate(gram, buffer, segments, torch.float64)
    part = _accumulate(torch.zeros_like(gram), buffer, segments, torch.float32)
    redo = _outside_float32_range(part)
    if redo:
        part[redo] = 0.0
        _accumulate(part, buffer, [seg for seg in segments if seg.group in redo], torch.float64)
    return gram.add_(part)


def _accumulate(gram: torch.Tensor, buffer: torch.Tensor, segments: list[Segment], dtype: torch.dtype):
    rows = buffer.shape[0]
    multiple = GRAM_BLOCK if dtype == torch.float32 else 1
    for seg in segments:
        for start, stop in _column_chunks(seg, rows, multiple):
            block = buffer[:, start:stop].to(dtype)
            if dtype == torch.float64:
                gram[seg.group].addmm_(block, block.T, alpha=seg.scale)
            else:
                gram[seg.group].add_(_blocked_float32_gram(block), alpha=seg.scale)
    return gram


def _outside_float32_range(gram: torch.Tensor) -> list[int]:
    """Groups of ``gram[L, K, K]`` whose float32 products may be wrong (see :func:`accumulate_gram`)."""
    norms = gram.diagonal(dim1=1, dim2=2)
    tiny = (norms < TINY_SQUARED_NORM).any(dim=1)
    bad = tiny | ~torch.isfinite(gram).flatten(1).all(dim=1)
    return bad.nonzero().flatten().tolist()


def _blocked_float32_gram(block: torch.Tensor) -> torch.Tensor:
    """``block[K, n] block^T`` [K, K] float64: float32 products over ``GRAM_BLOCK`` columns at a time
    (one batched GEMM over a strided view, no copy), summed in float64."""
    rows, width = block.shape
    whole = width // GRAM_BLOCK
    out = torch.zeros(rows, rows, dtype=torch.float64, device=block.device)
    if whole:
        tiles = block[:, : whole * GRAM_BLOCK].unflatten(1, (whole, GRAM_BLOCK)).transpose(0, 1)
        out += torch.bmm(tiles, tiles.transpose(1, 2)).sum(dim=0, dtype=torch.float64)
    if whole * GRAM_BLOCK < width:
        rest = block[:, whole * GRAM_BLOCK :]
        out += (rest @ rest.T).to(torch.float64)
    return out


def _overlap(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether the memory of ``a`` and ``b`` may overlap (byte ranges of contiguous tensors; any
    shared storage otherwise)."""
    if a.untyped_storage().data_ptr() != b.untyped_storage().data_ptr():
        return False
    if not (a.is_contiguous() and b.is_contiguous()):
        return True
    a_start, b_start = a.data_ptr(), b.data_ptr()
    return (
        a_start < b_start + b.numel() * b.element_size() and b_start < a_start + a.numel() * a.element_size()
    )


def combine_segments(
    buffer: torch.Tensor, segments: Iterable[Segment], weights: torch.Tensor, out: torch.Tensor
) -> torch.Tensor:
    """Write ``out[a:b] = weights[l] @ buffer[:, a:b]`` for every segment; elements outside any
    segment (ZeRO padding) are set to 0. ``weights`` is [L, K]; ``out`` is [N] and sets the dtype.

    The GEMV writes straight into ``out`` when ``out`` has the compute dtype (no temporary).
    ``out`` may be a row of ``buffer`` (the engine combines into a task row): then each block of
    ``COMBINE_BLOCK`` columns is computed into a cache-sized scratch before it overwrites its part
    of the row, which no later block reads. Scratch tensors (that result, and the float32 copy of
    a block of a bf16 buffer) are allocated once per call and reused by every block: a fresh
    temporary per block costs a page fault per 4 KiB wherever the allocator maps large blocks
    anew (glibc's mmap), which made the in-row combination 3.7x slower on one rank's slice (55M
    elements) of the 110M-parameter model."""
    compute_dtype = torch.promote_types(buffer.dtype, torch.float32)
    weights = weights.to(device=buffer.device, dtype=compute_dtype)
    aliased = _overlap(out, buffer)
    direct = not aliased and out.dtype == compute_dtype and out.is_contiguous()
    rows = buffer.shape[0]
    limit = COMBINE_BLOCK if aliased else None
    width = min(_chunk_width(rows, limit), buffer.shape[1])
    result = None if direct else torch.empty(width, dtype=compute_dtype, device=buffer.device)
    upcast = None
    if buffer.dtype != compute_dtype:
        upcast = torch.empty(rows, width, dtype=compute_dtype, device=buffer.device)
    cursor = 0
    for seg in segments:
        if seg.start > cursor:
            out[cursor : seg.start].zero_()
        chunks = _column_chunks(seg, rows, limit=limit)
        for start, stop in chunks:
            cols = stop - start
            block = buffer[:, start:stop]
            if upcast is not None:
                block = upcast[:, :cols].copy_(block)
            target = out[start:stop]
            if result is None:
                torch.mv(block.T, weights[seg.group], out=target)
            else:
                target.copy_(torch.mv(block.T, weights[seg.group], out=result[:cols]))
        cursor = max(cursor, seg.stop)
    if cursor < out.numel():
        out[cursor:].zero_()
    return out
