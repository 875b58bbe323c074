"""Analytic parameter count of the models :func:`gradvac_ds.training.modeling.build.build_model` builds.

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

from gradvac_ds.training.modeling.config import ModelConfig, ModelKind, padded_vocab_size, validate_build


def count_parameters(cfg: ModelConfig, vocab_size: int, kind: ModelKind, tp_size: int = 1) -> int:
    """Parameters held by one tensor-parallel rank (``tp_size=1``: the whole model)."""
    validate_build(cfg, vocab_size, kind, tp_size)
    d, f = cfg.hidden_size, cfg.ffn_hidden_size
    d_kv = cfg.head_dim * cfg.query_groups
    rows = padded_vocab_size(vocab_size, tp_size, cfg.make_vocab_size_divisible_by)

    self_attn = ((d + 2 * d_kv) * (d + 1) + d * d, d)
    mlp = (f * (d + 1) + d * f, d)
    norms = (0, 4 * d)
    cross_attn = (3 * d * (d + 1) + d * d, d + 2 * d)
    layer = tuple(sum(part) for part in zip(self_attn, mlp, norms, strict=True))
    decoder_layer = (layer[0] + cross_attn[0], layer[1] + cross_attn[1])

    encoder_layers, decoder_layers = cfg.num_layers(kind)
    stacked = decoder_layer if kind == "encdec" else layer
    sharded = encoder_layers * layer[0] + decoder_layers * stacked[0] + rows * d
    replicated = encoder_layers * layer[1] + decoder_layers * stacked[1] + cfg.max_sequence_length * d
    replicated += 2 * d * (2 if kind == "encdec" else 1)
    if not cfg.share_embeddings:
        sharded += rows * d
    elif kind == "encdec":
        sharded += rows
    return sharded // tp_size + replicated
