"""Learning-rate schedules: the multiplier ``f(step)`` of the peak rate ``training.lr``.

Every schedule warms up linearly, ``f(s) = (s + 1) / W`` for the first W = ``warmup_steps``
optimizer steps, then, with ``s`` the 0-based step and S = ``training.steps``:

* ``inverse_sqrt`` (fairseq's, the Transformer paper's): ``f(s) = sqrt(W / (s + 1))``, no end;
* ``cosine``: ``f(s) = m + (1 - m) (1 + cos(pi p)) / 2`` with ``p = (s + 1 - W) / (S - W)`` clipped
  to [0, 1] and ``m`` = ``min_lr_ratio``: from the peak to ``m`` times it at the last step;
* ``constant``: ``f(s) = 1``;
* ``wsd`` (warm-up, stable, decay): 1 until the last ``D = round(decay_fraction * S)`` steps, then
  linear to ``m``: ``f(s) = 1 - (1 - m) q`` with ``q = (s + 1 - (S - D)) / D`` clipped to [0, 1].

Short runs that must first find an alignment (the demo, the sanity tasks) learn fastest at a
constant rate: a rate that decays from the start (inverse square root: sqrt(W / S) of the peak by
the end, 0.4 for W = 100, S = 600; cosine) slows the plateau's end. ``wsd`` keeps the constant rate
and adds the final decay, which sharpens the last per-token errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable

LR_SCHEDULES = ("inverse_sqrt", "cosine", "constant", "wsd")


def lr_multiplier(
    schedule: str,
    warmup_steps: int,
    total_steps: int,
    min_lr_ratio: float = 0.0,
    decay_fraction: float = 0.2,
) -> Callable[[int], float]:
    """``f(step)`` of ``schedule`` (see the module docstring) for ``torch.optim.lr_scheduler.LambdaLR``."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"lr schedule {schedule!r}; allowed: {list(LR_SCHEDULES)}")

    def factor(step: int) -> float:
        done = step + 1
        if warmup_steps and done < warmup_steps:
            return done / warmup_steps
        if schedule == "inverse_sqrt":
            return math.sqrt(max(warmup_steps, 1) / done)
        if schedule == "constant":
            return 1.0
        if schedule == "wsd":
            decay = max(round(decay_fraction * total_steps), 1)
            progress = min(max((done - (total_steps - decay)) / decay, 0.0), 1.0)
            return 1.0 - (1.0 - min_lr_ratio) * progress
        progress = min(max((done - warmup_steps) / max(total_steps - warmup_steps, 1), 0.0), 1.0)
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor
