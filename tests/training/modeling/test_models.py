"""Tiny translation models of every kind on CPU (megatron-core T5 and GPT, Hugging Face Marian):
loss, gradients, padding, causality, tying."""

import dataclasses
import math

import pytest
import torch

from gradvac_ds.grouping import stack_layer
from gradvac_ds.training.modeling import (
    MODEL_SPECS,
    ModelConfig,
    TranslationModel,
    build_model,
)

KINDS = list(MODEL_SPECS)
VOCAB = 50


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


def word_embedding(model: TranslationModel) -> torch.nn.Parameter:
    """The token-embedding matrix [V', H] (also the output matrix when tied)."""
    if model.kind == "marian":
        return model.model.model.shared.weight
    return model.model.embedding.word_embeddings.weight


def output_weights(model: TranslationModel) -> list[str]:
    """Names of separate output-layer matrices (none when tied to the embedding)."""
    return [
        n for n in dict(model.named_parameters()) if n.endswith(("output_layer.weight", "lm_head.weight"))
    ]


def test_forward_backward(megatron_tp1: None, tiny: ModelConfig, batch, kind: str) -> None:
    model = build_model(tiny, VOCAB, kind, seed=0)
    loss = model(*batch)
    assert loss.dim() == 0 and loss.dtype == torch.float32
    assert abs(loss.item() - math.log(VOCAB)) < 0.5  # near-uniform predictions at initialisation
    loss.backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    fixed = sorted(n for n, p in model.named_parameters() if not p.requires_grad)
    if kind == "marian":  # the sinusoidal position tables, and nothing else
        assert fixed == [
            "model.model.decoder.embed_positions.weight",
            "model.model.encoder.embed_positions.weight",
        ]
    else:
        assert fixed == []
    assert word_embedding(model).grad.abs().sum() > 0


def test_padding_invariance(megatron_tp1: None, tiny: ModelConfig, batch, kind: str) -> None:
    model = build_model(tiny, VOCAB, kind, seed=1).eval()
    src, tgt = batch
    padded = (torch.nn.functional.pad(src, (0, 4)), torch.nn.functional.pad(tgt, (0, 3)))
    with torch.no_grad():
        torch.testing.assert_close(model(*padded), model(src, tgt), rtol=1e-5, atol=1e-6)


def test_batch_is_token_weighted_mean_of_rows(
    megatron_tp1: None, tiny: ModelConfig, batch, kind: str
) -> None:
    """Rows of different lengths: trimming each row's padding gives the same per-row loss."""
    model = build_model(tiny, VOCAB, kind, seed=2).eval()
    src, tgt = batch
    with torch.no_grad():
        whole = model(src, tgt)
        total, tokens = 0.0, 0
        for s, t in zip(src, tgt, strict=True):
            s, t = s[s != 0][None], t[t != 0][None]
            n = t.size(1) - 1
            total, tokens = total + model(s, t) * n, tokens + n
    torch.testing.assert_close(whole, total / tokens, rtol=1e-5, atol=1e-6)


def test_teacher_forcing_matches_incremental_decoding(
    megatron_tp1: None, tiny: ModelConfig, batch, kind: str
) -> None:
    """Without smoothing the loss is the mean -log p of incremental next-token predictions, which
    only holds if no position sees later target tokens (causal masking) or padding."""
    model = build_model(tiny, VOCAB, kind, seed=3, label_smoothing=0.0).eval()
    src, tgt = batch
    with torch.no_grad():
        state = model.begin_decoding(src)
        nll, count = 0.0, 0
        for t in range(1, tgt.size(1)):
            log_probs = model.next_token_logits(state, tgt[:, :t]).log_softmax(-1)
            real = tgt[:, t] != 0
            nll -= log_probs[real].gather(1, tgt[real, t, None]).sum()
            count += int(real.sum())
        torch.testing.assert_close(model(src, tgt), nll / count, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("tied", [True, False])
def test_tied_embeddings(megatron_tp1: None, tiny: ModelConfig, kind: str, tied: bool) -> None:
    """Tied: the output matrix is the word embedding, so a token never fed as input still gets an
    embedding gradient (through the output layer). Untied: it gets none."""
    cfg = dataclasses.replace(tiny, share_embeddings=tied)
    model = build_model(cfg, VOCAB, kind, seed=4)
    src = torch.tensor([[3, 5, 6, 2]])
    tgt = torch.tensor([[1, 7, 8, 2]])
    model(src, tgt).backward()
    unseen = word_embedding(model).grad[40]
    assert (unseen.abs().sum() > 0) == tied
    assert (output_weights(model) == []) == tied


def test_dropout_active_in_training(megatron_tp1: None, batch, kind: str) -> None:
    model = build_model("tiny", VOCAB, kind, seed=5)
    assert model(*batch).item() != model(*batch).item()
    model.eval()
    assert model(*batch).item() == model(*batch).item()


def test_bad_batches(megatron_tp1: None, tiny: ModelConfig, batch, kind: str) -> None:
    model = build_model(tiny, VOCAB, kind, seed=6)
    src, tgt = batch
    with pytest.raises(ValueError, match="tgt must have length >= 2"):
        model(src, tgt[:, :1])
    with pytest.raises(ValueError, match="src must be an integer tensor"):
        model(src.float(), tgt)
    with pytest.raises(ValueError, match="src and tgt batch sizes differ: 3 vs 2"):
        model(src, tgt[:2])
    too_long = torch.ones(1, tiny.max_sequence_length + 2, dtype=torch.long)
    with pytest.raises(ValueError, match="exceeds max_sequence_length 128"):
        model(too_long, too_long)


def test_parameter_names_give_the_spec_layers(megatron_tp1: None, tiny: ModelConfig, kind: str) -> None:
    """The grouping finds every layer the registry says the kind has, by name, and nothing more."""
    model = build_model(tiny, VOCAB, kind)
    layers = {stack_layer(n) for n, _ in model.named_parameters()} - {None}
    encoder_layers, decoder_layers = MODEL_SPECS[kind].num_layers(tiny)
    assert layers == {("encoder", i) for i in range(encoder_layers)} | {
        ("decoder", i) for i in range(decoder_layers)
    }


def test_the_source_reaches_every_target_position(
    megatron_tp1: None, tiny: ModelConfig, batch, kind: str
) -> None:
    """Changing one source token (not the tag) changes the next-token logits at every target
    position: the encoder output reaches the decoder through cross-attention (encdec), the packed
    source reaches the target positions through causal self-attention (decoder)."""
    model = build_model(tiny, VOCAB, kind, seed=4).eval()
    src, tgt = batch
    changed = src.clone()
    changed[:, 1] = torch.where(src[:, 1] == 5, 6, 5)
    with torch.no_grad():
        for prefix_length in range(1, tgt.size(1)):
            prefix = tgt[:, :prefix_length].clamp(min=1)  # real tokens only: next_token_logits' contract
            before = model.next_token_logits(model.begin_decoding(src), prefix)
            after = model.next_token_logits(model.begin_decoding(changed), prefix)
            moved = (before - after).abs().amax(dim=-1)
            assert (moved > 1e-4).all(), (prefix_length, moved)
