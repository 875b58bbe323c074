"""The megatron-core networks of the kinds ``encdec`` (T5Model) and ``decoder`` (GPTModel).

The tensor-parallel size is read from ``megatron.core.parallel_state`` (initialise it first, see
:func:`gradvac_ds.training.megatron.init_model_parallel`). Weights are drawn with
``use_cpu_initialization``: every sharded matrix is drawn whole from the seeded global RNG and
sliced, so the same seed gives the same full model for every tensor-parallel size (as long as the
padded vocabulary is the same) and the same shards on every rank of a tensor-parallel group.
The front door is :func:`gradvac_ds.training.modeling.registry.build_model`.

Parameter names, which GradVac's grouping reads (:mod:`gradvac_ds.grouping`).
Names (from ``TranslationModel.named_parameters()``; DeepSpeed's ``engine.module`` gives the same):

* ``model.embedding.word_embeddings.weight`` (vocabulary-parallel; also the output matrix when
  tied), ``model.embedding.position_embeddings.weight`` (replicated)
* ``model.encoder.layers.<i>.<sublayer>...`` encoder-decoder only
* ``model.decoder.layers.<i>.<sublayer>...`` the decoder of either kind (decoder-only: all layers)
  with sublayers ``input_layernorm``, ``self_attention.linear_qkv``, ``self_attention.linear_proj``,
  ``pre_cross_attn_layernorm``, ``cross_attention.linear_q|linear_kv|linear_proj`` (encoder-decoder
  decoder only), ``pre_mlp_layernorm``, ``mlp.linear_fc1``, ``mlp.linear_fc2``
* ``model.encoder.final_layernorm.*``, ``model.decoder.final_layernorm.*``
* output: ``model.output_layer.weight`` (GPT, untied), ``model.lm_head.output_layer.weight`` (T5,
  untied) or ``model.lm_head.output_layer.bias`` (T5, tied).

Tensor-parallel-sharded parameters carry ``tensor_model_parallel=True`` (with ``partition_dim``):
word embeddings, output weights/T5 bias, ``linear_qkv``/``linear_q``/``linear_kv``/``linear_fc1``
weights and biases, ``linear_proj``/``linear_fc2`` weights. LayerNorms, position embeddings and the
``linear_proj``/``linear_fc2`` biases are replicated on every tensor-parallel rank.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from megatron.core import parallel_state
from megatron.core.models.gpt.gpt_model import GPTModel
from megatron.core.models.T5.t5_model import T5Model
from megatron.core.transformer.transformer_config import TransformerConfig

from gradvac_ds.training.modeling.config import ModelConfig, padded_vocab_size, resolve_config, validate_sizes
from gradvac_ds.training.modeling.language_model import LanguageModel
from gradvac_ds.training.modeling.specs import gpt_layer_spec, t5_block_specs
from gradvac_ds.training.modeling.translation import (
    DecoderOnlyTranslator,
    EncoderDecoderTranslator,
    TranslationModel,
)

_ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu}


def tensor_parallel_size() -> int:
    """Tensor-parallel world size from megatron's parallel_state (which must be initialised)."""
    if not parallel_state.model_parallel_is_initialized():
        raise RuntimeError(
            "megatron parallel_state is not initialised: call "
            "gradvac_ds.training.megatron.init_model_parallel(tensor_parallel_size) first"
        )
    return parallel_state.get_tensor_model_parallel_world_size()


