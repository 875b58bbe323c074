"""Multilingual Transformers built from megatron-core: translation (T5Model, GPTModel) and GPT LMs."""

from gradvac_ds.training.modeling.build import build_language_model, build_model, tensor_parallel_size
from gradvac_ds.training.modeling.config import (
    ModelConfig,
    ModelConfigError,
    known_presets,
    load_preset,
    padded_vocab_size,
    resolve_config,
)
from gradvac_ds.training.modeling.language_model import LanguageModel
from gradvac_ds.training.modeling.naming import ParameterLocation, is_tensor_parallel, parameter_location
from gradvac_ds.training.modeling.param_count import count_parameters
from gradvac_ds.training.modeling.translation import (
    DecoderOnlyTranslator,
    DecodingState,
    EncoderDecoderTranslator,
    TranslationModel,
)

__all__ = [
    "DecoderOnlyTranslator",
    "DecodingState",
    "EncoderDecoderTranslator",
    "LanguageModel",
    "ModelConfig",
    "ModelConfigError",
    "ParameterLocation",
    "TranslationModel",
    "build_language_model",
    "build_model",
    "count_parameters",
    "is_tensor_parallel",
    "known_presets",
    "load_preset",
    "padded_vocab_size",
    "parameter_location",
    "resolve_config",
    "tensor_parallel_size",
]
