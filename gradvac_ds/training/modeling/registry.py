"""The model kinds: one :class:`ModelSpec` each, and the front doors that read them.

A kind says how to build a translation model from a :class:`ModelConfig` (every kind serves the same
training loss and decoding interface, :class:`TranslationModel`), how many parameters it has per
tensor-parallel rank (for the planner), which layer stacks the preset sizes, and what it supports
(tensor parallelism, grouped-query attention, language-model pretraining). Adding a kind is one
entry of :data:`MODEL_SPECS`; the run config, the trainer, the planner and the meta-device layout
read the registry and have no list of their own.

=========  =======================================================  ===============================
kind       network                                                   supports
=========  =======================================================  ===============================
encdec     megatron-core ``T5Model``                                 tensor parallelism
decoder    megatron-core ``GPTModel`` (conditional LM)               TP, GQA, LM pretraining
marian     Hugging Face ``MarianMTModel`` (random init)              TP = 1
=========  =======================================================  ===============================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gradvac_ds.training.modeling.config import ModelConfig, ModelConfigError, resolve_config, validate_sizes
from gradvac_ds.training.modeling.marian import build_marian, marian_parameters
from gradvac_ds.training.modeling.megatron_models import build_gpt, build_t5, tensor_parallel_size
from gradvac_ds.training.modeling.param_count import megatron_parameters
from gradvac_ds.training.modeling.translation import TranslationModel

Builder = Callable[[ModelConfig, int, int, int], TranslationModel]
"""(config, real vocabulary size V, tensor-parallel size, pad id) -> the model, drawn from the
global RNG on the current default device."""


@dataclass(frozen=True)
class ModelSpec:
    """One model kind.

    build:               the :data:`Builder`.
    count_parameters:    (config, V, tensor-parallel size) -> parameters held by one TP rank.
    encoder_decoder:     True: ``encoder_layers`` + ``decoder_layers`` of the preset; False:
                         ``decoder_only_layers``.
    max_tensor_parallel: largest tensor-parallel size (None: any size dividing the heads and FFN).
    grouped_query_attention: whether ``num_query_groups`` < heads is allowed.
    language_model:      whether the kind also serves LM pretraining (``data.source: monolingual``).
    """

    name: str
    summary: str
    build: Builder
    count_parameters: Callable[[ModelConfig, int, int], int]
    encoder_decoder: bool
    max_tensor_parallel: int | None = None
    grouped_query_attention: bool = False
    language_model: bool = False

    def num_layers(self, cfg: ModelConfig) -> tuple[int, int]:
        """(encoder layers, decoder layers) of this kind built from ``cfg`` (encoder 0 without one)."""
        if self.encoder_decoder:
            return cfg.encoder_layers, cfg.decoder_layers
        return 0, cfg.decoder_only_layers

    def check_tensor_parallel(self, tp_size: int) -> None:
        """Refuse a tensor-parallel size beyond what the kind supports."""
        if self.max_tensor_parallel is not None and tp_size > self.max_tensor_parallel:
            raise ModelConfigError(
                f"model.tensor_parallel = {tp_size}: model.kind {self.name!r} supports tensor-parallel "
                f"sizes up to {self.max_tensor_parallel}"
            )

    def validate(self, cfg: ModelConfig, vocab_size: int, tp_size: int) -> None:
        """Everything that depends on the vocabulary, the kind and the tensor-parallel size."""
        validate_sizes(cfg, vocab_size, tp_size)
        self.check_tensor_parallel(tp_size)
        if not self.grouped_query_attention and cfg.query_groups != cfg.num_attention_heads:
            supported = [name for name, spec in MODEL_SPECS.items() if spec.grouped_query_attention]
            raise ModelConfigError(
                f"model config field 'num_query_groups' must equal 'num_attention_heads' for kind "
                f"{self.name!r} (its attention has no grouped-query attention); kinds with GQA: {supported}"
            )


def _megatron_count(encoder_decoder: bool) -> Callable[[ModelConfig, int, int], int]:
    return lambda cfg, vocab_size, tp_size: megatron_parameters(cfg, vocab_size, encoder_decoder, tp_size)


MODEL_SPECS: dict[str, ModelSpec] = {
    "encdec": ModelSpec(
        name="encdec",
        summary="megatron-core T5Model: encoder, decoder with cross-attention",
        build=build_t5,
        count_parameters=_megatron_count(True),
        encoder_decoder=True,
    ),
    "decoder": ModelSpec(
        name="decoder",
        summary="megatron-core GPTModel as a conditional LM over source ++ target",
        build=build_gpt,
        count_parameters=_megatron_count(False),
        encoder_decoder=False,
        grouped_query_attention=True,
        language_model=True,
    ),
    "marian": ModelSpec(
        name="marian",
        summary="Hugging Face transformers MarianMTModel, randomly initialised (extra 'hf')",
        build=build_marian,
        count_parameters=marian_parameters,
        encoder_decoder=True,
        max_tensor_parallel=1,
    ),
}


def model_spec(kind: str) -> ModelSpec:
    """The spec of ``kind``; an unknown kind raises naming the known ones."""
    if kind not in MODEL_SPECS:
        raise ModelConfigError(f"model kind must be one of {list(MODEL_SPECS)}, got {kind!r}")
    return MODEL_SPECS[kind]


def validate_build(cfg: ModelConfig, vocab_size: int, kind: str, tp_size: int) -> None:
    """Check a build of ``kind`` from ``cfg`` with vocabulary ``vocab_size`` on ``tp_size`` ranks."""
    model_spec(kind).validate(cfg, vocab_size, tp_size)


def count_parameters(cfg: ModelConfig, vocab_size: int, kind: str, tp_size: int = 1) -> int:
    """Parameters held by one tensor-parallel rank of the ``kind`` model (``tp_size=1``: all of it)."""
    validate_build(cfg, vocab_size, kind, tp_size)
    return model_spec(kind).count_parameters(cfg, vocab_size, tp_size)


def build_model(
    spec: str | Path | ModelConfig | Mapping[str, Any],
    vocab_size: int,
    kind: str = "encdec",
    *,
    seed: int = 1234,
    pad_id: int = 0,
    label_smoothing: float | None = None,
    device: str | torch.device = "cpu",
) -> TranslationModel:
    """Build a translation model of any kind.

    Args:
        spec: preset name (``presets/<name>.yaml``), YAML path, mapping or ModelConfig.
        vocab_size: real vocabulary size V (embedding rows are padded, see ``padded_vocab_size``).
        kind: a key of :data:`MODEL_SPECS`.
        seed: seeds the global torch RNG before construction.
        pad_id: padding token id of the batches.
        label_smoothing: ε of the loss; None takes the config's ``label_smoothing``.
        device: where parameters are created; ``"meta"`` builds shapes only (parameter counting).

    The tensor-parallel size is megatron's (``parallel_state`` must be initialised, also for a kind
    without tensor parallelism: the loss reduces over its group). All arguments are validated before
    anything is built.
    """
    cfg = resolve_config(spec)
    if label_smoothing is not None:
        cfg = dataclasses.replace(cfg, label_smoothing=label_smoothing)
    tp_size = tensor_parallel_size()
    validate_build(cfg, vocab_size, kind, tp_size)
    if isinstance(pad_id, bool) or not isinstance(pad_id, int) or not 0 <= pad_id < vocab_size:
        raise ModelConfigError(f"pad_id must be an integer in [0, {vocab_size}), got {pad_id!r}")
    torch.manual_seed(seed)
    with torch.device(device):
        return model_spec(kind).build(cfg, vocab_size, tp_size, pad_id)
