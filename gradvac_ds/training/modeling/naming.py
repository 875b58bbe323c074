"""How the translation models name their parameters, for grouping code that maps names to layers.

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

import re
from dataclasses import dataclass

from torch import nn

from gradvac_ds.grouping import stack_layer
from gradvac_ds.zero import is_tensor_parallel_parameter

_STACK = re.compile(r"(?:^|\.)(encoder|decoder)\.")


@dataclass(frozen=True)
class ParameterLocation:
    """Where a parameter sits: ``stack`` in {"embedding", "encoder", "decoder", "output"} and the
    layer index within the stack (None for embeddings, final LayerNorms and the output layer)."""

    stack: str
    layer: int | None


def parameter_location(name: str) -> ParameterLocation:
    """Locate a parameter by name (any prefix before ``encoder.``/``decoder.`` is allowed)."""
    layer = stack_layer(name)
    if layer is not None:
        return ParameterLocation(*layer)
    match = _STACK.search(name)
    if match:
        return ParameterLocation(match.group(1), None)
    if ".embedding." in f".{name}":
        return ParameterLocation("embedding", None)
    if "output_layer." in name:
        return ParameterLocation("output", None)
    raise ValueError(f"parameter name {name!r} is not one of the translation model's parameters")


def is_tensor_parallel(param: nn.Parameter) -> bool:
    """True if the parameter is sharded over the tensor-parallel group (sum its Gram over TP)."""
    return is_tensor_parallel_parameter(param)
