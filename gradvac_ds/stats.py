"""What the engine reports per step (:class:`SimilarityStats`), its validated numpy form, and the
scalar events for DeepSpeed's monitor (``engine.monitor.write_events``) built from it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch


class SimilarityStats(Protocol):
    """What the GradVac engine reports per optimizer step (e.g. ``algorithm.SolveResult``).

    cosine:      float [L, K, K] cosine of the original task gradients, NaN where undefined
    fired:       bool  [L, K, K] the correction of task i towards task j fired on group l
    coefficient: float [L, K, K] multiple of g_j added to g_i' (0 where not fired)
    active:      bool  [K]       tasks present in the step
    """

    cosine: torch.Tensor
    fired: torch.Tensor
    coefficient: torch.Tensor
    active: torch.Tensor


@dataclass(frozen=True)
class StepArrays:
    """One step's statistics as validated numpy arrays (shapes as in :class:`SimilarityStats`).

    ``valid[l, i, j]`` is True where the pair counts: both tasks active and the cosine finite.
    """

    cosine: np.ndarray
    fired: np.ndarray
    coefficient: np.ndarray
    valid: np.ndarray


def step_arrays(stats: SimilarityStats, num_groups: int, num_tasks: int) -> StepArrays:
    """Convert and check one step's statistics; raise ValueError naming the wrong field."""
    shape = (num_groups, num_tasks, num_tasks)
    arrays = {}
    for field in ("cosine", "fired", "coefficient"):
        value = torch.as_tensor(getattr(stats, field)).detach().cpu()
        if tuple(value.shape) != shape:
            raise ValueError(
                f"stats.{field} must have shape {list(shape)} (L groups, K tasks), got {list(value.shape)}"
            )
        arrays[field] = value.numpy()
    active = torch.as_tensor(stats.active).detach().cpu().numpy()
    if active.shape != (num_tasks,):
        raise ValueError(f"stats.active must have shape [{num_tasks}], got {list(active.shape)}")
    cosine = arrays["cosine"].astype(np.float64)
    active = active.astype(bool)
    valid = np.isfinite(cosine) & (active[:, None] & active[None, :])[None, :, :]
    return StepArrays(
        cosine=cosine,
        fired=arrays["fired"].astype(bool) & valid,
        coefficient=arrays["coefficient"].astype(np.float64),
        valid=valid,
    )


Event = tuple[str, float, int]
"""(tag, value, x), the tuple DeepSpeed's MonitorMaster.write_events takes."""

PAIR_JOINER = "_vs_"
"""Joins two task names in a monitor tag: ``gradvac/cos/de-en_vs_fr-en``."""


def tag_part(name: str) -> str:
    """``name`` made safe for every DeepSpeed monitor: characters other than letters, digits, ``-``,
    ``_`` and ``.`` become ``_``. TensorBoard rewrites such characters itself (with a warning), and
    the CSV monitor turns the tag into a file name, so ``|``, ``:`` or spaces must not reach it."""
    return re.sub(r"[^\w.\-]", "_", name)


def pair_tag(a: str, b: str) -> str:
    """The monitor-tag part of the task pair {a, b}: ``a_vs_b``, each name made safe by :func:`tag_part`."""
    return f"{tag_part(a)}{PAIR_JOINER}{tag_part(b)}"


def monitor_events(
    stats: SimilarityStats, task_names: Sequence[str], group_names: Sequence[str], step: int
) -> list[Event]:
    """Per-pair and overall scalars, averaged over groups to keep the number of tags at K(K-1) + 2.

    For each unordered pair {a, b} of tasks with a defined cosine on at least one group:
      ``gradvac/cos/a_vs_b``   mean over groups of cos(g_a, g_b) (groups where it is defined)
      ``gradvac/fire/a_vs_b``  fraction of the defined (group, direction) corrections a->b, b->a that fired
    and over all such pairs: ``gradvac/cos/mean`` (mean of the pair values) and ``gradvac/fire/rate``.
    Pairs of inactive tasks are left out, so a tag is written only on the steps it is defined.
    ``step`` is the x value of every event (the engine passes DeepSpeed's ``global_samples``, the
    axis DeepSpeed logs its learning rate on). Tags hold no ``|`` (see :func:`pair_tag`).
    """
    arrays = step_arrays(stats, len(group_names), len(task_names))
    events: list[Event] = []
    pair_cosines = []
    fired_total = evaluated_total = 0
    for i in range(len(task_names)):
        for j in range(i + 1, len(task_names)):
            valid = arrays.valid[:, i, j]
            if not valid.any():
                continue
            pair = pair_tag(task_names[i], task_names[j])
            cosine = float(arrays.cosine[valid, i, j].mean())
            evaluated = int(valid.sum() + arrays.valid[:, j, i].sum())
            fired = int(arrays.fired[:, i, j].sum() + arrays.fired[:, j, i].sum())
            events.append((f"gradvac/cos/{pair}", cosine, step))
            events.append((f"gradvac/fire/{pair}", fired / evaluated, step))
            pair_cosines.append(cosine)
            fired_total += fired
            evaluated_total += evaluated
    if pair_cosines:
        events.append(("gradvac/cos/mean", float(np.mean(pair_cosines)), step))
        events.append(("gradvac/fire/rate", fired_total / evaluated_total, step))
    return events
