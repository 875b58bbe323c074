"""Capability-based choice of megatron-core layer specs.

If Transformer Engine can be imported, megatron-core's TE specs are used (fused attention, fused
LayerNorm+linear). Otherwise the local specs are used with :class:`SDPACoreAttention` in every
``core_attention`` slot and ``WrappedTorchNorm`` wherever the local spec names ``TENorm``
(which is ``None`` without TE). The model code is the same either way; parameter names differ
only inside a layer (TE fuses ``input_layernorm`` into ``self_attention.linear_qkv.layer_norm_*``).
"""

from __future__ import annotations

from megatron.core.models.gpt import gpt_layer_specs
from megatron.core.models.T5 import t5_spec
from megatron.core.transformer.spec_utils import ModuleSpec
from megatron.core.transformer.torch_norm import WrappedTorchNorm
from megatron.core.transformer.transformer_block import TransformerBlockSubmodules

from gradvac_ds.training.modeling.attention import SDPACoreAttention


def transformer_engine_available() -> bool:
    """True when megatron-core could import Transformer Engine (its TE specs are then usable)."""
    return bool(t5_spec.HAVE_TE and gpt_layer_specs.HAVE_TE)


def _use_sdpa(layer: ModuleSpec) -> None:
    """Put SDPACoreAttention into the self- and cross-attention core slots of a local layer spec."""
    sub = layer.submodules
    sub.self_attention.submodules.core_attention = SDPACoreAttention
    cross = sub.cross_attention
    if isinstance(cross, ModuleSpec) and hasattr(cross.submodules, "core_attention"):
        cross.submodules.core_attention = SDPACoreAttention


def _local_block(block: TransformerBlockSubmodules) -> TransformerBlockSubmodules:
    for layer in block.layer_specs:
        _use_sdpa(layer)
    if block.layer_norm is None:
        block.layer_norm = WrappedTorchNorm
    return block


def t5_block_specs(
    encoder_layers: int, decoder_layers: int
) -> tuple[TransformerBlockSubmodules, TransformerBlockSubmodules]:
    """(encoder, decoder) block specs for ``T5Model``."""
    if transformer_engine_available():
        return (
            t5_spec.get_t5_encoder_with_transformer_engine_block_spec(encoder_layers),
            t5_spec.get_t5_decoder_with_transformer_engine_block_spec(decoder_layers),
        )
    return (
        _local_block(t5_spec.get_t5_encoder_with_local_block_spec(encoder_layers)),
        _local_block(t5_spec.get_t5_decoder_with_local_block_spec(decoder_layers)),
    )


def gpt_layer_spec() -> ModuleSpec:
    """Layer spec for ``GPTModel`` (the block's final norm comes from megatron's own choice)."""
    if transformer_engine_available():
        return gpt_layer_specs.get_gpt_layer_with_transformer_engine_spec()
    spec = gpt_layer_specs.get_gpt_layer_local_spec()
    _use_sdpa(spec)
    return spec
