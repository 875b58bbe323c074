"""Scalar events for DeepSpeed's monitor (``engine.monitor.write_events``) from one step's stats."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gradvac_ds.analysis.window import SimilarityStats, step_arrays

Event = tuple[str, float, int]
"""(tag, value, step), the tuple DeepSpeed's MonitorMaster.write_events takes."""


def monitor_events(
    stats: SimilarityStats, task_names: Sequence[str], group_names: Sequence[str], step: int
) -> list[Event]:
    """Per-pair and overall scalars, averaged over groups to keep the number of tags at K(K-1) + 2.

    For each unordered pair {a, b} of tasks with a defined cosine on at least one group:
      ``gradvac/cos/a|b``   mean over groups of cos(g_a, g_b) (groups where it is defined)
      ``gradvac/fire/a|b``  fraction of the defined (group, direction) corrections a->b, b->a that fired
    and over all such pairs: ``gradvac/cos/mean`` (mean of the pair values) and ``gradvac/fire/rate``.
    Pairs of inactive tasks are left out, so a tag is written only on the steps it is defined.
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
            pair = f"{task_names[i]}|{task_names[j]}"
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
