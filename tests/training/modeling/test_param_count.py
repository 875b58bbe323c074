"""Analytic parameter counts equal built models: tiny built for real, every preset on the meta device."""

import dataclasses
import re

import pytest
import torch

from gradvac_ds.training.modeling import build_model, count_parameters, known_presets, load_preset
from gradvac_ds.training.modeling.config import PRESET_DIR

STATED = re.compile(r"^# parameters \(vocab (\d+)\): encdec (\d+), decoder (\d+)$", re.MULTILINE)


def _numel(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("kind", ["encdec", "decoder"])
@pytest.mark.parametrize("untied", [False, True])
def test_tiny_real_build_matches(megatron_tp1: None, kind: str, untied: bool) -> None:
    cfg = dataclasses.replace(load_preset("tiny"), share_embeddings=not untied)
    assert _numel(build_model(cfg, 101, kind)) == count_parameters(cfg, 101, kind)


@pytest.mark.parametrize("preset", ["tiny", "base", "big", "1.3b"])
def test_stated_counts_match_meta_build(megatron_tp1: None, preset: str) -> None:
    text = (PRESET_DIR / f"{preset}.yaml").read_text()
    vocab, *stated = (int(x) for x in STATED.search(text).groups())
    for kind, want in zip(("encdec", "decoder"), stated, strict=True):
        model = build_model(preset, vocab, kind, device="meta")
        assert all(p.is_meta for p in model.parameters())
        assert _numel(model) == count_parameters(load_preset(preset), vocab, kind) == want


def test_every_preset_states_its_count() -> None:
    for preset in known_presets():
        assert STATED.search((PRESET_DIR / f"{preset}.yaml").read_text()), preset


def test_big_is_the_paper_transformer_big() -> None:
    big = load_preset("big")
    embedding = 64000 * 1024
    total = count_parameters(big, 64000, "encdec")
    assert 240e6 < total < 245e6
    # the paper's ~375M: separate source, target and output embeddings of the 64k vocabulary
    assert abs(total + 2 * embedding - 375e6) < 2e6


@pytest.mark.parametrize("untied", [False, True])
def test_marian_count_matches_its_build(megatron_tp1: None, untied: bool) -> None:
    """The analytic count of the Hugging Face kind against transformers' own modules (tied matrices
    counted once: the encoder and decoder token embeddings are one, and the output too when tied)."""
    cfg = dataclasses.replace(load_preset("tiny"), share_embeddings=not untied)
    model = build_model(cfg, 101, "marian")
    assert _numel(model) == count_parameters(cfg, 101, "marian")
    base = load_preset("base")
    assert _numel(build_model(base, 32000, "marian", device="meta")) == count_parameters(
        base, 32000, "marian"
    )
