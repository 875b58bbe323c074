"""Translation models: ``forward(src, tgt)`` returns the training loss,
``begin_decoding``/``next_token_logits`` serve the decoders in :mod:`gradvac_ds.training.evaluation`.

Every kind sees the same batch (see :mod:`gradvac_ds.training.modeling.batch`) and train on the same
tokens: the target pieces and eos, predicted from ``bos`` + the target prefix and the source.
The network is the submodule ``model``, so parameter names start with ``model.``. The
megatron-core kinds are here; the Hugging Face kind is :mod:`gradvac_ds.training.modeling.marian`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from gradvac_ds.training.modeling.batch import (
    check_tokens,
    key_padding_mask,
    pack_source_target,
    token_lengths,
)
from gradvac_ds.training.modeling.config import ModelConfig
from gradvac_ds.training.modeling.loss import gather_vocab_logits, label_smoothed_cross_entropy


@dataclass(frozen=True)
class DecodingState:
    """What decoding needs from the source, one row per hypothesis.

    ``source`` [N, Ls] tokens; ``memory`` [Ls, N, H] encoder output (encoder-decoder only).
    """

    source: Tensor
    memory: Tensor | None = None

    def repeat_interleave(self, times: int) -> DecodingState:
        """Each row repeated ``times`` times consecutively (one copy per beam)."""
        memory = None if self.memory is None else self.memory.repeat_interleave(times, dim=1)
        return DecodingState(self.source.repeat_interleave(times, dim=0), memory)


class TranslationModel(nn.Module, abc.ABC):
    """Common part of the translation models of every kind.

    Attributes: ``config`` (ModelConfig), ``kind`` (a key of the model registry), ``vocab_size``
    (real, unpadded), ``pad_id``, ``label_smoothing`` (ε of the loss), ``model`` (the network).
    """

    kind: str

    def __init__(
        self, model: nn.Module, config: ModelConfig, vocab_size: int, pad_id: int, label_smoothing: float
    ) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.vocab_size = vocab_size
        self.pad_id = pad_id
        self.label_smoothing = label_smoothing

    @staticmethod
    def _check_batch(src: Tensor, tgt: Tensor) -> None:
        check_tokens("src", src, 1)
        check_tokens("tgt", tgt, 2)
        if src.size(0) != tgt.size(0):
            raise ValueError(f"src and tgt batch sizes differ: {src.size(0)} vs {tgt.size(0)}")

    def _check_length(self, name: str, length: int) -> None:
        limit = self.config.max_sequence_length
        if length > limit:
            raise ValueError(
                f"{name} length {length} exceeds max_sequence_length {limit} "
                f"of model config {self.config.name!r}"
            )

    def _loss(self, logits: Tensor, labels: Tensor, loss_mask: Tensor) -> Tensor:
        return label_smoothed_cross_entropy(logits, labels, loss_mask, self.vocab_size, self.label_smoothing)

    @abc.abstractmethod
    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        """Mean label-smoothed cross entropy (float32 scalar) of ``tgt[:, 1:]`` over its non-pad tokens."""

    @abc.abstractmethod
    def max_prefix_length(self, state: DecodingState) -> int:
        """Longest target prefix (bos included) the positional embeddings allow for this source."""

    @abc.abstractmethod
    def begin_decoding(self, src: Tensor) -> DecodingState:
        """Per-source work done once before decoding (the encoder pass for encoder-decoder)."""

    @abc.abstractmethod
    def next_token_logits(self, state: DecodingState, prefix: Tensor) -> Tensor:
        """Logits [N, vocab_size] (float32, full vocabulary) of the token after ``prefix`` [N, t].

        ``prefix`` starts with bos and all its t tokens count as real (no padding); the decoder is
        recomputed over the whole prefix (no key/value cache).
        """


class EncoderDecoderTranslator(TranslationModel):
    """megatron-core ``T5Model``: encoder over ``src``, causal decoder over ``tgt[:, :-1]``."""

    kind: str = "encdec"

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        """Mean label-smoothed cross entropy (float32 scalar) of ``tgt[:, 1:]`` over its non-pad tokens."""
        self._check_batch(src, tgt)
        self._check_length("src", src.size(1))
        self._check_length("tgt[:, :-1]", tgt.size(1) - 1)
        decoder_input, labels = tgt[:, :-1], tgt[:, 1:]
        src_mask = key_padding_mask(src, self.pad_id)
        logits = self.model(
            src, decoder_input, src_mask, None, (key_padding_mask(decoder_input, self.pad_id), src_mask)
        )
        return self._loss(logits, labels, labels != self.pad_id)

    def begin_decoding(self, src: Tensor) -> DecodingState:
        check_tokens("src", src, 1)
        self._check_length("src", src.size(1))
        memory = self.model(
            src, None, key_padding_mask(src, self.pad_id), None, None, output_encoder_hidden_only=True
        )
        return DecodingState(src, memory)

    def max_prefix_length(self, state: DecodingState) -> int:
        return self.config.max_sequence_length

    def next_token_logits(self, state: DecodingState, prefix: Tensor) -> Tensor:
        src_mask = key_padding_mask(state.source, self.pad_id)
        no_padding = torch.zeros_like(prefix, dtype=torch.bool)[:, None, None, :]
        logits = self.model(
            None, prefix, None, None, (no_padding, src_mask), encoder_hidden_states=state.memory
        )
        return gather_vocab_logits(logits[:, -1], self.vocab_size).float()


class DecoderOnlyTranslator(TranslationModel):
    """megatron-core ``GPTModel`` as a conditional LM over ``src ++ tgt`` (loss on target tokens only).

    Each row is packed as the source's real tokens directly followed by the target's, then
    right-padded, so positions are contiguous and the causal mask hides all padding.
    """

    kind: str = "decoder"

    def _logits(self, tokens: Tensor) -> Tensor:
        """Vocabulary-parallel logits [B, L, Vl] of a packed batch [B, L]."""
        self._check_length("packed src ++ tgt input", tokens.size(1))
        positions = torch.arange(tokens.size(1), device=tokens.device).expand_as(tokens)
        return self.model(tokens, positions, None)

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        """Mean label-smoothed cross entropy (float32 scalar) of ``tgt[:, 1:]`` over its non-pad tokens.

        With ``s``/``t`` the real source/target lengths of a row and ``x`` the packed row, input
        position p predicts ``x[p+1]``; the loss counts positions ``s <= p <= s + t - 2``.
        """
        self._check_batch(src, tgt)
        src_len, tgt_len = token_lengths(src, self.pad_id), token_lengths(tgt, self.pad_id)
        packed = pack_source_target(src, src_len, tgt, tgt_len, self.pad_id)
        logits = self._logits(packed[:, :-1])
        pos = torch.arange(packed.size(1) - 1, device=packed.device)[None, :]
        loss_mask = (pos >= src_len[:, None]) & (pos <= (src_len + tgt_len - 2)[:, None])
        return self._loss(logits, packed[:, 1:], loss_mask)

    def begin_decoding(self, src: Tensor) -> DecodingState:
        check_tokens("src", src, 1)
        return DecodingState(src)

    def max_prefix_length(self, state: DecodingState) -> int:
        return self.config.max_sequence_length - int(token_lengths(state.source, self.pad_id).max())

    def next_token_logits(self, state: DecodingState, prefix: Tensor) -> Tensor:
        src_len = token_lengths(state.source, self.pad_id)
        prefix_len = torch.full_like(src_len, prefix.size(1))
        packed = pack_source_target(state.source, src_len, prefix, prefix_len, self.pad_id)
        logits = self._logits(packed)
        last = (src_len + prefix_len - 1)[:, None, None].expand(-1, 1, logits.size(-1))
        return gather_vocab_logits(logits.gather(1, last).squeeze(1), self.vocab_size).float()
