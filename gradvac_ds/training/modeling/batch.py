"""Token-batch helpers shared by the translation models: validation, lengths, masks, packing.

Batch contract (right padding with ``pad_id``):
``src`` [B, Ls] = ``[<2tgt>] + pieces + [eos]``; ``tgt`` [B, Lt] = ``[bos] + pieces + [eos]``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_tokens(name: str, tokens: Tensor, min_length: int) -> None:
    """Raise ValueError naming ``name`` unless ``tokens`` is an integer [B, L] tensor, L >= min_length."""
    if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.dtype not in (torch.int64, torch.int32):
        got = f"{tokens.dtype} {tuple(tokens.shape)}" if isinstance(tokens, Tensor) else type(tokens).__name__
        raise ValueError(f"{name} must be an integer tensor [batch, length], got {got}")
    if tokens.size(1) < min_length:
        raise ValueError(f"{name} must have length >= {min_length}, got {tokens.size(1)}")


def token_lengths(tokens: Tensor, pad_id: int) -> Tensor:
    """[B] number of non-pad tokens per row (right padding assumed)."""
    return (tokens != pad_id).sum(dim=1)


def key_padding_mask(tokens: Tensor, pad_id: int) -> Tensor:
    """[B, 1, 1, L] bool, True at padding (Megatron convention: True = masked out)."""
    return (tokens == pad_id)[:, None, None, :]


def pack_source_target(
    src: Tensor, src_lengths: Tensor, tgt: Tensor, tgt_lengths: Tensor, pad_id: int
) -> Tensor:
    """Concatenate each row's real source and target tokens, then right-pad.

    Row i of the result is ``src[i, :src_lengths[i]] ++ tgt[i, :tgt_lengths[i]]`` followed by
    ``pad_id`` up to ``L = max_i(src_lengths[i] + tgt_lengths[i])``. Shape [B, L].
    Because padding only ever follows real tokens, a causal mask alone keeps it invisible.
    """
    batch = src.size(0)
    total = src_lengths + tgt_lengths
    width = int(total.max())
    pos = torch.arange(width, device=src.device).expand(batch, width)
    from_src = pos < src_lengths[:, None]
    src_part = src.gather(1, pos.clamp(max=src.size(1) - 1))
    tgt_part = tgt.gather(1, (pos - src_lengths[:, None]).clamp(0, tgt.size(1) - 1))
    packed = torch.where(from_src, src_part, tgt_part)
    return packed.masked_fill(pos >= total[:, None], pad_id)
