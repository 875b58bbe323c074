"""The GPT language model of LM pretraining: same network as kind ``decoder``, plain next-token loss."""

import pytest
import torch
import torch.nn.functional as F

from gradvac_ds.training.modeling import ModelConfig, build_language_model, build_model

VOCAB = 50


def test_same_parameters_as_the_decoder_kind(megatron_tp1: None, tiny: ModelConfig) -> None:
    lm = build_language_model(tiny, VOCAB, seed=3)
    decoder = build_model(tiny, VOCAB, "decoder", seed=3)
    lm_params, decoder_params = dict(lm.named_parameters()), dict(decoder.named_parameters())
    assert lm_params.keys() == decoder_params.keys()
    assert all(torch.equal(lm_params[n], decoder_params[n]) for n in lm_params)


def test_loss_is_the_mean_next_token_cross_entropy(megatron_tp1: None, tiny: ModelConfig) -> None:
    model = build_language_model(tiny, VOCAB, seed=1).eval()
    tokens = torch.randint(4, VOCAB, (3, 9), generator=torch.Generator().manual_seed(0))
    loss = model(tokens)
    positions = torch.arange(8).expand(3, 8)
    logits = model.model(tokens[:, :-1], positions, None)[..., :VOCAB].float()
    expected = F.cross_entropy(logits.reshape(-1, VOCAB), tokens[:, 1:].reshape(-1))
    assert loss.dtype == torch.float32 and torch.allclose(loss, expected, atol=1e-5)
    loss.backward()  # a training step has gradients everywhere
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_sample_longer_than_the_model_is_refused(megatron_tp1: None, tiny: ModelConfig) -> None:
    model = build_language_model(tiny, VOCAB)
    with pytest.raises(ValueError, match=r"packed sample length 129 exceeds max_sequence_length 128"):
        model(torch.ones(1, 130, dtype=torch.long))
