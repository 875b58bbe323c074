"""Task-homogeneous micro-batches: the tensor contract with the model, and token-budget packing.

Contract (:class:`TaskBatch`), with B sentences of one task ``"src-tgt"``:

* ``src``: LongTensor [B, Ls], row = ``[<2tgt>] + pieces + [eos]``, right-padded with pad = 0;
* ``tgt``: LongTensor [B, Lt], row = ``[bos] + pieces + [eos]``, right-padded with 0. The model
  feeds ``tgt[:, :-1]`` to the decoder and scores ``tgt[:, 1:]``;
* ``num_src_tokens`` / ``num_tgt_tokens``: non-pad entries of ``src`` / ``tgt``.

Packing: a batch's cost is ``B * max(Ls, Lt)`` (padding included) and must stay within
``max_tokens``; B is also capped by ``max_sentences``. Examples are visited in a given (shuffled)
order, cut into chunks of ``bucket_size`` examples, each chunk sorted by length and packed
greedily, so padding stays small while batches still mix over the whole corpus.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from gradvac_ds.training.data.vocabulary import BOS_ID, EOS_ID, PAD_ID


@dataclass
class TaskBatch:
    """One micro-batch of a single task; shapes in the module docstring."""

    task: str
    src: torch.Tensor
    tgt: torch.Tensor
    num_src_tokens: int
    num_tgt_tokens: int

    @property
    def num_sentences(self) -> int:
        """B, the number of sentence pairs."""
        return self.src.shape[0]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "TaskBatch":
        """A copy with ``src`` and ``tgt`` on ``device``."""
        return TaskBatch(
            self.task,
            self.src.to(device, non_blocking=non_blocking),
            self.tgt.to(device, non_blocking=non_blocking),
            self.num_src_tokens,
            self.num_tgt_tokens,
        )


@dataclass(frozen=True)
class EncodedTask:
    """The encoded sentence pairs of one task (pieces only, no tag/bos/eos).

    Attributes:
        task: ``"src-tgt"``.
        tag_id: id of ``<2tgt>``, prepended to every source row.
        src / tgt: piece ids per sentence, aligned.
    """

    task: str
    tag_id: int
    src: Sequence[Sequence[int]]
    tgt: Sequence[Sequence[int]]

    def __post_init__(self) -> None:
        if len(self.src) != len(self.tgt):
            raise ValueError(f"task {self.task}: {len(self.src)} sources but {len(self.tgt)} targets")

    def __len__(self) -> int:
        return len(self.src)

    def lengths(self) -> list[int]:
        """Per example ``max(Ls, Lt)`` with the two special tokens on each side counted."""
        return [max(len(s), len(t)) + 2 for s, t in zip(self.src, self.tgt, strict=True)]


def _pad_rows(rows: list[list[int]]) -> torch.Tensor:
    width = max(len(row) for row in rows)
    return torch.tensor([row + [PAD_ID] * (width - len(row)) for row in rows], dtype=torch.long)


def collate(data: EncodedTask, indices: Sequence[int]) -> TaskBatch:
    """The :class:`TaskBatch` of examples ``indices`` of ``data``, in that order."""
    if not indices:
        raise ValueError(f"task {data.task}: cannot build an empty batch")
    src_rows = [[data.tag_id, *data.src[i], EOS_ID] for i in indices]
    tgt_rows = [[BOS_ID, *data.tgt[i], EOS_ID] for i in indices]
    return TaskBatch(
        task=data.task,
        src=_pad_rows(src_rows),
        tgt=_pad_rows(tgt_rows),
        num_src_tokens=sum(map(len, src_rows)),
        num_tgt_tokens=sum(map(len, tgt_rows)),
    )


def pack_batches(
    order: Sequence[int],
    lengths: Sequence[int],
    max_tokens: int,
    max_sentences: int,
    bucket_size: int,
    sort: bool = True,
) -> list[list[int]]:
    """Group example indices into batches within the token budget.

    Args:
        order: example indices in visiting order (already shuffled for training).
        lengths: ``lengths[i]`` = padded length cost of example ``i`` (``max(Ls, Lt)``).
        max_tokens: budget on ``B * max length`` per batch.
        max_sentences: cap on B.
        bucket_size: examples sorted together; ignored when ``sort`` is false.
        sort: sort each bucket by length (training) or keep ``order`` (evaluation).

    Returns:
        Batches of indices; every index of ``order`` appears exactly once.

    Raises:
        ValueError: if one example alone exceeds ``max_tokens``.
    """
    batches: list[list[int]] = []
    step = bucket_size if sort else max(len(order), 1)
    for start in range(0, len(order), step):
        bucket = list(order[start : start + step])
        if sort:
            bucket.sort(key=lambda i: lengths[i])
        batch: list[int] = []
        longest = 0
        for index in bucket:
            if lengths[index] > max_tokens:
                raise ValueError(f"example {index} has length {lengths[index]} > max_tokens={max_tokens}")
            grown = max(longest, lengths[index])
            if batch and (len(batch) >= max_sentences or (len(batch) + 1) * grown > max_tokens):
                batches.append(batch)
                batch, grown = [], lengths[index]
            batch.append(index)
            longest = grown
        if batch:
            batches.append(batch)
    return batches


def iter_eval_batches(data: EncodedTask, max_tokens: int, max_sentences: int) -> Iterator[TaskBatch]:
    """Batches of ``data`` in corpus order (no shuffling, no sorting), for evaluation.

    Concatenating the batches' rows gives the examples in their original order.
    """
    lengths = data.lengths()
    for indices in pack_batches(
        range(len(data)), lengths, max_tokens, max_sentences, bucket_size=1, sort=False
    ):
        yield collate(data, indices)
