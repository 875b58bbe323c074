"""Encode streams of sentence chunks with a :class:`SharedVocabulary`, in worker processes.

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
from itertools import chain

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


class Encoder:
    """Encodes streams of chunks, in one pool of ``workers`` processes started at first need.

    A stream of a single chunk is encoded in-process (a worker start costs an interpreter and its
    imports). Use as a context manager; the pool is shut down on exit.
    """

    def __init__(self, vocabulary: SharedVocabulary, workers: int | None = None) -> None:
        self.vocabulary = vocabulary
        self.workers = default_workers() if workers is None else workers
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> Encoder:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.vocabulary,),
            )
        return self._pool

    def stream(self, chunks: Iterable[list[str]]) -> Iterator[tuple[list[str], Encoded]]:
        """Each chunk of ``chunks`` (consumed lazily) with its encoding, in order."""
        chunks = iter(chunks)
        head = [chunk for chunk in (next(chunks, None), next(chunks, None)) if chunk is not None]
        if self.workers <= 1 or len(head) < 2:
            for chunk in chain(head, chunks):
                yield chunk, encode_chunk(self.vocabulary, chunk)
            return
        pool = self._executor()
        pending: deque[tuple[list[str], Future]] = deque()
        for chunk in chain(head, chunks):
            pending.append((chunk, pool.submit(_encode_in_worker, chunk)))
            if len(pending) >= 2 * self.workers:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()
