"""SDPACoreAttention against an explicit softmax(q kᵀ/√d + mask) v."""

import math

import pytest
import torch
from megatron.core.transformer.enums import AttnMaskType
from megatron.core.transformer.transformer_config import TransformerConfig

from gradvac_ds.training.modeling.attention import SDPACoreAttention


def _attention(mask_type: AttnMaskType, dropout: float = 0.0) -> SDPACoreAttention:
    cfg = TransformerConfig(num_layers=1, hidden_size=16, num_attention_heads=4, attention_dropout=dropout)
    return SDPACoreAttention(cfg, 1, mask_type, "self")


def _reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """q [sq,b,h,d], k/v [sk,b,h,d], masked [b or 1, h or 1, sq, sk] True = masked -> [sq, b, h*d]."""
    scores = torch.einsum("qbhd,kbhd->bhqk", q, k) / math.sqrt(q.size(-1))
    probs = scores.masked_fill(masked, float("-inf")).softmax(-1)
    out = torch.einsum("bhqk,kbhd->qbhd", probs, v)
    return out.reshape(q.size(0), q.size(1), -1)


@pytest.fixture()
def qkv() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randn(5, 2, 4, 8, generator=g) for _ in range(3))


def test_causal(qkv) -> None:
    q, k, v = qkv
    out = _attention(AttnMaskType.causal)(q, k, v, None)
    future = torch.ones(5, 5, dtype=torch.bool).triu(1)
    torch.testing.assert_close(out, _reference(q, k, v, future))


def test_causal_bottom_right_when_fewer_queries(qkv) -> None:
    q, k, v = qkv
    out = _attention(AttnMaskType.causal)(q[-2:], k, v, None)
    torch.testing.assert_close(out, _reference(q, k, v, torch.ones(5, 5, dtype=torch.bool).triu(1))[-2:])


def test_padding_mask_and_te_pair(qkv) -> None:
    q, k, v = qkv
    pad = torch.tensor([[False] * 5, [False, False, False, True, True]])[:, None, None, :]
    attn = _attention(AttnMaskType.arbitrary)
    want = _reference(q, k, v, pad)
    torch.testing.assert_close(attn(q, k, v, pad), want)
    torch.testing.assert_close(attn(q, k, v, (torch.zeros_like(pad), pad)), want)
    assert not torch.allclose(attn(q, k, v, None), want)


def test_grouped_query_attention(qkv) -> None:
    q, k, v = qkv
    k2, v2 = k[:, :, :2], v[:, :, :2]
    out = _attention(AttnMaskType.causal)(q, k2, v2, None)
    full_k, full_v = k2.repeat_interleave(2, dim=2), v2.repeat_interleave(2, dim=2)
    torch.testing.assert_close(out, _reference(q, full_k, full_v, torch.ones(5, 5, dtype=torch.bool).triu(1)))


def test_dropout_only_in_training(qkv) -> None:
    q, k, v = qkv
    attn = _attention(AttnMaskType.arbitrary, dropout=0.5)
    attn.eval()
    torch.testing.assert_close(
        attn(q, k, v, None), _reference(q, k, v, torch.zeros(1, 1, 5, 5, dtype=torch.bool))
    )
    attn.train()
    torch.manual_seed(0)
    assert not torch.allclose(attn(q, k, v, None), attn(q, k, v, None))


def test_rejects_attention_bias(qkv) -> None:
    q, k, v = qkv
    with pytest.raises(NotImplementedError, match="attention_bias"):
        _attention(AttnMaskType.arbitrary)(q, k, v, None, attention_bias=torch.zeros(1, 4, 5, 5))
