"""Aligned-MTL (Senushkin et al., CVPR 2023, "Independent Component Alignment for Multi-Task
Learning"): make the task gradients orthogonal with equal norms, which removes both conflict and
dominance, by a balance transformation computed from the Gram alone.

With the eigendecomposition ``G = V diag(lambda) V^T`` restricted to the r eigenvalues above
``k * eps * lambda_max`` (the numerical rank), the balance transformation is

    B = sqrt(s) V_r diag(lambda_r^{-1/2}) V_r^T,      w = B p

with ``p`` the preference vector (uniform 1/k) and the scale ``s`` the smallest kept eigenvalue
(``min``, the paper's choice), their median (``median``, the lower one for an even count, as
``torch.median``) or mean (``rmse``). ``X^T B`` has orthogonal rows of equal norm sqrt(s) on the
span of the task gradients. A group whose Gram has rank 0 gets ``B = I`` (w = p).
"""

from __future__ import annotations

import dataclasses

import torch

from gradvac_ds.weighting.base import GramianWeighting

SCALE_MODES = ("min", "median", "rmse")


@dataclasses.dataclass(frozen=True)
class AlignedMTLOptions:
    """scale_mode: which kept eigenvalue sets the update's scale; one of ``SCALE_MODES``."""

    scale_mode: str = "min"

    def __post_init__(self) -> None:
        if self.scale_mode not in SCALE_MODES:
            allowed = list(SCALE_MODES)
            raise ValueError(f"scale_mode = {self.scale_mode!r} is not allowed; choose one of {allowed}")


class AlignedMTL(GramianWeighting):
    """Balance transformation of the Gram's eigendecomposition, applied to uniform preferences."""

    name = "aligned_mtl"
    Options = AlignedMTLOptions

    def weights(self, gram: torch.Tensor) -> torch.Tensor:
        k = gram.shape[-1]
        eigenvalues, vectors = torch.linalg.eigh(gram)  # ascending
        tolerance = eigenvalues[:, -1:] * k * torch.finfo(gram.dtype).eps
        kept = eigenvalues > tolerance  # [L, k]
        rank = kept.sum(-1)
        masked = torch.where(kept, eigenvalues, float("nan"))
        mode = self.options.scale_mode
        if mode == "min":
            scale = torch.where(kept, eigenvalues, float("inf")).amin(-1)
        elif mode == "rmse":
            scale = masked.nansum(-1) / rank.clamp_min(1)
        else:
            scale = masked.nanmedian(-1).values
        inverse_root = torch.where(kept, eigenvalues.clamp_min(torch.finfo(gram.dtype).tiny).rsqrt(), 0.0)
        balance = (vectors * inverse_root.unsqueeze(-2)) @ vectors.transpose(-1, -2)
        balance = balance * torch.where(rank > 0, scale, 0.0).clamp_min(0).sqrt().view(-1, 1, 1)
        identity = torch.eye(k, dtype=gram.dtype).expand_as(balance)
        balance = torch.where((rank == 0).view(-1, 1, 1), identity, balance)
        preference = torch.full((k, 1), 1.0 / k, dtype=gram.dtype)
        return (balance @ preference).squeeze(-1)
