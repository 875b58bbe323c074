"""The planner's inputs, validated: every error names the field and its allowed values."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gradvac_ds.planning.errors import PlanError

ZERO_STAGES = (0, 1, 2, 3)
PRECISIONS = ("fp32", "bf16", "fp16")
BUFFER_DTYPES = ("fp32", "bf16")
OPTIMIZERS = ("adam", "adamw", "sgd")
GRANULARITIES = ("model", "enc_dec", "layer", "matrix")
GROUPS_OUTSIDE_LAYERS = {"encdec": 5, "decoder": 3}
"""Groups besides the layers at granularity ``layer`` (gradvac_ds.grouping on gradvac_ds.training.modeling's
models): word and position embeddings, plus encoder and decoder final norms and the tied output
layer's bias (encdec), or the final norm (decoder)."""
GROUPS_ENC_DEC = {"encdec": 5, "decoder": 3}
"""Groups at granularity ``enc_dec``: the stacks plus embeddings (and the output-layer bias)."""


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PlanError(f"{name} = {value!r} must be an integer >= 1")
    return value


def _choice(name: str, value: Any, allowed: Sequence[Any]) -> Any:
    if value not in allowed:
        raise PlanError(f"{name} = {value!r} is not allowed; choose one of {list(allowed)}")
    return value


def _divides(tp: int, name: str, value: int | None) -> None:
    """Tensor parallelism splits heads, hidden and FFN columns evenly: T must divide each."""
    if value is not None and value % tp:
        divisors = [d for d in range(1, value + 1) if value % d == 0]
        raise PlanError(f"tp = {tp} must divide {name} = {value}; allowed tp values are {divisors}")


def num_groups(granularity: str, kind: str = "encdec", num_layers: int | None = None) -> int:
    """L, the number of GradVac parameter groups of gradvac_ds.training.modeling's ``kind`` of model.

    model: 1;  enc_dec: GROUPS_ENC_DEC[kind];  layer: ``num_layers`` + GROUPS_OUTSIDE_LAYERS[kind];
    matrix: one group per parameter tensor, which depends on the model, so L must be given.
    """
    _choice("granularity", granularity, GRANULARITIES)
    _choice("kind", kind, list(GROUPS_ENC_DEC))
    if granularity == "model":
        return 1
    if granularity == "matrix":
        raise PlanError("granularity = 'matrix' has one group per tensor: give the group count L (--groups)")
    if granularity == "enc_dec":
        return GROUPS_ENC_DEC[kind]
    if num_layers is None:
        raise PlanError("granularity = 'layer' needs num_layers (--layers or a preset) or L (--groups)")
    return _positive_int("num_layers", num_layers) + GROUPS_OUTSIDE_LAYERS[kind]


def layout_of(param_groups: Iterable[Any]) -> tuple[tuple[int, ...], ...]:
    """The per-rank numel layout of optimizer parameter groups, for :func:`gradvac_ds.planning.plan`.

    ``param_groups`` are DeepSpeed/torch optimizer groups (dicts with ``"params"``) or plain
    iterables of tensors; frozen tensors are skipped; a ZeRO-3 partitioned tensor counts its full
    ``ds_numel``. Call it on one tensor-parallel rank's model: the numels are that rank's shards.
    """
    layout = []
    for group in param_groups:
        params = group["params"] if isinstance(group, dict) else group
        numels = tuple(int(getattr(p, "ds_numel", p.numel())) for p in params if p.requires_grad)
        if numels:
            layout.append(numels)
    if not layout:
        raise PlanError("layout: the parameter groups hold no trainable parameters")
    return tuple(layout)


@dataclass(frozen=True)
class ActivationInputs:
    """What the activation estimate needs: one micro-batch through ``num_layers`` layers.

    micro_batch_tokens: b·s tokens in one micro-batch;  seq_length: s;  hidden_size: h;
    num_attention_heads: a;  num_layers: all Transformer layers (encoder + decoder).
    """

    micro_batch_tokens: int
    seq_length: int
    hidden_size: int
    num_attention_heads: int
    num_layers: int

    def __post_init__(self) -> None:
        for name in ("micro_batch_tokens", "seq_length", "hidden_size", "num_attention_heads", "num_layers"):
            _positive_int(name, getattr(self, name))


@dataclass(frozen=True)
class PlanInputs:
    """Validated planner inputs.

    params: P, all parameters of the model;  tasks: K;  dp: N;  tp: T;  groups: L;
    micro_batches_per_task: M (the step runs K·M micro-batches, task-homogeneous);
    tp_rank_params: Ψ when known exactly (replicated tensors counted on every TP rank), e.g. from
    the model's analytic count; default ceil(P/T);
    layout: optional per-optimizer-group tuples of parameter numels on one TP rank (replaces the
    default single group of Ψ elements, for exact ZeRO padding);
    ffn_hidden_size: only checked for divisibility by T.
    """

    params: int
    tasks: int
    dp: int = 1
    tp: int = 1
    zero_stage: int = 2
    precision: str = "bf16"
    buffer_dtype: str = "fp32"
    optimizer: str = "adam"
    groups: int = 1
    micro_batches_per_task: int = 1
    activations: ActivationInputs | None = None
    tp_rank_params: int | None = None
    layout: tuple[tuple[int, ...], ...] | None = None
    ffn_hidden_size: int | None = None

    def __post_init__(self) -> None:
        for name in ("params", "tasks", "dp", "tp", "groups", "micro_batches_per_task"):
            _positive_int(name, getattr(self, name))
        if self.tp_rank_params is not None:
            _positive_int("tp_rank_params", self.tp_rank_params)
        _choice("zero_stage", self.zero_stage, ZERO_STAGES)
        _choice("precision", self.precision, PRECISIONS)
        _choice("buffer_dtype", self.buffer_dtype, BUFFER_DTYPES)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.activations is not None:
            _divides(self.tp, "num_attention_heads", self.activations.num_attention_heads)
            _divides(self.tp, "hidden_size", self.activations.hidden_size)
        _divides(self.tp, "ffn_hidden_size", self.ffn_hidden_size)
        if self.layout is not None:
            layout = tuple(tuple(group) for group in self.layout)
            if not layout or not all(layout):
                raise PlanError("layout must hold at least one non-empty group of parameter numels")
            for group in layout:
                for numel in group:
                    _positive_int("layout numel", numel)
            object.__setattr__(self, "layout", layout)

    @property
    def params_per_tp_rank(self) -> int:
        """Ψ: the layout's total, else ``tp_rank_params``, else ceil(P/T) (replicated tensors counted
        as if split)."""
        if self.layout is not None:
            return sum(sum(group) for group in self.layout)
        if self.tp_rank_params is not None:
            return self.tp_rank_params
        return -(-self.params // self.tp)

    @property
    def param_groups(self) -> tuple[tuple[int, ...], ...]:
        """The layout, or one optimizer group holding one tensor of Ψ elements."""
        return self.layout if self.layout is not None else ((self.params_per_tp_rank,),)
