"""Parse parameter-group names into a bottom-to-top layer profile (encoder and decoder stacks).

Groups named ``encoder.layers.N...`` / ``decoder.layers.N...``, after any wrapper prefix such as
megatron-core's ``model.``, belong to layer N of that stack (with
"matrix" granularity several groups share a layer and are averaged); every other group (embedding,
final layer norms, output layer, "model", "encoder" as a whole, ...) is kept under its own name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gradvac_ds.grouping import stack_layer

STACKS = ("encoder", "decoder")


@dataclass(frozen=True)
class LayerProfile:
    """Per-layer values: ``layers[stack]`` = (layer indices ascending, values), plus other groups."""

    layers: dict[str, tuple[list[int], list[float]]]
    other: dict[str, float]


def layer_profile(group_names: Sequence[str], values: np.ndarray) -> LayerProfile:
    """Arrange one value per group ([L]) by stack and layer; NaN values are ignored in layer means."""
    per_layer: dict[str, dict[int, list[float]]] = {stack: {} for stack in STACKS}
    other: dict[str, float] = {}
    for name, value in zip(group_names, values, strict=True):
        parsed = stack_layer(name)
        if parsed is None:
            other[name] = float(value)
        else:
            per_layer[parsed[0]].setdefault(parsed[1], []).append(float(value))
    layers = {}
    for stack, by_index in per_layer.items():
        indices = sorted(by_index)
        means = [
            float(np.nanmean(by_index[i])) if np.isfinite(by_index[i]).any() else float("nan")
            for i in indices
        ]
        layers[stack] = (indices, means)
    return LayerProfile(layers=layers, other=other)
