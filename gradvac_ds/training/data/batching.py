"""Task-homogeneous micro-batches from memory-mapped datasets: the tensor contracts and token-budget packing.

Translation (:class:`PairDataset`, :class:`TaskBatch`), with B sentence pairs of one task ``"src-tgt"``:

* ``src``: LongTensor [B, Ls], row = ``[<2tgt>] + pieces + [eos]``, right-padded with pad = 0;
* ``tgt``: LongTensor [B, Lt], row = ``[bos] + pieces + [eos]``, right-padded with 0. The model
  feeds ``tgt[:, :-1]`` to the decoder and scores ``tgt[:, 1:]``;
* ``num_src_tokens`` / ``num_tgt_tokens``: non-pad entries of ``src`` / ``tgt``.

Language modelling (:class:`PackedLMDataset`, :class:`LMBatch`), B samples of one language:
``tokens`` LongTensor [B, L + 1], sample i = tokens ``[i L, (i + 1) L + 1)`` of the language's
stream (documents = lines, each followed by eos, back to back); the model reads ``tokens[:, :-1]``
and predicts ``tokens[:, 1:]``, so ``num_tgt_tokens = B L``.

A dataset holds nothing per example in memory: the lengths of the examples asked for are read from
the memory-mapped ``.idx``, their tokens from the memory-mapped ``.bin`` when a batch is built.

Packing: a batch's cost is ``B * max(Ls, Lt)`` (padding included) and must stay within
``max_tokens``; B is also capped by ``max_sentences``. Examples are visited in a given (shuffled)
order with their costs, cut into buckets of ``bucket_size`` examples, each bucket sorted by
length (stable) and packed greedily: a batch grows while ``k * max(cost of its k examples) <= max_tokens`` and
``k <= max_sentences``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from megatron.core.datasets.indexed_dataset import IndexedDataset

from gradvac_ds.training.data.vocabulary import BOS_ID, EOS_ID, PAD_ID


@dataclass
class TaskBatch:
    """One translation micro-batch of a single task; shapes in the module docstring."""

    task: str
    src: torch.Tensor
    tgt: torch.Tensor
    num_src_tokens: int
    num_tgt_tokens: int

    @property
    def num_sentences(self) -> int:
        """B, the number of sentence pairs."""
        return self.src.shape[0]

    @property
    def inputs(self) -> tuple[torch.Tensor, ...]:
        """The model's positional arguments: ``(src, tgt)``."""
        return self.src, self.tgt

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TaskBatch:
        """A copy with ``src`` and ``tgt`` on ``device``."""
        return TaskBatch(
            self.task,
            self.src.to(device, non_blocking=non_blocking),
            self.tgt.to(device, non_blocking=non_blocking),
            self.num_src_tokens,
            self.num_tgt_tokens,
        )


@dataclass
class LMBatch:
    """One language-model micro-batch: ``tokens`` [B, L + 1] of one language."""

    task: str
    tokens: torch.Tensor

    @property
    def num_sentences(self) -> int:
        """B, the number of packed samples."""
        return self.tokens.shape[0]

    @property
    def num_tgt_tokens(self) -> int:
        """B L, the predicted tokens."""
        return self.tokens.shape[0] * (self.tokens.shape[1] - 1)

    @property
    def inputs(self) -> tuple[torch.Tensor, ...]:
        """The model's positional arguments: ``(tokens,)``."""
        return (self.tokens,)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> LMBatch:
        """A copy with ``tokens`` on ``device``."""
        return LMBatch(self.task, self.tokens.to(device, non_blocking=non_blocking))


class TaskData(Protocol):
    """What the schedule needs of one task's training data."""

    task: str

    def __len__(self) -> int: ...

    def lengths(self, indices: np.ndarray) -> np.ndarray:
        """int32 [len(indices)], the padded cost of each example of ``indices``."""

    def batch(self, indices: Sequence[int]) -> TaskBatch | LMBatch:
        """The micro-batch of examples ``indices``, in that order."""


def _pad_rows(rows: list[list[int]]) -> torch.Tensor:
    width = max(len(row) for row in rows)
    return torch.tensor([row + [PAD_ID] * (width - len(row)) for row in rows], dtype=torch.long)


