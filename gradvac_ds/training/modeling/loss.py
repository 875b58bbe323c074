"""Label-smoothed cross entropy over vocabulary-parallel logits, and the logits gather for decoding.

With tensor parallelism rank r holds logits for vocabulary rows ``[r*Vl, (r+1)*Vl)`` of the padded
vocabulary; rows ``>= vocab_size`` are padding and take no part in the softmax or the smoothing.
For a token with target t and real vocabulary size V, smoothing ε puts mass 1-ε on t and
ε/(V-1) on every other real token (fairseq's and Megatron's convention):

    loss = lse - (1 - ε - ε/(V-1)) z_t - ε/(V-1) Σ_v z_v,      lse = log Σ_v exp z_v

(using Σ_v q_v = 1). The three vocabulary sums (Σ exp, z_t, Σ z) are summed over the
tensor-parallel group with an all-reduce whose backward is the identity, which is the exact
gradient because every rank computes the same loss from the reduced sums.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from megatron.core import parallel_state
from megatron.core.tensor_parallel.mappings import reduce_from_tensor_model_parallel_region
from torch import Tensor


def _tp_group_and_rank() -> tuple[dist.ProcessGroup, int, int]:
    group = parallel_state.get_tensor_model_parallel_group()
    return group, dist.get_rank(group), dist.get_world_size(group)


def label_smoothed_cross_entropy(
    logits: Tensor, target: Tensor, loss_mask: Tensor, vocab_size: int, smoothing: float
) -> Tensor:
    """Mean label-smoothed cross entropy over the positions where ``loss_mask`` is True.

    Args:
        logits: [..., Vl] this rank's vocabulary shard (any float dtype; computed in float32).
        target: [...] token ids in ``[0, vocab_size)``.
        loss_mask: [...] bool, True where the token counts (non-padding targets).
        vocab_size: real vocabulary size V (``Vl * tp >= V``).
        smoothing: ε in [0, 1).

    Returns:
        0-dim float32 tensor, identical on every tensor-parallel rank.
    """
    group, rank, world = _tp_group_and_rank()
    z = logits.float()
    local_vocab = z.size(-1)
    first = rank * local_vocab
    column = torch.arange(first, first + local_vocab, device=z.device)
    real = column < vocab_size
    z = z.masked_fill(~real, 0.0)

    z_max = z.masked_fill(~real, float("-inf")).amax(dim=-1, keepdim=True).detach()
    if world > 1:
        dist.all_reduce(z_max, op=dist.ReduceOp.MAX, group=group)
    shifted = (z - z_max).masked_fill(~real, float("-inf"))
    sums = torch.stack(
        [
            shifted.exp().sum(-1),
            _target_logit(z, target, first),
            z.sum(-1),
        ],
        dim=-1,
    )
    sums = reduce_from_tensor_model_parallel_region(sums, group)
    sum_exp, z_target, z_sum = sums.unbind(-1)
    lse = sum_exp.log() + z_max.squeeze(-1)

    other = smoothing / (vocab_size - 1)
    per_token = lse - (1.0 - smoothing - other) * z_target - other * z_sum
    mask = loss_mask.to(per_token.dtype)
    return (per_token * mask).sum() / mask.sum().clamp(min=1.0)


def _target_logit(z: Tensor, target: Tensor, first: int) -> Tensor:
    """z[..., target - first] where the target lies in this shard, else 0."""
    local = target - first
    inside = (local >= 0) & (local < z.size(-1))
    picked = z.gather(-1, local.clamp(0, z.size(-1) - 1).unsqueeze(-1)).squeeze(-1)
    return picked * inside


@torch.no_grad()
def gather_vocab_logits(logits: Tensor, vocab_size: int) -> Tensor:
    """All-gather vocabulary shards [..., Vl] into full logits [..., vocab_size] (padding dropped).

    Uses ``torch.distributed.all_gather`` on the input's device (megatron's gather helper
    allocates on CUDA unconditionally). For inference only: no autograd.
    """
    group, _, world = _tp_group_and_rank()
    if world > 1:
        shards = [torch.empty_like(logits) for _ in range(world)]
        dist.all_gather(shards, logits.contiguous(), group=group)
        logits = torch.cat(shards, dim=-1)
    return logits[..., :vocab_size]