def transformer_config(cfg: ModelConfig, num_layers: int, tp_size: int) -> TransformerConfig:
    """megatron-core TransformerConfig for one stack of ``num_layers`` layers.

    Fusions that need Apex/TE kernels (gradient-accumulation fusion, persistent LayerNorm, masked
    softmax) are off. The jit bias+GeLU fusion is off too: it computes the tanh approximation of
    GeLU (not ``F.gelu``'s erf form), supports no ReLU and costs seconds of jit warm-up per process.
    """
    return TransformerConfig(
        num_layers=num_layers,
        hidden_size=cfg.hidden_size,
        ffn_hidden_size=cfg.ffn_hidden_size,
        num_attention_heads=cfg.num_attention_heads,
        num_query_groups=cfg.query_groups,
        kv_channels=cfg.head_dim,
        tensor_model_parallel_size=tp_size,
        hidden_dropout=cfg.dropout,
        attention_dropout=cfg.attention_dropout,
        activation_func=_ACTIVATIONS[cfg.activation],
        bias_activation_fusion=False,
        init_method_std=cfg.init_std,
        layernorm_epsilon=cfg.layernorm_epsilon,
        params_dtype=torch.float32,
        use_cpu_initialization=True,
        gradient_accumulation_fusion=False,
        masked_softmax_fusion=False,
        persist_layer_norm=False,
        apply_rope_fusion=False,
    )


def build_t5(cfg: ModelConfig, vocab_size: int, tp_size: int, pad_id: int) -> TranslationModel:
    """The ``encdec`` kind: a megatron-core ``T5Model`` (encoder, decoder with cross-attention)."""
    encoder_spec, decoder_spec = t5_block_specs(cfg.encoder_layers, cfg.decoder_layers)
    network = T5Model(
        config=transformer_config(cfg, cfg.decoder_layers, tp_size),
        encoder_config=transformer_config(cfg, cfg.encoder_layers, tp_size),
        transformer_encoder_layer_spec=encoder_spec,
        transformer_decoder_layer_spec=decoder_spec,
        vocab_size=padded_vocab_size(vocab_size, tp_size, cfg.make_vocab_size_divisible_by),
        max_sequence_length=cfg.max_sequence_length,
        parallel_output=True,
        share_embeddings_and_output_weights=cfg.share_embeddings,
        position_embedding_type="learned_absolute",
    )
    return EncoderDecoderTranslator(network, cfg, vocab_size, pad_id, cfg.label_smoothing)


def build_gpt(cfg: ModelConfig, vocab_size: int, tp_size: int, pad_id: int) -> TranslationModel:
    """The ``decoder`` kind: a megatron-core ``GPTModel`` as a conditional LM over source ++ target."""
    rows = padded_vocab_size(vocab_size, tp_size, cfg.make_vocab_size_divisible_by)
    return DecoderOnlyTranslator(_gpt(cfg, rows, tp_size), cfg, vocab_size, pad_id, cfg.label_smoothing)


def _gpt(cfg: ModelConfig, rows: int, tp_size: int) -> GPTModel:
    """The megatron-core GPT network of the ``decoder`` kind (causal self-attention only)."""
    return GPTModel(
        config=transformer_config(cfg, cfg.decoder_only_layers, tp_size),
        transformer_layer_spec=gpt_layer_spec(),
        vocab_size=rows,
        max_sequence_length=cfg.max_sequence_length,
        parallel_output=True,
        share_embeddings_and_output_weights=cfg.share_embeddings,
        position_embedding_type="learned_absolute",
    )


def build_language_model(
    spec: str | Path | ModelConfig | Mapping[str, Any],
    vocab_size: int,
    *,
    seed: int = 1234,
    device: str | torch.device = "cpu",
) -> LanguageModel:
    """The ``decoder`` kind's GPT network as a causal language model (multilingual pretraining).

    Same network, parameter names and seeding as ``build_model(..., kind="decoder")``;
    the loss is plain cross entropy (no label smoothing), so ``exp(loss)`` is the perplexity.
    """
    cfg = resolve_config(spec)
    tp_size = tensor_parallel_size()
    validate_sizes(cfg, vocab_size, tp_size)
    rows = padded_vocab_size(vocab_size, tp_size, cfg.make_vocab_size_divisible_by)
    torch.manual_seed(seed)
    with torch.device(device):
        return LanguageModel(_gpt(cfg, rows, tp_size), cfg, vocab_size)
