"""Architecture configuration of the translation models: presets, YAML loading and validation.

A preset is a YAML file ``models/<name>.yaml`` whose keys are the fields of :class:`ModelConfig`.
Everything is validated here, before any module is built, so that a bad size fails with a message
that names the field and the values it may take.

Vocabulary padding follows Megatron's ``make_vocab_size_divisible_by``: the embedding and output
matrices have ``padded_vocab_size(V, tp) = ceil(V / (m * tp)) * m * tp`` rows, so every
tensor-parallel rank holds the same number of rows. The padded rows are never predicted: the loss
and decoding only look at the first ``V`` logits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gradvac_ds.config import divisors, load_section
from gradvac_ds.errors import ConfigError

ACTIVATIONS: tuple[str, ...] = ("gelu", "relu")

#: Folder of the preset YAML files (``models/`` at the repository root).
PRESET_DIR = Path(__file__).resolve().parent / "presets"


class ModelConfigError(ConfigError):
    """A model configuration value is invalid; the message names the field and its allowed values."""


@dataclass(frozen=True)
class ModelConfig:
    """Sizes and regularisation of a multilingual Transformer, for every model kind.

    ``encoder_layers``/``decoder_layers`` size the encoder-decoder kinds; ``decoder_only_layers``
    sizes the decoder-only kind built from the same preset (see
    :mod:`gradvac_ds.training.modeling.registry`). ``num_query_groups`` < heads gives grouped-query
    attention, on the kinds whose attention has it.
    """

    name: str
    hidden_size: int
    ffn_hidden_size: int
    num_attention_heads: int
    encoder_layers: int
    decoder_layers: int
    decoder_only_layers: int
    max_sequence_length: int
    num_query_groups: int | None = None
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation: str = "gelu"
    share_embeddings: bool = True
    label_smoothing: float = 0.1
    init_std: float = 0.02
    make_vocab_size_divisible_by: int = 128
    layernorm_epsilon: float = 1e-5

    @property
    def query_groups(self) -> int:
        """Number of key/value heads (= attention heads without GQA)."""
        return self.num_attention_heads if self.num_query_groups is None else self.num_query_groups

    @property
    def head_dim(self) -> int:
        """Per-head width ``hidden_size / num_attention_heads``."""
        return self.hidden_size // self.num_attention_heads


def known_presets() -> list[str]:
    """Names of the presets shipped in ``models/`` (sorted)."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def config_from_mapping(values: Mapping[str, Any]) -> ModelConfig:
    """Build a :class:`ModelConfig` from a mapping (unknown, missing or mistyped keys are refused by
    :func:`gradvac_ds.config.load_section`), then check its sizes."""
    cfg = load_section(ModelConfig, values, "model config")
    validate_config(cfg)
    return cfg


def load_preset(name: str) -> ModelConfig:
    """Load ``models/<name>.yaml``; an unknown name raises listing the known presets."""
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ModelConfigError(f"unknown model preset {name!r}; known presets: {known_presets()}")
    return load_config_file(path)


def load_config_file(path: str | Path) -> ModelConfig:
    """Load a model config from a YAML file (same keys as the presets)."""
    with open(path, encoding="utf-8") as fh:
        values = yaml.safe_load(fh)
    if not isinstance(values, Mapping):
        raise ModelConfigError(f"model config file {path} must hold a mapping of field: value")
    values = dict(values)
    values.setdefault("name", Path(path).stem)
    return config_from_mapping(values)


def resolve_config(spec: str | Path | ModelConfig | Mapping[str, Any]) -> ModelConfig:
    """Accept a preset name, a YAML path, a mapping or a :class:`ModelConfig`; return it validated."""
    if isinstance(spec, ModelConfig):
        validate_config(spec)
        return spec
    if isinstance(spec, Mapping):
        return config_from_mapping(spec)
    text = str(spec)
    if text.endswith((".yaml", ".yml")) or Path(text).is_file():
        return load_config_file(text)
    return load_preset(text)


def _positive_int(cfg: ModelConfig, field: str) -> None:
    value = getattr(cfg, field)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelConfigError(f"model config field {field!r} must be a positive integer, got {value!r}")


def _probability(cfg: ModelConfig, field: str) -> None:
    value = getattr(cfg, field)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise ModelConfigError(f"model config field {field!r} must be a number in [0, 1), got {value!r}")


def validate_config(cfg: ModelConfig) -> None:
    """Check the sizes that do not depend on the parallel layout."""
    for field in (
        "hidden_size",
        "ffn_hidden_size",
        "num_attention_heads",
        "encoder_layers",
        "decoder_layers",
        "decoder_only_layers",
        "max_sequence_length",
        "make_vocab_size_divisible_by",
    ):
        _positive_int(cfg, field)
    if cfg.num_query_groups is not None:
        _positive_int(cfg, "num_query_groups")
    for field in ("dropout", "attention_dropout", "label_smoothing"):
        _probability(cfg, field)
    if cfg.activation not in ACTIVATIONS:
        raise ModelConfigError(
            f"model config field 'activation' must be one of {list(ACTIVATIONS)}, got {cfg.activation!r}"
        )
    if not isinstance(cfg.share_embeddings, bool):
        raise ModelConfigError(
            f"model config field 'share_embeddings' must be true or false, got {cfg.share_embeddings!r}"
        )
    if not cfg.init_std > 0 or not cfg.layernorm_epsilon > 0:
        raise ModelConfigError("model config fields 'init_std' and 'layernorm_epsilon' must be > 0")
    if cfg.hidden_size % cfg.num_attention_heads:
        raise ModelConfigError(
            f"model config field 'num_attention_heads' ({cfg.num_attention_heads}) must divide "
            f"'hidden_size' ({cfg.hidden_size}); allowed: {divisors(cfg.hidden_size)}"
        )
    if cfg.num_attention_heads % cfg.query_groups:
        raise ModelConfigError(
            f"model config field 'num_query_groups' ({cfg.query_groups}) must divide "
            f"'num_attention_heads' ({cfg.num_attention_heads}); allowed: "
            f"{divisors(cfg.num_attention_heads)}"
        )


def validate_sizes(cfg: ModelConfig, vocab_size: int, tp_size: int) -> None:
    """Check what every model kind needs of the vocabulary and the tensor-parallel size."""
    validate_config(cfg)
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 3:
        raise ModelConfigError(f"vocab_size must be an integer >= 3 (pad, bos, eos), got {vocab_size!r}")
    if isinstance(tp_size, bool) or not isinstance(tp_size, int) or tp_size < 1:
        raise ModelConfigError(f"tensor-parallel size must be a positive integer, got {tp_size!r}")
    allowed = divisors(math.gcd(cfg.num_attention_heads, cfg.query_groups, cfg.ffn_hidden_size))
    for field, value in (
        ("num_attention_heads", cfg.num_attention_heads),
        ("num_query_groups", cfg.query_groups),
        ("ffn_hidden_size", cfg.ffn_hidden_size),
    ):
        if value % tp_size:
            raise ModelConfigError(
                f"tensor-parallel size {tp_size} must divide model config field {field!r} ({value}); "
                f"allowed tensor-parallel sizes: {allowed}"
            )


def padded_vocab_size(vocab_size: int, tp_size: int, divisible_by: int) -> int:
    """Rows of the embedding/output matrices: ``vocab_size`` rounded up to a multiple of
    ``divisible_by * tp_size`` (Megatron's ``make_vocab_size_divisible_by`` rule)."""
    multiple = divisible_by * tp_size
    return -(-vocab_size // multiple) * multiple
