"""The planner's inputs, validated with the package's shared checks (:mod:`gradvac_ds.config`):
every error names the field and its allowed values (:class:`~gradvac_ds.config.FieldError`, a
:class:`~gradvac_ds.errors.ConfigError`, like :class:`~gradvac_ds.planning.errors.PlanError`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gradvac_ds.config import BUFFER_DTYPES, FieldError, check_choice, check_positive, divisors
from gradvac_ds.planning.errors import PlanError

ZERO_STAGES = (0, 1, 2, 3)
PRECISIONS = ("fp32", "bf16", "fp16")
OPTIMIZERS = ("adam", "adamw", "sgd")
OPTIMIZER_IMPLS = ("single_tensor", "foreach", "fused")
"""torch.optim's Adam paths: single-tensor (its default for CPU tensors), foreach (CUDA), fused."""
DEEPSPEED_REDUCE_BUCKET_SIZE = 500_000_000
"""DeepSpeed's default ``zero_optimization.reduce_bucket_size`` (elements)."""
DEEPSPEED_PERSISTENCE_THRESHOLD = 100_000
"""DeepSpeed's default ``zero_optimization.stage3_param_persistence_threshold`` (elements)."""


def check_positive_int(field: str, value: Any) -> None:
    """``value`` is an int (not a bool) >= 1."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise FieldError(field, value, "must be a positive integer")
    check_positive(field, value)


def _check_divides(tp: int, field: str, value: int) -> None:
    """Tensor parallelism splits heads and hidden columns evenly: T must divide each."""
    if value % tp:
        raise FieldError("tp", tp, f"must divide {field} = {value}; allowed tp values are {divisors(value)}")


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
            check_positive_int(name, getattr(self, name))


@dataclass(frozen=True)
class PlanInputs:
    """Validated planner inputs.

    params: P, all parameters of the model;  tasks: K;  dp: N;  tp: T;  groups: L;
    micro_batches_per_task: M (the step runs K·M micro-batches, task-homogeneous);
    layout: per optimizer parameter group, the numels of its tensors on one TP rank (a model's
      :attr:`~gradvac_ds.planning.model_layout.ModelLayout.optimizer_groups`, or
      :func:`layout_of`), for ZeRO's exact padding; default one group of one tensor of ceil(P/T)
      (then the terms that follow the largest tensor are upper bounds);
    reduce_bucket_size: DeepSpeed's ``zero_optimization.reduce_bucket_size`` in elements;
    overlap_comm: ``zero_optimization.overlap_comm`` (ZeRO-1/2 then keep two reduce buckets);
    param_persistence_threshold: ``stage3_param_persistence_threshold`` in elements;
    optimizer_impl: which torch.optim Adam path steps ("single_tensor" is torch's choice for CPU
      tensors, "foreach" for CUDA ones; "fused" when asked for).
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
    layout: tuple[tuple[int, ...], ...] | None = None
    reduce_bucket_size: int = DEEPSPEED_REDUCE_BUCKET_SIZE
    overlap_comm: bool = False
    param_persistence_threshold: int = DEEPSPEED_PERSISTENCE_THRESHOLD
    optimizer_impl: str = "foreach"

    def __post_init__(self) -> None:
        for name in ("params", "tasks", "dp", "tp", "groups", "micro_batches_per_task", "reduce_bucket_size"):
            check_positive_int(name, getattr(self, name))
        if (
            isinstance(self.param_persistence_threshold, bool)
            or not isinstance(self.param_persistence_threshold, int)
            or self.param_persistence_threshold < 0
        ):
            raise FieldError(
                "param_persistence_threshold", self.param_persistence_threshold, "must be an integer >= 0"
            )
        check_choice("optimizer_impl", self.optimizer_impl, OPTIMIZER_IMPLS)
        check_choice("overlap_comm", self.overlap_comm, (False, True))
        check_choice("zero_stage", self.zero_stage, ZERO_STAGES)
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("buffer_dtype", self.buffer_dtype, list(BUFFER_DTYPES))
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.activations is not None:
            _check_divides(self.tp, "num_attention_heads", self.activations.num_attention_heads)
            _check_divides(self.tp, "hidden_size", self.activations.hidden_size)
        if self.layout is not None:
            layout = tuple(tuple(group) for group in self.layout)
            if not layout or not all(layout):
                raise PlanError("layout must hold at least one non-empty group of parameter numels")
            for group in layout:
                for numel in group:
                    check_positive_int("layout numel", numel)
            object.__setattr__(self, "layout", layout)

    @property
    def params_per_tp_rank(self) -> int:
        """Ψ: the layout's total, else ceil(P/T) (replicated tensors counted as if split)."""
        if self.layout is not None:
            return sum(sum(group) for group in self.layout)
        return -(-self.params // self.tp)

    @property
    def largest_tensor(self) -> int:
        """The largest tensor of the layout (of one TP rank), in elements."""
        return max(max(group) for group in self.param_groups)

    @property
    def param_groups(self) -> tuple[tuple[int, ...], ...]:
        """The layout, or one optimizer group holding one tensor of Ψ elements."""
        return self.layout if self.layout is not None else ((self.params_per_tp_rank,),)
