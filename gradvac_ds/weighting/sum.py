"""Sum: no surgery, every active task with weight 1 (the update of plain DeepSpeed)."""

from __future__ import annotations

import torch

from gradvac_ds.weighting.base import GramianWeighting


class Sum(GramianWeighting):
    """``w = 1`` on the active tasks."""

    name = "sum"

    def weights(self, gram: torch.Tensor) -> torch.Tensor:
        return torch.ones(gram.shape[:2], dtype=torch.float64)
