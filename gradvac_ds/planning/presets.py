"""Sizes of a model preset (``models/<name>.yaml``), read through :mod:`gradvac_ds.training.modeling`.

The presets state architecture, not a parameter count: P and Ψ (parameters on one tensor-parallel
rank, replicated LayerNorms and position embeddings included) come from the modeling package's
analytic count of exactly the model it builds, for a vocabulary size and a model kind.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from gradvac_ds.planning.errors import PlanError

MODEL_KINDS = ("encdec", "decoder")


@dataclass(frozen=True)
class ModelSizes:
    """What the planner takes from a preset.

    params: P of the whole model; params_per_tp_rank: Ψ on one of ``tp`` ranks (exact);
    num_layers: encoder + decoder layers (``encdec``) or decoder layers (``decoder``).
    """

    name: str
    kind: str
    params: int
    params_per_tp_rank: int
    hidden_size: int
    ffn_hidden_size: int
    num_attention_heads: int
    num_layers: int
    max_sequence_length: int


def model_sizes(spec: str, vocab_size: int, kind: str, tp: int) -> ModelSizes:
    """Sizes of preset ``spec`` (a name in ``models/`` or a YAML path) with ``vocab_size`` tokens.

    Errors of the model configuration (unknown preset, T not dividing heads or FFN, ...) are raised
    as :class:`PlanError` with the modeling package's message, which names the field.
    """
    if kind not in MODEL_KINDS:
        raise PlanError(f"kind = {kind!r} is not allowed; choose one of {list(MODEL_KINDS)}")
    with warnings.catch_warnings():  # megatron-core warns on import about optional Apex/TE kernels
        warnings.simplefilter("ignore")
        from gradvac_ds.training.modeling import ModelConfigError, count_parameters, resolve_config
    try:
        cfg = resolve_config(spec)
        params = count_parameters(cfg, vocab_size, kind)
        per_rank = count_parameters(cfg, vocab_size, kind, tp)
    except ModelConfigError as error:
        raise PlanError(f"model = {spec!r}: {error}") from error
    return ModelSizes(
        name=cfg.name,
        kind=kind,
        params=params,
        params_per_tp_rank=per_rank,
        hidden_size=cfg.hidden_size,
        ffn_hidden_size=cfg.ffn_hidden_size,
        num_attention_heads=cfg.num_attention_heads,
        num_layers=sum(cfg.num_layers(kind)),
        max_sequence_length=cfg.max_sequence_length,
    )
