"""Encode many sentences with a :class:`SharedVocabulary`, in worker processes when it pays off.

Workers are started with the ``spawn`` method (safe in a process that has initialised CUDA or
threads) and receive the vocabulary once, via the pool initializer; each worker start costs an
interpreter and import, so inputs below ``min_parallel`` sentences are encoded in-process. A
``ProcessPoolExecutor`` is used rather than ``multiprocessing.Pool`` because it raises
``BrokenProcessPool`` when a worker cannot start, where ``Pool`` would respawn it forever. As with
any ``spawn`` pool, the main module must be importable (a script file, not ``python -``).
"""

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from gradvac_ds.training.data.vocabulary import SharedVocabulary

_worker_vocabulary: SharedVocabulary | None = None


def _init_worker(vocabulary: SharedVocabulary) -> None:
    global _worker_vocabulary
    _worker_vocabulary = vocabulary


def _encode_chunk(texts: list[str]) -> list[list[int]]:
    assert _worker_vocabulary is not None, "worker used before its initializer ran"
    return _worker_vocabulary.encode_batch(texts)


def encode_corpus(
    vocabulary: SharedVocabulary,
    texts: Sequence[str],
    workers: int | None = None,
    min_parallel: int = 50_000,
    chunk_size: int = 5_000,
) -> list[list[int]]:
    """Piece ids of every text, in input order (no tag, bos or eos added).

    Args:
        vocabulary: the shared vocabulary.
        texts: sentences to encode.
        workers: worker processes; ``None`` uses ``min(cpu_count, 8)``.
        min_parallel: below this many texts (or with one worker) encode in-process.
        chunk_size: texts per task sent to a worker.
    """
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    if workers <= 1 or len(texts) < min_parallel:
        return vocabulary.encode_batch(texts)
    chunks = [list(texts[i : i + chunk_size]) for i in range(0, len(texts), chunk_size)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        min(workers, len(chunks)), mp_context=context, initializer=_init_worker, initargs=(vocabulary,)
    ) as pool:
        encoded = list(pool.map(_encode_chunk, chunks))
    return [ids for chunk in encoded for ids in chunk]
