"""Label-smoothed cross entropy against the hand formula, with padded vocabulary and ignored positions."""

import math

import pytest
import torch

from gradvac_ds.training.modeling.loss import gather_vocab_logits, label_smoothed_cross_entropy


def test_hand_formula(megatron_tp1: None) -> None:
    # V = 3 real tokens, one padded column; eps = 0.3 -> q = (0.7 on target, 0.15 on the others)
    logits = torch.tensor([[[1.0, 2.0, 0.5, 99.0], [0.0, -1.0, 3.0, -99.0], [5.0, 5.0, 5.0, 5.0]]])
    target = torch.tensor([[1, 2, 0]])
    mask = torch.tensor([[True, True, False]])
    loss = label_smoothed_cross_entropy(logits, target, mask, vocab_size=3, smoothing=0.3)

    def token(z: list[float], t: int) -> float:
        lse = math.log(sum(math.exp(x) for x in z))
        return -sum((0.7 if v == t else 0.15) * (z[v] - lse) for v in range(3))

    want = (token([1.0, 2.0, 0.5], 1) + token([0.0, -1.0, 3.0], 2)) / 2
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(want, rel=1e-6)


def test_no_smoothing_is_cross_entropy(megatron_tp1: None) -> None:
    g = torch.Generator().manual_seed(0)
    logits, target = torch.randn(4, 7, 11, generator=g), torch.randint(0, 11, (4, 7), generator=g)
    mask = torch.rand(4, 7, generator=g) > 0.3
    loss = label_smoothed_cross_entropy(logits, target, mask, 11, 0.0)
    want = torch.nn.functional.cross_entropy(logits[mask], target[mask])
    torch.testing.assert_close(loss, want)


def test_gradient_flows_only_to_real_vocab(megatron_tp1: None) -> None:
    logits = torch.randn(2, 3, 8, requires_grad=True)
    label_smoothed_cross_entropy(
        logits, torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3, dtype=torch.bool), 6, 0.1
    ).backward()
    assert logits.grad[..., 6:].abs().max() == 0
    assert logits.grad[..., :6].abs().max() > 0


def test_gather_drops_padding(megatron_tp1: None) -> None:
    logits = torch.arange(8.0).expand(2, 8)
    torch.testing.assert_close(gather_vocab_logits(logits, 5), torch.arange(5.0).expand(2, 5))
