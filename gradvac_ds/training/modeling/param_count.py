"""Analytic parameter count of the megatron-core kinds ``encdec`` and ``decoder``.

Notation: d = hidden, f = ffn, d_kv = head_dim * query_groups, V' = padded vocabulary,
P = max_sequence_length, t = tensor-parallel size. Tensor-parallel-sharded tensors (column- or
row-parallel weights, column-parallel biases, vocabulary rows) count 1/t per rank; LayerNorms,
row-parallel biases and position embeddings are replicated.

Per layer, sharded / replicated:
  self-attention   qkv (d + 2 d_kv)(d + 1) + proj d·d      /  proj bias d
  MLP              fc1 f(d + 1) + fc2 d·f                  /  fc2 bias d
  LayerNorms                                               /  2·2d (input, pre-MLP)
  cross-attention  q d(d+1) + kv 2d(d+1) + proj d·d       /  proj bias d + LayerNorm 2d
Per stack: final LayerNorm 2d. Embedding: V'·d word (sharded) + P·d positions (replicated),
shared by encoder and decoder. Output layer: untied V'·d; tied T5 adds a V' bias; tied GPT adds 0.
"""

from __future__ import annotations

from gradvac_ds.training.modeling.config import ModelConfig, padded_vocab_size


def megatron_parameters(cfg: ModelConfig, vocab_size: int, encoder_decoder: bool, tp_size: int) -> int:
    """Parameters held by one tensor-parallel rank (``tp_size=1``: the whole model) of the T5
    (``encoder_decoder``) or GPT network built from ``cfg``; the arguments are validated by the
    caller (:func:`gradvac_ds.training.modeling.registry.count_parameters`)."""
    d, f = cfg.hidden_size, cfg.ffn_hidden_size
    d_kv = cfg.head_dim * cfg.query_groups
    rows = padded_vocab_size(vocab_size, tp_size, cfg.make_vocab_size_divisible_by)

    self_attn = ((d + 2 * d_kv) * (d + 1) + d * d, d)
    mlp = (f * (d + 1) + d * f, d)
    norms = (0, 4 * d)
    cross_attn = (3 * d * (d + 1) + d * d, d + 2 * d)
    layer = tuple(sum(part) for part in zip(self_attn, mlp, norms, strict=True))
    decoder_layer = (layer[0] + cross_attn[0], layer[1] + cross_attn[1])

    if encoder_decoder:
        encoder_layers, decoder_layers, stacked = cfg.encoder_layers, cfg.decoder_layers, decoder_layer
    else:
        encoder_layers, decoder_layers, stacked = 0, cfg.decoder_only_layers, layer
    sharded = encoder_layers * layer[0] + decoder_layers * stacked[0] + rows * d
    replicated = encoder_layers * layer[1] + decoder_layers * stacked[1] + cfg.max_sequence_length * d
    replicated += 2 * d * (2 if encoder_decoder else 1)
    if not cfg.share_embeddings:
        sharded += rows * d
    elif encoder_decoder:
        sharded += rows
    return sharded // tp_size + replicated
