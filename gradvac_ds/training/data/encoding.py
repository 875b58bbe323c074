"""Encode a stream of sentence chunks with a :class:`SharedVocabulary`, in worker processes.

Workers are started with the ``spawn`` method (safe in a process that has initialised CUDA or
threads) and receive the vocabulary once, via the pool initializer. At most ``2 * workers`` chunks
are in flight, so memory stays bounded however long the input stream is, and results come back
in input order. A ``ProcessPoolExecutor`` is used rather than ``multiprocessing.Pool`` because it
raises ``BrokenProcessPool`` when a worker cannot start (where ``Pool`` would respawn it forever)
and because ``Pool.imap`` reads its whole input ahead. As with any ``spawn`` pool, the main module
must be importable (a script file, not ``python -``).
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np

from gradvac_ds.training.data.vocabulary import SharedVocabulary

Encoded = tuple[np.ndarray, np.ndarray]
"""A chunk's encoding: all piece ids back to back (int32) and the per-sentence lengths (int64)."""

_worker_vocabulary: SharedVocabulary | None = None


def _init_worker(vocabulary: SharedVocabulary) -> None:
    global _worker_vocabulary
    _worker_vocabulary = vocabulary


def encode_chunk(vocabulary: SharedVocabulary, texts: Sequence[str]) -> Encoded:
    """Piece ids of ``texts`` (no tag, bos or eos) as one flat array plus lengths."""
    ids = vocabulary.encode_batch(texts)
    lengths = np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(ids))
    flat = np.fromiter((i for row in ids for i in row), dtype=np.int32, count=int(lengths.sum()))
    return flat, lengths


def _encode_in_worker(texts: list[str]) -> Encoded:
    assert _worker_vocabulary is not None, "worker used before its initializer ran"
    return encode_chunk(_worker_vocabulary, texts)


def default_workers() -> int:
    """``min(cpu_count, 8)`` encoding processes."""
    return min(os.cpu_count() or 1, 8)


def encode_stream(
    vocabulary: SharedVocabulary, chunks: Iterable[list[str]], workers: int | None = None
) -> Iterator[tuple[list[str], Encoded]]:
    """Each chunk of ``chunks`` with its encoding, in order.

    Args:
        vocabulary: the shared vocabulary.
        chunks: lists of sentences, consumed lazily.
        workers: worker processes; ``None`` uses :func:`default_workers`, 1 encodes in-process.
    """
    workers = default_workers() if workers is None else workers
    if workers <= 1:
        for chunk in chunks:
            yield chunk, encode_chunk(vocabulary, chunk)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(vocabulary,)
    ) as pool:
        pending: deque[tuple[list[str], Future]] = deque()
        for chunk in chunks:
            pending.append((chunk, pool.submit(_encode_in_worker, chunk)))
            if len(pending) >= 2 * workers:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
