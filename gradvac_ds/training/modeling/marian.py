"""The ``marian`` kind: a Hugging Face ``transformers`` MarianMT encoder-decoder, randomly initialised.

The network is ``MarianMTModel`` built from a ``MarianConfig`` that :func:`marian_config` derives from
a :class:`~gradvac_ds.training.modeling.config.ModelConfig` (no weights are downloaded: the
architecture comes from the config, the weights from the seeded global RNG). Marian is the
architecture of the OPUS-MT models: post-LayerNorm layers, sinusoidal (fixed) positions, embeddings
scaled by sqrt(d), one embedding matrix shared by encoder, decoder and (tied) output layer, and a
``final_logits_bias`` buffer. It takes the batch contract of the other kinds unchanged, and its loss
is the same label-smoothed cross entropy over the first ``vocab_size`` logits. Tensor parallelism is
megatron-core's, so this kind runs at tensor-parallel size 1 (data parallelism and ZeRO as usual).

``transformers`` is the optional ``hf`` extra; it is imported when a model of this kind is built.
Parameter names start with ``model.model.encoder.layers.<i>.`` / ``model.model.decoder.layers.<i>.``,
so GradVac's ``layer`` granularity finds the same per-layer groups as in the megatron-core kinds.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from gradvac_ds.training.modeling.batch import check_tokens
from gradvac_ds.training.modeling.config import ModelConfig, ModelConfigError, padded_vocab_size
from gradvac_ds.training.modeling.translation import DecodingState, TranslationModel


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as error:  # the optional dependency of this kind only
        raise ModelConfigError(
            "model.kind 'marian' needs Hugging Face transformers: pip install 'gradvac_ds[hf]'"
        ) from error
    return transformers


def marian_config(cfg: ModelConfig, vocab_size: int, pad_id: int) -> Any:
    """The ``MarianConfig`` of ``cfg``: d_model = hidden_size, FFN = ffn_hidden_size, the encoder and
    decoder layer counts, heads, dropouts, activation, init std, ``max_sequence_length`` positions,
    and ``padded_vocab_size(vocab_size, 1, make_vocab_size_divisible_by)`` embedding rows."""
    rows = padded_vocab_size(vocab_size, 1, cfg.make_vocab_size_divisible_by)
    return _transformers().MarianConfig(
        vocab_size=rows,
        decoder_vocab_size=rows,
        d_model=cfg.hidden_size,
        encoder_layers=cfg.encoder_layers,
        decoder_layers=cfg.decoder_layers,
        encoder_attention_heads=cfg.num_attention_heads,
        decoder_attention_heads=cfg.num_attention_heads,
        encoder_ffn_dim=cfg.ffn_hidden_size,
        decoder_ffn_dim=cfg.ffn_hidden_size,
        max_position_embeddings=cfg.max_sequence_length,
        dropout=cfg.dropout,
        attention_dropout=cfg.attention_dropout,
        activation_dropout=0.0,
        encoder_layerdrop=0.0,
        decoder_layerdrop=0.0,
        activation_function=cfg.activation,
        init_std=cfg.init_std,
        scale_embedding=True,
        share_encoder_decoder_embeddings=True,
        tie_word_embeddings=cfg.share_embeddings,
        pad_token_id=pad_id,
        decoder_start_token_id=pad_id,
        use_cache=False,
    )


def build_marian(cfg: ModelConfig, vocab_size: int, tp_size: int, pad_id: int) -> MarianTranslator:
    """A randomly initialised MarianMT translator (draws from the global RNG; seed it first), with
    transformers' default attention (``scaled_dot_product_attention``). Encoder and decoder read one
    token-embedding matrix; ``share_embeddings`` ties the output layer to it too. Every LayerNorm
    takes ``cfg.layernorm_epsilon`` (Marian's config has no field for it).
    """
    if tp_size != 1:
        raise ModelConfigError(f"model.kind 'marian' runs at tensor-parallel size 1, got {tp_size}")
    network = _transformers().MarianMTModel(marian_config(cfg, vocab_size, pad_id))
    # transformers ties the encoder's and decoder's token embeddings to the shared matrix together
    # with the output layer; untied (share_embeddings false) only the output layer is separate
    shared = network.model.shared.weight
    network.model.encoder.embed_tokens.weight = shared
    network.model.decoder.embed_tokens.weight = shared
    for module in network.modules():
        if isinstance(module, nn.LayerNorm):
            module.eps = cfg.layernorm_epsilon
    return MarianTranslator(network, cfg, vocab_size, pad_id, cfg.label_smoothing)


def marian_parameters(cfg: ModelConfig, vocab_size: int, tp_size: int) -> int:
    """Parameters of the model :func:`build_marian` builds, d = hidden, f = ffn, V' = padded rows,
    P = max_sequence_length:

        attention  4 (d^2 + d)  (q, k, v, out with biases)     LayerNorm  2d
        encoder layer  attention + LayerNorm + f(d+1) + d(f+1) + LayerNorm
        decoder layer  encoder layer + cross-attention + LayerNorm
        embeddings     V' d shared (+ V' d untied output) + 2 P d fixed sinusoidal tables

    (no final LayerNorms: Marian's layers are post-norm; ``final_logits_bias`` is a buffer).
    """
    d, f = cfg.hidden_size, cfg.ffn_hidden_size
    rows = padded_vocab_size(vocab_size, tp_size, cfg.make_vocab_size_divisible_by)
    attention, norm = 4 * (d * d + d), 2 * d
    encoder_layer = attention + norm + f * (d + 1) + d * (f + 1) + norm
    decoder_layer = encoder_layer + attention + norm
    embeddings = rows * d * (1 if cfg.share_embeddings else 2) + 2 * cfg.max_sequence_length * d
    return cfg.encoder_layers * encoder_layer + cfg.decoder_layers * decoder_layer + embeddings


class MarianTranslator(TranslationModel):
    """``MarianMTModel``: encoder over ``src`` (padding masked), causal decoder over ``tgt[:, :-1]``.

    The decoder gets no padding mask: with right padding the causal mask already keeps every real
    position from seeing the padding after it, and padded positions take no part in the loss.
    The encoder memory of :class:`DecodingState` is stored as [Ls, N, H] like the megatron kinds'.
    """

    kind = "marian"

    def _source_mask(self, src: Tensor) -> Tensor:
        return (src != self.pad_id).long()

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        """Mean label-smoothed cross entropy (float32 scalar) of ``tgt[:, 1:]`` over its non-pad tokens."""
        self._check_batch(src, tgt)
        self._check_length("src", src.size(1))
        self._check_length("tgt[:, :-1]", tgt.size(1) - 1)
        decoder_input, labels = tgt[:, :-1], tgt[:, 1:]
        logits = self.model(
            input_ids=src, attention_mask=self._source_mask(src), decoder_input_ids=decoder_input
        ).logits
        return self._loss(logits, labels, labels != self.pad_id)

    def begin_decoding(self, src: Tensor) -> DecodingState:
        check_tokens("src", src, 1)
        self._check_length("src", src.size(1))
        memory = self.model.get_encoder()(input_ids=src, attention_mask=self._source_mask(src))
        return DecodingState(src, memory.last_hidden_state.transpose(0, 1))

    def max_prefix_length(self, state: DecodingState) -> int:
        return self.config.max_sequence_length

    def next_token_logits(self, state: DecodingState, prefix: Tensor) -> Tensor:
        memory = (state.memory.transpose(0, 1),)
        logits = self.model(
            encoder_outputs=memory,
            attention_mask=self._source_mask(state.source),
            decoder_input_ids=prefix,
        ).logits
        return logits[:, -1, : self.vocab_size].float()
