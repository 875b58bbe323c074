"""Core attention for the ``core_attention`` slot of megatron-core layer specs, built on
``torch.nn.functional.scaled_dot_product_attention`` (SDPA picks a fused kernel where one exists).

Megatron's local ``DotProductAttention`` needs fused softmax kernels for speed and
Transformer Engine's needs a GPU; this module runs anywhere torch runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from megatron.core.transformer.enums import AttnMaskType
from megatron.core.transformer.module import MegatronModule
from megatron.core.transformer.transformer_config import TransformerConfig
from torch import Tensor

AttentionMask = Tensor | tuple[Tensor, Tensor] | None


class SDPACoreAttention(MegatronModule):
    """Scaled dot-product attention over the local (tensor-parallel) heads.

    Shapes: ``query`` [sq, b, hq, d], ``key``/``value`` [sk, b, hkv, d] with ``hq % hkv == 0``
    (grouped-query attention: query head i reads key/value head ``i // (hq / hkv)``, Megatron's
    layout). Output: [sq, b, hq * d].

    Masks follow Megatron: ``True`` = masked out. For ``AttnMaskType.causal`` the mask argument is
    ignored and query i sees keys ``j <= i + sk - sq`` (bottom-right aligned). Otherwise
    ``attention_mask`` is a boolean tensor broadcastable to [b, hq, sq, sk] (e.g. a key padding
    mask [b, 1, 1, sk]) or Transformer Engine's cross-attention pair
    ``(query_padding [b, 1, 1, sq], key_padding [b, 1, 1, sk])``, of which only the key padding is
    needed: rows of padded queries are computed but never read by the loss.

    ``softmax(q kᵀ * scale) v`` with ``scale = softmax_scale or 1/sqrt(d)``; attention dropout
    with probability ``attention_dropout`` (default ``config.attention_dropout``) in training.
    """

    def __init__(
        self,
        config: TransformerConfig,
        layer_number: int,
        attn_mask_type: AttnMaskType,
        attention_type: str,
        attention_dropout: float | None = None,
        softmax_scale: float | None = None,
        cp_comm_type: str | None = None,
        pg_collection: object | None = None,
    ) -> None:
        super().__init__(config=config)
        if config.context_parallel_size != 1:
            raise ValueError(
                f"SDPACoreAttention supports context_parallel_size 1 only, got {config.context_parallel_size}"
            )
        self.attn_mask_type = attn_mask_type
        self.softmax_scale = softmax_scale
        self.dropout_p = config.attention_dropout if attention_dropout is None else attention_dropout

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        attention_mask: AttentionMask,
        attn_mask_type: AttnMaskType | None = None,
        attention_bias: Tensor | None = None,
        packed_seq_params: object | None = None,
    ) -> Tensor:
        """Attend ``query`` to ``key``/``value``; see the class docstring for shapes and masks."""
        if attention_bias is not None or packed_seq_params is not None:
            raise NotImplementedError(
                "SDPACoreAttention takes no attention_bias (relative position "
                "embeddings) and no packed sequences"
            )
        mask_type = self.attn_mask_type if attn_mask_type is None else attn_mask_type
        sq, batch, heads, _ = query.shape
        sk, kv_heads = key.size(0), key.size(2)
        if heads != kv_heads:
            key = key.repeat_interleave(heads // kv_heads, dim=2)
            value = value.repeat_interleave(heads // kv_heads, dim=2)
        q, k, v = (t.permute(1, 2, 0, 3) for t in (query, key, value))  # [b, h, s, d]
        mask = None
        causal = mask_type == AttnMaskType.causal
        if causal and sq != sk:
            mask = torch.ones(sq, sk, dtype=torch.bool, device=q.device).tril(sk - sq)
            causal = False
        elif not causal and attention_mask is not None:
            key_mask = attention_mask[1] if isinstance(attention_mask, tuple) else attention_mask
            mask = ~key_mask.bool()
        context = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            is_causal=causal,
            scale=self.softmax_scale,
            dropout_p=self.dropout_p if self.training else 0.0,
        )
        return context.permute(2, 0, 1, 3).reshape(sq, batch, heads * q.size(-1))
