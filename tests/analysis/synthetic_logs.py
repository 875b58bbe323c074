"""Synthetic GradVac statistics with planted structure, shared by the analysis tests."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

FAMILIES = {"aa": "A", "ab": "A", "ac": "A", "ba": "B", "bb": "B", "bc": "B", "ca": "C", "cb": "C", "cc": "C"}
"""3 families x 3 languages; tasks are "<lang>-en"."""
GROUPS = [
    "embedding",
    "encoder.layers.0",
    "encoder.layers.1",
    "decoder.layers.0",
    "decoder.layers.1",
    "output_layer",
]
WITHIN, ACROSS, NOISE = 0.6, 0.05, 0.1


def make_stats(
    cosine: np.ndarray, fired: np.ndarray, coefficient: np.ndarray, active: np.ndarray
) -> SimpleNamespace:
    """A stats object shaped like the engine's (torch tensors)."""
    return SimpleNamespace(
        cosine=torch.tensor(cosine),
        fired=torch.tensor(fired),
        coefficient=torch.tensor(coefficient),
        active=torch.tensor(active),
    )


def random_step(rng: np.random.Generator, num_groups: int, num_tasks: int) -> SimpleNamespace:
    """Random symmetric cosines with NaNs, some inactive tasks (with finite garbage cosines), firings."""
    cosine = rng.uniform(-1, 1, (num_groups, num_tasks, num_tasks))
    cosine = (cosine + cosine.transpose(0, 2, 1)) / 2
    cosine[rng.random(cosine.shape) < 0.1] = np.nan
    active = rng.random(num_tasks) < 0.7
    fired = rng.random(cosine.shape) < 0.4
    coefficient = np.where(fired, rng.normal(0, 1, cosine.shape), 0.0)
    return make_stats(cosine, fired, coefficient, active)


def planted_cosine(rng: np.random.Generator, languages: list[str], base: np.ndarray, steps: int) -> list:
    """Per-step stats around ``base`` [K, K] (+ N(0, NOISE) per group and step), all tasks active."""
    num_tasks, out = len(languages), []
    for _ in range(steps):
        noise = rng.normal(0, NOISE, (len(GROUPS), num_tasks, num_tasks))
        cosine = np.clip(base + (noise + noise.transpose(0, 2, 1)) / 2, -1, 1)
        for group in cosine:
            np.fill_diagonal(group, 1.0)
        fired = cosine < 0.1
        out.append(make_stats(cosine, fired, np.where(fired, 0.2, 0.0), np.ones(num_tasks, dtype=bool)))
    return out