class PairDataset:
    """One task's translation pairs in a megatron-core indexed dataset (2 sequences per document).

    Args:
        task: ``"src-tgt"``.
        tag_id: id of ``<2tgt>``, prepended to every source row.
        dataset: the memory-mapped dataset; document d = (source pieces, target pieces).
    """

    def __init__(self, task: str, tag_id: int, dataset: IndexedDataset) -> None:
        self.task = task
        self.tag_id = tag_id
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset) // 2

    def lengths(self, indices: np.ndarray) -> np.ndarray:
        """``max(Ls, Lt)`` of each example of ``indices``, with the two special tokens counted."""
        sequences = self.dataset.sequence_lengths  # int32 [2N], a view of the memory-mapped .idx
        indices = 2 * np.asarray(indices, dtype=np.int64)
        return np.maximum(sequences[indices], sequences[indices + 1]) + np.int32(2)

    def pieces(self, index: int) -> tuple[list[int], list[int]]:
        """(source pieces, target pieces) of example ``index``."""
        return self.dataset[2 * index].tolist(), self.dataset[2 * index + 1].tolist()

    def batch(self, indices: Sequence[int]) -> TaskBatch:
        """The :class:`TaskBatch` of examples ``indices``, in that order."""
        if len(indices) == 0:
            raise ValueError(f"task {self.task}: cannot build an empty batch")
        src_rows, tgt_rows = [], []
        for index in indices:
            src, tgt = self.pieces(int(index))
            src_rows.append([self.tag_id, *src, EOS_ID])
            tgt_rows.append([BOS_ID, *tgt, EOS_ID])
        return TaskBatch(
            task=self.task,
            src=_pad_rows(src_rows),
            tgt=_pad_rows(tgt_rows),
            num_src_tokens=sum(map(len, src_rows)),
            num_tgt_tokens=sum(map(len, tgt_rows)),
        )


class PackedLMDataset:
    """Fixed-length samples cut from one language's token stream (a megatron-core indexed dataset).

    Sample i is tokens ``[i L, (i + 1) L + 1)`` of the ``.bin`` file (consecutive samples share one
    boundary token, as in Megatron's GPT dataset); N = (tokens - 1) // L samples.
    """

    def __init__(self, task: str, dataset: IndexedDataset, seq_length: int, tokens: int) -> None:
        self.task = task
        self.dataset = dataset
        self.seq_length = seq_length
        self._count = max(tokens - 1, 0) // seq_length
        self._dtype = dataset.index.dtype
        self._itemsize = np.dtype(self._dtype).itemsize

    def __len__(self) -> int:
        return self._count

    def lengths(self, indices: np.ndarray) -> np.ndarray:
        """L + 1 for every sample of ``indices``."""
        return np.full(len(indices), self.seq_length + 1, dtype=np.int32)

    def sample(self, index: int) -> np.ndarray:
        """The L + 1 tokens of sample ``index`` (a view of the memory map)."""
        offset = int(index) * self.seq_length * self._itemsize
        return self.dataset.bin_reader.read(dtype=self._dtype, count=self.seq_length + 1, offset=offset)

    def batch(self, indices: Sequence[int]) -> LMBatch:
        """The :class:`LMBatch` of samples ``indices``, in that order."""
        if len(indices) == 0:
            raise ValueError(f"task {self.task}: cannot build an empty batch")
        rows = np.stack([self.sample(i) for i in indices]).astype(np.int64)
        return LMBatch(self.task, torch.from_numpy(rows))


def pack_batches(
    order: Sequence[int] | np.ndarray,
    costs: Sequence[int] | np.ndarray,
    max_tokens: int,
    max_sentences: int,
    bucket_size: int,
    sort: bool = True,
) -> list[np.ndarray]:
    """Group example indices into batches within the token budget.

    Args:
        order: example indices in visiting order (already shuffled for training).
        costs: ``costs[j]`` = padded length cost (``max(Ls, Lt)``) of example ``order[j]``.
        max_tokens: budget on ``B * max length`` per batch.
        max_sentences: cap on B.
        bucket_size: examples sorted together; ignored when ``sort`` is false.
        sort: sort each bucket by length (training) or keep ``order`` (evaluation).

    Returns:
        Batches of indices (int64 arrays); every index of ``order`` appears exactly once.

    Raises:
        ValueError: if one example alone exceeds ``max_tokens``.
    """
    order = np.asarray(order, dtype=np.int64)
    costs = np.asarray(costs)
    if costs.shape != order.shape:
        raise ValueError(f"costs has shape {costs.shape}, order {order.shape}: one cost per example")
    over = np.flatnonzero(costs > max_tokens)
    if over.size:
        raise ValueError(f"example {order[over[0]]} has length {costs[over[0]]} > max_tokens={max_tokens}")
    batches: list[np.ndarray] = []
    step = bucket_size if sort else max(len(order), 1)
    sizes = np.arange(1, max_sentences + 1, dtype=np.int64)
    for start in range(0, len(order), step):
        bucket, cost = order[start : start + step], costs[start : start + step]
        if sort:
            ranked = np.argsort(cost, kind="stable")
            bucket, cost = bucket[ranked], cost[ranked]
        first = 0
        while first < len(bucket):
            window = np.maximum.accumulate(cost[first : first + max_sentences])
            fits = sizes[: len(window)] * window <= max_tokens
            size = len(window) if fits.all() else int(np.argmin(fits))
            batches.append(bucket[first : first + size])
            first += size
    return batches


def iter_eval_batches(
    data: TaskData, max_tokens: int, max_sentences: int, limit: int | None = None
) -> Iterator[TaskBatch | LMBatch]:
    """Batches of the first ``limit`` (default all) examples in corpus order, for evaluation.

    Concatenating the batches' rows gives the examples in their original order.
    """
    count = len(data) if limit is None else min(limit, len(data))
    order = np.arange(count)
    for indices in pack_batches(
        order, data.lengths(order), max_tokens, max_sentences, bucket_size=1, sort=False
    ):
        yield data.batch(indices)
