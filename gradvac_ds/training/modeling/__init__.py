"""Multilingual Transformers for translation and LM pretraining: the model kinds of
:mod:`~gradvac_ds.training.modeling.registry` (megatron-core T5Model and GPTModel, Hugging Face Marian)."""

from gradvac_ds.training.modeling.config import (
    ModelConfig,
    ModelConfigError,
    known_presets,
    load_preset,
    padded_vocab_size,
    resolve_config,
)
from gradvac_ds.training.modeling.language_model import LanguageModel
from gradvac_ds.training.modeling.megatron_models import build_language_model, tensor_parallel_size
from gradvac_ds.training.modeling.registry import (
    MODEL_SPECS,
    ModelSpec,
    build_model,
    count_parameters,
    model_spec,
    validate_build,
)
from gradvac_ds.training.modeling.translation import (
    DecoderOnlyTranslator,
    DecodingState,
    EncoderDecoderTranslator,
    TranslationModel,
)

__all__ = [
    "MODEL_SPECS",
    "DecoderOnlyTranslator",
    "DecodingState",
    "EncoderDecoderTranslator",
    "LanguageModel",
    "ModelConfig",
    "ModelConfigError",
    "ModelSpec",
    "TranslationModel",
    "build_language_model",
    "build_model",
    "count_parameters",
    "known_presets",
    "load_preset",
    "model_spec",
    "padded_vocab_size",
    "resolve_config",
    "tensor_parallel_size",
    "validate_build",
]
