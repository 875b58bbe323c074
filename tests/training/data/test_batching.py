"""TaskBatch / LMBatch contracts on memory-mapped datasets, token-budget packing, evaluation batches."""

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from data_helpers import write_pairs

from gradvac_ds.training.data import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    IndexedWriter,
    PackedLMDataset,
    PairDataset,
    iter_eval_batches,
    open_indexed,
    pack_batches,
)


def _task(directory: Path, n: int, seed: int = 0) -> PairDataset:
    """n examples; example i's source is [i + 10] repeated, with lengths spread over 1..40."""
    rng = random.Random(seed)
    src = [[i + 10] * rng.randint(1, 40) for i in range(n)]
    tgt = [[i + 10] * rng.randint(1, 40) for i in range(n)]
    return write_pairs(directory, "de-en", 5, src, tgt)


def _old_pack(order, lengths, max_tokens, max_sentences, bucket_size, sort=True) -> list[list[int]]:
    """The list-based greedy packer the numpy one replaced, kept here as the oracle."""
    batches: list[list[int]] = []
    step = bucket_size if sort else max(len(order), 1)
    for start in range(0, len(order), step):
        bucket = list(order[start : start + step])
        if sort:
            bucket.sort(key=lambda i: lengths[i])
        batch: list[int] = []
        longest = 0
        for index in bucket:
            grown = max(longest, lengths[index])
            if batch and (len(batch) >= max_sentences or (len(batch) + 1) * grown > max_tokens):
                batches.append(batch)
                batch, grown = [], lengths[index]
            batch.append(index)
            longest = grown
        if batch:
            batches.append(batch)
    return batches


def test_collate_follows_the_contract(tmp_path: Path) -> None:
    data = write_pairs(tmp_path, "de-en", 7, [[11, 12, 13], [14]], [[21], [22, 23, 24, 25]])
    assert data.lengths(np.arange(2)).tolist() == [5, 6] and len(data) == 2
    assert data.lengths(np.array([1, 1, 0])).tolist() == [6, 6, 5]
    batch = data.batch([0, 1])
    assert batch.task == "de-en"
    assert batch.src.dtype == torch.long and batch.tgt.dtype == torch.long
    assert batch.src.tolist() == [[7, 11, 12, 13, EOS_ID], [7, 14, EOS_ID, PAD_ID, PAD_ID]]
    assert batch.tgt.tolist() == [
        [BOS_ID, 21, EOS_ID, PAD_ID, PAD_ID, PAD_ID],
        [BOS_ID, 22, 23, 24, 25, EOS_ID],
    ]
    assert batch.num_src_tokens == int((batch.src != PAD_ID).sum()) == 8
    assert batch.num_tgt_tokens == int((batch.tgt != PAD_ID).sum()) == 9
    assert batch.num_sentences == 2
    moved = batch.to("cpu")
    assert torch.equal(moved.src, batch.src) and moved.num_tgt_tokens == 9


def test_collate_rejects_empty(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty batch"):
        _task(tmp_path, 3).batch([])


def test_packed_lm_samples_cut_the_token_stream(tmp_path: Path) -> None:
    """Documents back to back; sample i = stream[4i : 4i + 5], the last partial sample dropped."""
    writer = IndexedWriter(tmp_path / "train.de", np.uint16)
    docs = [[10, 11, 3], [12, 13, 14, 15, 3], [16, 3], [17, 18, 19, 3]]
    writer.add_many(np.array([t for d in docs for t in d]), np.array([len(d) for d in docs]), 1)
    tokens = writer.finish()["tokens"]
    stream = [t for d in docs for t in d]
    data = PackedLMDataset("de", open_indexed(tmp_path / "train.de", 4, 1), 4, tokens)
    assert len(data) == (14 - 1) // 4 == 3
    batch = data.batch([2, 0])
    assert batch.tokens.dtype == torch.long and batch.tokens.tolist() == [stream[8:13], stream[0:5]]
    assert batch.num_tgt_tokens == 8 and batch.inputs[0] is batch.tokens
    assert [len(b) for b in pack_batches(range(3), data.lengths(np.arange(3)), 10, 16, 8)] == [2, 1]


@pytest.mark.parametrize(("max_tokens", "max_sentences"), [(64, 100), (200, 8), (1000, 1000)])
def test_budget_respected_and_every_example_once(tmp_path: Path, max_tokens: int, max_sentences: int) -> None:
    data = _task(tmp_path, 500)
    lengths = data.lengths(np.arange(500))
    order = list(range(500))
    random.Random(1).shuffle(order)
    batches = pack_batches(order, lengths[order], max_tokens, max_sentences, bucket_size=128)
    assert [b.tolist() for b in batches] == _old_pack(order, lengths.tolist(), max_tokens, max_sentences, 128)
    assert sorted(i for b in batches for i in b) == list(range(500))
    for indices in batches:
        batch = data.batch(indices)
        assert batch.num_sentences <= max_sentences
        assert batch.num_sentences * max(batch.src.shape[1], batch.tgt.shape[1]) <= max_tokens


def test_bucketing_reduces_padding(tmp_path: Path) -> None:
    data = _task(tmp_path, 2000)
    lengths = data.lengths(np.arange(2000))
    order = list(range(2000))
    random.Random(2).shuffle(order)

    def padding_fraction(bucket_size: int, sort: bool) -> float:
        batches = pack_batches(order, lengths[order], 400, 1000, bucket_size=bucket_size, sort=sort)
        real = sum(lengths[i] for b in batches for i in b)
        padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
        return 1 - real / padded

    # Lengths are uniform on 3..42; unsorted batches waste about a third, sorted ones a few percent.
    assert padding_fraction(500, sort=True) < 0.05
    assert padding_fraction(500, sort=False) > 0.2


def test_single_example_over_budget_is_an_error() -> None:
    with pytest.raises(ValueError, match="example 7 has length 50 > max_tokens=40"):
        pack_batches([3, 7], [10, 50], max_tokens=40, max_sentences=4, bucket_size=8)
    with pytest.raises(ValueError, match="one cost per example"):
        pack_batches([3, 7], [10], max_tokens=40, max_sentences=4, bucket_size=8)


def test_eval_batches_keep_corpus_order(tmp_path: Path) -> None:
    data = _task(tmp_path, 97)
    rows = []
    for batch in iter_eval_batches(data, max_tokens=300, max_sentences=16):
        assert batch.num_sentences * max(batch.src.shape[1], batch.tgt.shape[1]) <= 300
        rows += [int(row[1]) - 10 for row in batch.src]
    assert rows == list(range(97))
    limited = [int(row[1]) - 10 for b in iter_eval_batches(data, 300, 16, limit=30) for row in b.src]
    assert limited == list(range(30))
    order = list(range(97))
    lengths = data.lengths(np.arange(97)).tolist()
    assert [b.tolist() for b in pack_batches(order, lengths, 300, 16, 1, sort=False)] == _old_pack(
        order, lengths, 300, 16, 1, sort=False
    )
