"""TaskBatch contract, token-budget packing with length bucketing, evaluation batches."""

import random

import pytest
import torch

from gradvac_ds.training.data import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    EncodedTask,
    collate,
    iter_eval_batches,
    pack_batches,
)


def _task(n: int, seed: int = 0) -> EncodedTask:
    """n examples; example i's source is [i + 10] repeated, with lengths spread over 1..40."""
    rng = random.Random(seed)
    src = [[i + 10] * rng.randint(1, 40) for i in range(n)]
    tgt = [[i + 10] * rng.randint(1, 40) for i in range(n)]
    return EncodedTask("de-en", 5, src, tgt)


def test_collate_follows_the_contract() -> None:
    data = EncodedTask("de-en", 7, [[11, 12, 13], [14]], [[21], [22, 23, 24, 25]])
    batch = collate(data, [0, 1])
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


def test_collate_rejects_empty_and_misaligned() -> None:
    with pytest.raises(ValueError, match="empty batch"):
        collate(_task(3), [])
    with pytest.raises(ValueError, match="2 sources but 1 targets"):
        EncodedTask("de-en", 5, [[1], [2]], [[1]])


@pytest.mark.parametrize(("max_tokens", "max_sentences"), [(64, 100), (200, 8), (1000, 1000)])
def test_budget_respected_and_every_example_once(max_tokens: int, max_sentences: int) -> None:
    data = _task(500)
    lengths = data.lengths()
    order = list(range(500))
    random.Random(1).shuffle(order)
    batches = pack_batches(order, lengths, max_tokens, max_sentences, bucket_size=128)
    assert sorted(i for b in batches for i in b) == list(range(500))
    for indices in batches:
        batch = collate(data, indices)
        assert batch.num_sentences <= max_sentences
        assert batch.num_sentences * max(batch.src.shape[1], batch.tgt.shape[1]) <= max_tokens


def test_bucketing_reduces_padding() -> None:
    data = _task(2000)
    lengths = data.lengths()
    order = list(range(2000))
    random.Random(2).shuffle(order)

    def padding_fraction(bucket_size: int, sort: bool) -> float:
        batches = pack_batches(order, lengths, 400, 1000, bucket_size=bucket_size, sort=sort)
        real = sum(lengths[i] for b in batches for i in b)
        padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
        return 1 - real / padded

    # Lengths are uniform on 3..42; unsorted batches waste about a third, sorted ones a few percent.
    assert padding_fraction(500, sort=True) < 0.05
    assert padding_fraction(500, sort=False) > 0.2


def test_single_example_over_budget_is_an_error() -> None:
    with pytest.raises(ValueError, match="length 50 > max_tokens=40"):
        pack_batches([0], [50], max_tokens=40, max_sentences=4, bucket_size=8)


def test_eval_batches_keep_corpus_order() -> None:
    data = _task(97)
    rows = []
    for batch in iter_eval_batches(data, max_tokens=300, max_sentences=16):
        assert batch.num_sentences * max(batch.src.shape[1], batch.tgt.shape[1]) <= 300
        rows += [int(row[1]) - 10 for row in batch.src]
    assert rows == list(range(97))
