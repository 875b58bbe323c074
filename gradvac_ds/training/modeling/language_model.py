"""A megatron-core GPT network as a causal language model over packed fixed-length samples.

Batch: ``tokens`` [B, L + 1] (see :class:`gradvac_ds.training.data.batching.LMBatch`); the network
reads ``x = tokens[:, :-1]`` at positions ``0 .. L-1`` and position p predicts ``tokens[:, p+1]``.
The loss is the mean cross entropy over all B L predictions (no padding in packed samples):

    loss = -(1 / (B L)) sum_{b, p} log softmax(z_{b,p})[tokens[b, p+1]]

computed over vocabulary-parallel logits by
:func:`~gradvac_ds.training.modeling.loss.label_smoothed_cross_entropy` with ε = 0, so
``exp(loss)`` is the perplexity.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gradvac_ds.training.modeling.batch import check_tokens
from gradvac_ds.training.modeling.config import ModelConfig
from gradvac_ds.training.modeling.loss import label_smoothed_cross_entropy


class LanguageModel(nn.Module):
    """``forward(tokens)`` returns the mean next-token cross entropy (float32 scalar).

    Attributes: ``config`` (ModelConfig), ``vocab_size`` (real, unpadded), ``model`` (the
    megatron-core ``GPTModel``; parameter names start with ``model.`` as in the translation models).
    """

    def __init__(self, model: nn.Module, config: ModelConfig, vocab_size: int) -> None:
        super().__init__()
        self.model = model
        self.config = config
        self.vocab_size = vocab_size

    def forward(self, tokens: Tensor) -> Tensor:
        """Mean cross entropy of ``tokens[:, 1:]`` given the prefixes (shapes in the module docstring)."""
        check_tokens("tokens", tokens, 2)
        inputs, labels = tokens[:, :-1], tokens[:, 1:]
        if inputs.size(1) > self.config.max_sequence_length:
            raise ValueError(
                f"packed sample length {inputs.size(1)} exceeds max_sequence_length "
                f"{self.config.max_sequence_length} of model config {self.config.name!r}: "
                "lower data.max_positions"
            )
        positions = torch.arange(inputs.size(1), device=tokens.device).expand_as(inputs)
        logits = self.model(inputs, positions, None)
        mask = torch.ones_like(labels, dtype=torch.bool)
        return label_smoothed_cross_entropy(logits, labels, mask, self.vocab_size, 0.0)
