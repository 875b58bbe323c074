"""Batch helpers: packing source and target per row for the decoder-only model, masks, checks."""

import pytest
import torch

from gradvac_ds.training.modeling.batch import (
    check_tokens,
    key_padding_mask,
    pack_source_target,
    token_lengths,
)


def test_pack_source_target() -> None:
    src = torch.tensor([[3, 5, 6, 2], [3, 7, 2, 0]])
    tgt = torch.tensor([[1, 8, 2, 0, 0], [1, 9, 10, 11, 2]])
    packed = pack_source_target(src, token_lengths(src, 0), tgt, token_lengths(tgt, 0), pad_id=0)
    assert packed.tolist() == [[3, 5, 6, 2, 1, 8, 2, 0], [3, 7, 2, 1, 9, 10, 11, 2]]


def test_pack_with_explicit_prefix_length() -> None:
    src = torch.tensor([[3, 2, 0], [3, 4, 2]])
    prefix = torch.tensor([[1, 5], [1, 7]])
    packed = pack_source_target(src, token_lengths(src, 0), prefix, torch.tensor([2, 2]), pad_id=0)
    assert packed.tolist() == [[3, 2, 1, 5, 0], [3, 4, 2, 1, 7]]


def test_key_padding_mask_convention() -> None:
    mask = key_padding_mask(torch.tensor([[3, 2, 0]]), 0)
    assert mask.shape == (1, 1, 1, 3) and mask.flatten().tolist() == [False, False, True]


def test_check_tokens() -> None:
    check_tokens("src", torch.zeros(2, 3, dtype=torch.long), 1)
    with pytest.raises(ValueError, match="src must be an integer tensor \\[batch, length\\]"):
        check_tokens("src", torch.zeros(3, dtype=torch.long), 1)
