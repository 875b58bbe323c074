"""IMTL-G: impartial multi-task learning, gradient part (Liu et al., ICLR 2021, "Towards
Impartial Multi-task Learning"), in the generalised form of Quinton & Rey (2024, "Jacobian Descent
for Multi-Objective Optimization") that allows linearly dependent task gradients.

The update d = sum_k w_k g_k has equal projections on every task's unit direction,
``d . g_k / ||g_k||`` the same for all k, with ``sum_k w_k = 1``:

    v = pinv(G) sqrt(diag G),        w = v / sum(v)      (w = 0 when sum(v) vanishes)

``pinv`` is the batched Moore-Penrose inverse (singular values below k * eps * s_max dropped, as
torch's default). ``sum(v)`` counts as vanished when ``|sum(v)| <= 1e-12 sum |v|`` (TorchJD: an
absolute 1e-12, which depends on the scale of the gradients).
"""

from __future__ import annotations

import torch

from gradvac_ds.weighting.base import GramianWeighting

VANISHING = 1e-12
"""Relative size of sum(v) below which the weights are 0."""


class IMTLG(GramianWeighting):
    """Equal-projection weights from the pseudo-inverse of the Gram."""

    name = "imtl_g"

    def weights(self, gram: torch.Tensor) -> torch.Tensor:
        d = gram.diagonal(dim1=-2, dim2=-1).clamp_min(0).sqrt()
        v = (torch.linalg.pinv(gram) @ d.unsqueeze(-1)).squeeze(-1)
        total = v.sum(-1, keepdim=True)
        vanished = total.abs() <= VANISHING * v.abs().sum(-1, keepdim=True)
        return torch.where(vanished, 0.0, v / torch.where(vanished, 1.0, total))
