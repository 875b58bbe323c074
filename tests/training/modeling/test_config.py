"""Model config validation: every bad value fails before anything is built, naming the field."""

import dataclasses

import pytest

from gradvac_ds.errors import ConfigError
from gradvac_ds.training.modeling import (
    ModelConfigError,
    build_model,
    known_presets,
    load_preset,
    padded_vocab_size,
)
from gradvac_ds.training.modeling.config import resolve_config
from gradvac_ds.training.modeling.registry import validate_build


def test_presets_listed_and_loadable() -> None:
    assert {"tiny", "base", "big", "1.3b"} <= set(known_presets())
    big = load_preset("big")
    assert (
        big.encoder_layers,
        big.decoder_layers,
        big.hidden_size,
        big.ffn_hidden_size,
        big.num_attention_heads,
    ) == (6, 6, 1024, 4096, 16)


def test_unknown_preset_lists_known() -> None:
    with pytest.raises(ModelConfigError, match=r"unknown model preset 'huge'.*tiny"):
        load_preset("huge")


def test_unknown_and_missing_fields() -> None:
    values = dataclasses.asdict(load_preset("tiny"))
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['hidden'\] in model config"):
        resolve_config({**values, "hidden": 3})
    with pytest.raises(ConfigError, match=r"model config.dropout = 'high' must be a number"):
        resolve_config({**values, "dropout": "high"})
    del values["hidden_size"]
    with pytest.raises(ConfigError, match=r"missing required field.*hidden_size"):
        resolve_config(values)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_attention_heads": 5}, "'num_attention_heads' \\(5\\) must divide 'hidden_size' \\(64\\)"),
        ({"hidden_size": 0}, "'hidden_size' must be a positive integer"),
        ({"dropout": 1.5}, "'dropout' must be a number in \\[0, 1\\)"),
        ({"activation": "swish"}, "'activation' must be one of \\['gelu', 'relu'\\]"),
        ({"num_query_groups": 3}, "'num_query_groups' \\(3\\) must divide 'num_attention_heads'"),
    ],
)
def test_bad_values(change: dict, message: str) -> None:
    with pytest.raises(ModelConfigError, match=message):
        resolve_config(dataclasses.replace(load_preset("tiny"), **change))


@pytest.mark.parametrize(
    ("change", "tp", "field"),
    [
        ({}, 8, "num_attention_heads"),
        ({"num_attention_heads": 8, "ffn_hidden_size": 260}, 8, "ffn_hidden_size"),
    ],
)
def test_tensor_parallel_must_divide(change: dict, tp: int, field: str) -> None:
    cfg = dataclasses.replace(load_preset("tiny"), **change)
    with pytest.raises(ModelConfigError, match=f"tensor-parallel size {tp} must divide .*'{field}'"):
        validate_build(cfg, 100, "encdec", tp)


def test_kind_vocab_and_gqa_checks() -> None:
    tiny = load_preset("tiny")
    with pytest.raises(
        ModelConfigError, match="model kind must be one of \\['encdec', 'decoder', 'marian'\\]"
    ):
        validate_build(tiny, 100, "seq2seq", 1)
    with pytest.raises(ModelConfigError, match="vocab_size must be an integer >= 3"):
        validate_build(tiny, 2, "encdec", 1)
    gqa = dataclasses.replace(tiny, num_query_groups=2)
    for kind in ("encdec", "marian"):
        with pytest.raises(
            ModelConfigError, match=f"'num_attention_heads' for kind '{kind}'.*GQA: \\['decoder'\\]"
        ):
            validate_build(gqa, 100, kind, 1)
    validate_build(gqa, 100, "decoder", 1)
    with pytest.raises(
        ModelConfigError, match=r"model.tensor_parallel = 2: model.kind 'marian' supports .* up to 1"
    ):
        validate_build(tiny, 100, "marian", 2)


def test_padded_vocab_is_megatron_rule() -> None:
    assert padded_vocab_size(64000, 1, 128) == 64000
    assert padded_vocab_size(64001, 1, 128) == 64128
    assert padded_vocab_size(100, 2, 8) == 112
    assert padded_vocab_size(96, 4, 8) == 96


def test_build_rejects_bad_pad_id(megatron_tp1: None) -> None:
    with pytest.raises(ModelConfigError, match="pad_id must be an integer in \\[0, 50\\)"):
        build_model("tiny", 50, pad_id=50)
