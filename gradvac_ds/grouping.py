"""Map a model's named parameters to GradVac parameter groups.

Granularities (the paper compares all four and favours the finer ones):

- ``model``:   one group for every parameter.
- ``enc_dec``: ``encoder`` and ``decoder`` stacks; parameters outside both (embeddings, output
  layer, ...) are grouped by their owning module, e.g. ``embedding.word_embeddings``.
- ``layer``:   one group per Transformer layer, found by the first ``<stack>.<container>.<index>``
  component in the name, where the container is one of ``layers``, ``layer``, ``h``, ``blocks``,
  ``block`` (megatron-core ``decoder.layers.3``, torch ``encoder.layers.0``, HF ``encoder.layer.5``,
  GPT-2 ``transformer.h.2``). A parameter outside any layer is grouped by its owning module
  (``decoder.final_layernorm``, ``output_layer``, ``embedding.word_embeddings``).
- ``matrix``:  one group per parameter tensor.

Group names depend only on parameter names, so every tensor-parallel rank (which holds shards of
the same named parameters) builds the same groups in the same order: order of first appearance.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum

import torch

_LAYER_PATTERN = re.compile(r"^(.*?(?:^|\.)(?:layers|layer|h|blocks|block)\.\d+)\.")
_STACKS = ("encoder", "decoder")


class Granularity(str, Enum):
    """How finely parameters are grouped for the similarity and the correction."""

    MODEL = "model"
    ENC_DEC = "enc_dec"
    LAYER = "layer"
    MATRIX = "matrix"


def _owner(name: str) -> str:
    """The module that owns a parameter: its name without the last component."""
    return name.rsplit(".", 1)[0] if "." in name else name


def _stack_of(name: str) -> str | None:
    for part in name.split("."):
        if part in _STACKS:
            return part
    return None


def group_name_of(name: str, granularity: Granularity | str) -> str:
    """The group a parameter called ``name`` belongs to."""
    granularity = Granularity(granularity)
    if granularity is Granularity.MODEL:
        return "model"
    if granularity is Granularity.MATRIX:
        return name
    if granularity is Granularity.ENC_DEC:
        return _stack_of(name) or _owner(name)
    match = _LAYER_PATTERN.match(name)
    return match.group(1) if match else _owner(name)


@dataclass(frozen=True)
class ParameterGrouping:
    """The groups of a model.

    group_names: L names, in order of first appearance among the parameters
    group_of:    parameter name -> group index in [0, L)
    numels:      parameter name -> number of elements of the (local) parameter
    """

    granularity: Granularity
    group_names: tuple[str, ...]
    group_of: dict[str, int]
    numels: dict[str, int]

    @property
    def num_groups(self) -> int:
        return len(self.group_names)

    def members(self, group: int) -> list[str]:
        """Parameter names in one group, in model order."""
        return [name for name, l in self.group_of.items() if l == group]

    def describe(self) -> str:
        """A printable table: group index, name, parameter tensors, elements."""
        lines = [f"granularity: {self.granularity.value}, {self.num_groups} groups"]
        width = max(len(n) for n in self.group_names)
        for l, group in enumerate(self.group_names):
            members = self.members(l)
            numel = sum(self.numels[m] for m in members)
            lines.append(f"{l:4d}  {group:<{width}}  {len(members):4d} tensors  {numel:>12,d} elements")
        return "\n".join(lines)


def group_parameters(
    named_parameters: Iterable[tuple[str, torch.Tensor]],
    granularity: Granularity | str,
    numel_of: Callable[[torch.Tensor], int] = torch.Tensor.numel,
) -> ParameterGrouping:
    """Build the grouping of the trainable parameters among ``named_parameters``; ``numel_of``
    counts a parameter's (rank-local) elements (the engine passes ZeRO-3's full sizes)."""
    granularity = Granularity(granularity)
    index: dict[str, int] = {}
    group_of: dict[str, int] = {}
    numels: dict[str, int] = {}
    for name, param in named_parameters:
        if not param.requires_grad:
            continue
        group = group_name_of(name, granularity)
        group_of[name] = index.setdefault(group, len(index))
        numels[name] = int(numel_of(param))
    if not index:
        raise ValueError("the model has no trainable parameters to group")
    return ParameterGrouping(granularity, tuple(index), group_of, numels)
