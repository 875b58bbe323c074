"""Per-rank memory, communication and compute of one optimizer step: gradvac_ds vs naive GradVac.

Notation: P parameters, T tensor-parallel ranks, N data-parallel ranks, K tasks, L GradVac groups,
M micro-batches per task, Ψ = parameters on one TP rank (the total of the layout, which a model's
meta-device build gives exactly, else ceil(P/T)).

Model states follow the ZeRO paper (Rajbhandari et al., 2020), bytes per parameter:
weights 2 / gradients 2 / optimizer 4 (fp32 master) + 8 (Adam m, v) in mixed precision (bf16, fp16);
4 / 4 / 8 in fp32; SGD-with-momentum keeps 4 instead of Adam's 8. Stage 1 partitions the optimizer
states over N, stage 2 also the gradients, stage 3 also the weights.

The partitioned element count ``n_local`` is DeepSpeed 0.19's, padding included:
- stage 1/2: every optimizer param group's flat buffer is padded to a multiple of 2·N
  (``nccl_start_alignment_factor`` = 2 times the DP size), so a rank holds ceil(n_g / 2N)·2 per group;
- stage 3: every tensor is padded to a multiple of N, so a rank holds ceil(n_p / N) per tensor;
- stage 0: nothing is partitioned, n_local = Ψ.

GradVac task buffers hold the K reduced task gradients a rank owns: K · n_local · bytes(buffer dtype).

A rank's memory is its peak: the model states, DeepSpeed 0.19's own buffers and the task buffers
for the whole run, plus the larger of two transients that never coexist, the backward's (with the
activations) and the optimizer step's (:class:`Memory`; each term's function names the DeepSpeed
or torch source it follows). Not modelled: allocator caching and fragmentation, DeepSpeed's CPU
Adam and offload buffers, communication-library scratch memory.
The engine sums the Gram with ONE all-reduce over all N·T data- and tensor-parallel ranks of a
float64 tensor of L·K² + S elements (S = ``gradvac_ds.gram.SIGNATURE_SLOTS``: the step's
task-sequence signature rides along), payload 8·(L·K² + S) bytes. (The cross-rank agreement check,
every ``consistency_check_interval`` steps, adds one all-reduce of four float64s; not counted.)
Ring collectives put 2(R-1)/R × payload (all-reduce) or (R-1)/R × payload (reduce-scatter,
all-gather) on each rank's wire for a group of R ranks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from fractions import Fraction
from typing import Any

from gradvac_ds.gram import SIGNATURE_SLOTS
from gradvac_ds.planning.errors import PlanError
from gradvac_ds.planning.inputs import PlanInputs
from gradvac_ds.planning.model_layout import ModelSpec, model_layout
from gradvac_ds.planning.quantities import parse_count

GRAM_ELEMENT_BYTES = 8
"""The Gram tensor is float64."""
ZERO12_ALIGNMENT_FACTOR = 2
"""DeepSpeed's ``nccl_start_alignment_factor``: ZeRO-1/2 flat groups are padded to 2·N elements."""
_DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
_MASTER_BYTES = {"fp32": 0, "bf16": 4, "fp16": 4}
_OPTIMIZER_STATE_BYTES = {"adam": 8, "adamw": 8, "sgd": 4}


@dataclass(frozen=True)
class Memory:
    """Bytes held by one rank at its peak; ``activations`` is None when the estimate's inputs are
    unknown (then counted as 0 in the totals).

    weights, gradients, optimizer_states: the model states of the ZeRO paper (module docstring);
    deepspeed_buffers: what DeepSpeed keeps besides them for the whole run
      (:func:`deepspeed_buffer_bytes`);
    task_buffers: GradVac's K task-gradient rows;
    backward_transient: held on top of the activations while a backward runs
      (:func:`backward_transient_bytes`);
    optimizer_step_transient: held while the optimizer steps, after the backward has freed the
      activations (:func:`optimizer_step_transient_bytes`);
    total = weights + gradients + optimizer_states + deepspeed_buffers + task_buffers
      + max(activations + backward_transient, optimizer_step_transient);
    plain_total: the same run's total without GradVac (no task buffers; DeepSpeed accumulates all
      K·M micro-batches of the step itself).
    """

    weights: int
    gradients: int
    optimizer_states: int
    deepspeed_buffers: int
    task_buffers: int
    activations: int | None
    backward_transient: int
    optimizer_step_transient: int
    total: int
    plain_total: int


@dataclass(frozen=True)
class Communication:
    """Bytes of one optimizer step, per rank.

    grad_reductions_per_step: gradient reduce-scatters (ZeRO ≥ 1) or all-reduces (stage 0, DDP);
    plain_grad_reductions_per_step: the same without GradVac (DeepSpeed stage 0/1 and DDP reduce
    once at the accumulation boundary, stage 2/3 after every micro-batch);
    *_payload_bytes: size of the tensors handed to the collectives; *_wire_bytes: ring traffic;
    gram_allreduce_ranks: R = N·T ranks of the one Gram all-reduce (0: there is none);
    extra_*: what GradVac adds to the plain run (the Gram all-reduce and extra gradient reductions).
    """

    grad_reductions_per_step: int
    plain_grad_reductions_per_step: int
    grad_reduction_payload_bytes: int
    grad_reduction_wire_bytes: int
    param_allgather_wire_bytes: int
    gram_allreduce_ranks: int
    gram_allreduce_payload_bytes: int
    gram_allreduce_wire_bytes: int
    extra_payload_bytes: int
    extra_wire_bytes: int


@dataclass(frozen=True)
class Compute:
    """FLOPs of one step on one rank: Gram 2·K²·n (K² dot products of length n), combine 2·K·n."""

    gram_flops: int
    combine_flops: int


@dataclass(frozen=True)
class Approach:
    """One way of running GradVac: its memory, communication and compute."""

    memory: Memory
    communication: Communication
    compute: Compute


@dataclass(frozen=True)
class Plan:
    """The planner's answer. ``local_grad_numel`` is n_local (see the module docstring)."""

    inputs: PlanInputs
    params_per_tp_rank: int
    local_grad_numel: int
    gradvac_ds: Approach
    naive_ddp: Approach

    def to_dict(self) -> dict[str, Any]:
        """Every figure as plain JSON-ready values (bytes, FLOPs, counts)."""
        return asdict(self)


def local_grad_numel(inputs: PlanInputs) -> int:
    """n_local: elements of the gradient partition one rank owns, with DeepSpeed's padding."""
    return sum(local_group_numels(inputs, inputs.zero_stage))


def local_group_numels(inputs: PlanInputs, stage: int) -> tuple[int, ...]:
    """Per optimizer param group, the elements of it one rank owns at ZeRO ``stage`` (their sum is
    n_local; padding as in the module docstring)."""
    n, groups = inputs.dp, inputs.param_groups
    if stage == 0:
        return tuple(sum(group) for group in groups)
    if stage == 3:
        return tuple(sum(-(-numel // n) for numel in group) for group in groups)
    unit = ZERO12_ALIGNMENT_FACTOR * n
    return tuple(-(-sum(group) // unit) * ZERO12_ALIGNMENT_FACTOR for group in groups)


def gram_allreduce_bytes(groups: int, tasks: int) -> int:
    """Payload of the engine's one Gram all-reduce: float64 [L·K·K + SIGNATURE_SLOTS]."""
    return (groups * tasks * tasks + SIGNATURE_SLOTS) * GRAM_ELEMENT_BYTES


def activation_bytes(inputs: PlanInputs) -> int | None:
    """Activations of one micro-batch (micro-batches of a step run one after another).

    Korthikanti et al. 2022 (no recomputation, no sequence parallelism), per layer in 16-bit:
    s·b·h·(10 + 24/T) + 5·a·s·(s·b)/T bytes, times 2 for fp32 activations. Applied to every layer
    alike, it slightly underestimates decoder layers, whose cross-attention adds to it.
    """
    act = inputs.activations
    if act is None:
        return None
    tokens, t = act.micro_batch_tokens, inputs.tp
    per_layer = tokens * act.hidden_size * (10 + Fraction(24, t)) + Fraction(
        5 * act.num_attention_heads * act.seq_length * tokens, t
    )
    scale = 2 if inputs.precision == "fp32" else 1
    return round(per_layer * act.num_layers * scale)


def _ring(ranks: int, payload: int, all_reduce: bool) -> int:
    """Per-rank ring traffic: 2(R-1)/R × payload for all-reduce, (R-1)/R for the others."""
    return round(Fraction((2 if all_reduce else 1) * (ranks - 1), ranks) * payload)


def _bucket_elements(inputs: PlanInputs) -> int:
    """R' = min(R, Ψ): the elements of a reduce bucket that gradients ever fill."""
    return min(inputs.reduce_bucket_size, inputs.params_per_tp_rank)


def deepspeed_buffer_bytes(inputs: PlanInputs, stage: int, n_local: int) -> int:
    """DeepSpeed 0.19's buffers besides the model states, held from ``initialize`` on (b = bytes of
    the precision, R = ``reduce_bucket_size``, contiguous gradients as DeepSpeed's default):

    - stage 1-3, fp32: 4·n_local, the fp32 partition the optimizer steps on is a copy even when the
      model is fp32 (stage_1_and_2.py ``single_partition_of_fp32_groups``: ``.clone().to(...)``;
      stage3.py ``_create_fp32_partitions``, whose no-copy branch compares a ``torch.device`` with
      the device's name, which never holds); in bf16/fp16 that copy is the master counted in
      ``optimizer_states``;
    - stage 3 also: R'·b, the reduce bucket allocated at construction (stage3.py ``ipg_buckets``:
      ``torch.empty(reduce_bucket_size)``; R' = min(R, Ψ), as no more than Ψ gradient elements are
      ever written to it), and b·Σ numel of the tensors of at most
      ``param_persistence_threshold`` elements, which every rank keeps whole besides its partition
      (``persistent_parameters``);
    - stage 0: nothing.
    """
    b = _DTYPE_BYTES[inputs.precision]
    master = 4 * n_local if stage and inputs.precision == "fp32" else 0
    if stage == 3:
        threshold = inputs.param_persistence_threshold
        persistent = sum(numel for group in inputs.param_groups for numel in group if numel <= threshold)
        return master + b * (_bucket_elements(inputs) + persistent)
    return master


def backward_transient_bytes(inputs: PlanInputs, stage: int, n_local: int, accumulated: int) -> int:
    """Held during a backward on top of the activations, with ``accumulated`` micro-batches summed
    by DeepSpeed before its step (b = bytes of the precision, R = ``reduce_bucket_size``, t = the
    largest tensor):

    - stage 1: B·R'·b, the reduce buckets filled at the accumulation boundary (``ipg_buckets``,
      B = 2 with ``overlap_comm``, which double-buffers them, else 1; R' = min(R, Ψ));
    - stage 2: B·R'·b, the buckets (allocated in the gradient hook, freed at the epilogue), plus
      t·b, the largest tensor's full gradient, which autograd materialises before the hook
      reduces it (a tied embedding's accumulates over the whole backward), plus, when
      accumulated > 1, n_local·b: the epilogue releases ``grads_in_partition`` and the next
      backward allocates a new one while ``all_grad_tensors`` still holds the sum so far;
    - stage 3: 2·t·b, the largest tensor gathered whole and its full gradient (the bucket is a
      persistent buffer here, and accumulation adds into ``grad_partitions_flat_buffer``);
    - stage 0: nothing (the full gradients are the ``gradients`` term).
    """
    b, largest = _DTYPE_BYTES[inputs.precision], inputs.largest_tensor
    bucket = (2 if inputs.overlap_comm else 1) * _bucket_elements(inputs)
    if stage == 1:
        return b * bucket
    if stage == 2:
        return b * (bucket + largest + (n_local if accumulated > 1 else 0))
    if stage == 3:
        return 2 * b * largest
    return 0


def optimizer_step_transient_bytes(inputs: PlanInputs, stage: int, preflattened: bool) -> int:
    """Held while the optimizer steps its largest param group g, of n_g local elements (at stage
    1-3 each group is one flat tensor; at stage 0 the group's tensors, the largest of t elements):

    - the group's fp32 gradient, flattened from the partition's views (b = bytes of the
      precision). ZeRO-1/2 (stage_1_and_2.py ``step``) free the partition's b-byte gradients
      before the optimizer runs, so the copy adds (4 - b)·n_g (nothing in fp32); with
      ``preflattened`` (GradVac writes the combined fp32 gradient of every group before the step,
      which ``_get_preflattened_grad_partition`` uses as it is, after DeepSpeed's own partition
      was released at capture) it adds nothing when the task buffers are fp32 (the combination
      lands in a task row) and (4 - b)·n_local with bf16 task buffers (a new fp32 tensor). ZeRO-3 (stage3.py
      ``_prepare_fp32_grad_for_sub_group``) keeps ``grad_partitions_flat_buffer``, so its copy
      adds 4·n_g. Stage 0 steps the gradients in place;
    - Adam's temporaries, in the optimizer states' fp32 (torch/optim/adam.py): single-tensor path
      2·4·(n_g, or t at stage 0), since ``exp_avg_sq.sqrt() / bias_correction2_sqrt`` makes two
      tensors of the parameter's size before ``add_(eps)``; foreach path 4·n_g
      (``_foreach_sqrt`` of the whole group, then in place); fused none; SGD none.
    """
    b = _DTYPE_BYTES[inputs.precision]
    numels = local_group_numels(inputs, stage)
    group = max(numels)
    if stage == 3:
        flat = 4 * group
    elif stage in (1, 2):
        if preflattened:
            flat = 0 if inputs.buffer_dtype == "fp32" else (4 - b) * sum(numels)
        else:
            flat = (4 - b) * group
    else:
        flat = 0
    if inputs.optimizer == "sgd" or inputs.optimizer_impl == "fused":
        return flat
    if inputs.optimizer_impl == "foreach":
        return flat + 4 * group
    return flat + 2 * 4 * (inputs.largest_tensor if stage == 0 else group)


def _memory(
    inputs: PlanInputs, stage: int, n_local: int, activations: int | None, *, deepspeed: bool
) -> Memory:
    """The memory of GradVac at ZeRO ``stage``: on DeepSpeed (``deepspeed``: gradvac_ds, which
    accumulates M micro-batches per task in DeepSpeed and hands it a pre-flattened partition), or
    the naive way (DDP: stage 0, no DeepSpeed buffers or hooks, the optimizer's temporaries only)."""
    psi, prec = inputs.params_per_tp_rank, inputs.precision
    weights = (n_local if stage == 3 else psi) * _DTYPE_BYTES[prec]
    gradients = (n_local if stage >= 2 else psi) * _DTYPE_BYTES[prec]
    state_bytes = _MASTER_BYTES[prec] + _OPTIMIZER_STATE_BYTES[inputs.optimizer]
    optimizer = (n_local if stage >= 1 else psi) * state_bytes
    ds_buffers = deepspeed_buffer_bytes(inputs, stage, n_local) if deepspeed else 0
    buffers = inputs.tasks * n_local * _DTYPE_BYTES[inputs.buffer_dtype]
    states = weights + gradients + optimizer + ds_buffers
    micro_batches = inputs.micro_batches_per_task

    def transients(accumulated: int, preflattened: bool) -> tuple[int, int]:
        backward = backward_transient_bytes(inputs, stage, n_local, accumulated) if deepspeed else 0
        return backward, optimizer_step_transient_bytes(inputs, stage, preflattened)

    backward, step = transients(micro_batches, deepspeed)
    total = states + buffers + max((activations or 0) + backward, step)
    plain_backward, plain_step = transients(inputs.tasks * micro_batches, False)
    plain = states + max((activations or 0) + plain_backward, plain_step)
    return Memory(
        weights, gradients, optimizer, ds_buffers, buffers, activations, backward, step, total, plain
    )


def _gradvac_ds(inputs: PlanInputs, n_local: int, activations: int | None) -> Approach:
    k, n, t, stage = inputs.tasks, inputs.dp, inputs.tp, inputs.zero_stage
    micro_batches = k * inputs.micro_batches_per_task
    plain = 1 if stage <= 1 else micro_batches
    reductions = k if stage <= 1 else micro_batches
    grad_payload = inputs.params_per_tp_rank * _DTYPE_BYTES[inputs.precision]
    per_reduction_wire = _ring(n, grad_payload, all_reduce=stage == 0)
    weight_bytes = inputs.params_per_tp_rank * _DTYPE_BYTES[inputs.precision]
    gathers = {0: 0, 1: 1, 2: 1, 3: 2 * micro_batches}[stage]
    gram = gram_allreduce_bytes(inputs.groups, k)
    gram_wire = _ring(n * t, gram, all_reduce=True)
    extra = reductions - plain
    comm = Communication(
        grad_reductions_per_step=reductions,
        plain_grad_reductions_per_step=plain,
        grad_reduction_payload_bytes=reductions * grad_payload,
        grad_reduction_wire_bytes=reductions * per_reduction_wire,
        param_allgather_wire_bytes=gathers * _ring(n, weight_bytes, all_reduce=False),
        gram_allreduce_ranks=n * t,
        gram_allreduce_payload_bytes=gram,
        gram_allreduce_wire_bytes=gram_wire,
        extra_payload_bytes=gram + extra * grad_payload,
        extra_wire_bytes=gram_wire + extra * per_reduction_wire,
    )
    compute = Compute(gram_flops=2 * k * k * n_local, combine_flops=2 * k * n_local)
    return Approach(_memory(inputs, stage, n_local, activations, deepspeed=True), comm, compute)


def _naive_ddp(inputs: PlanInputs, activations: int | None) -> Approach:
    """DDP all-reducing every task's full gradient, then the dense loop on every rank (LibMTL style).

    No ZeRO: model states as stage 0; K full task gradients of Ψ elements per rank; K all-reduces of
    Ψ gradients instead of DDP's one. Tensor-parallel reductions of its dot products are not counted.
    """
    k, n, psi = inputs.tasks, inputs.dp, inputs.params_per_tp_rank
    grad_payload = psi * _DTYPE_BYTES[inputs.precision]
    per_reduction_wire = _ring(n, grad_payload, all_reduce=True)
    comm = Communication(
        grad_reductions_per_step=k,
        plain_grad_reductions_per_step=1,
        grad_reduction_payload_bytes=k * grad_payload,
        grad_reduction_wire_bytes=k * per_reduction_wire,
        param_allgather_wire_bytes=0,
        gram_allreduce_ranks=0,
        gram_allreduce_payload_bytes=0,
        gram_allreduce_wire_bytes=0,
        extra_payload_bytes=(k - 1) * grad_payload,
        extra_wire_bytes=(k - 1) * per_reduction_wire,
    )
    compute = Compute(gram_flops=2 * k * k * psi, combine_flops=2 * k * psi)
    return Approach(_memory(inputs, 0, psi, activations, deepspeed=False), comm, compute)


def plan_inputs(inputs: PlanInputs) -> Plan:
    """The plan for validated inputs."""
    n_local = local_grad_numel(inputs)
    activations = activation_bytes(inputs)
    return Plan(
        inputs=inputs,
        params_per_tp_rank=inputs.params_per_tp_rank,
        local_grad_numel=n_local,
        gradvac_ds=_gradvac_ds(inputs, n_local, activations),
        naive_ddp=_naive_ddp(inputs, activations),
    )


_FROM_MODEL = ("params", "tasks", "tp", "groups", "activations", "layout")
"""PlanInputs fields :func:`plan_model` takes from the model (or its own arguments)."""


def _check_options(options: dict[str, Any], taken: tuple[str, ...]) -> None:
    allowed = [f.name for f in fields(PlanInputs) if f.name not in taken]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise PlanError(f"unknown plan option(s) {unknown}; allowed options are {allowed}")


def plan(params: int | str, tasks: int, **options: Any) -> Plan:
    """The plan for P = ``params`` (an int or a count like ``"1.3B"``) and K = ``tasks``.

    ``options`` are the other fields of :class:`PlanInputs` (dp, tp, zero_stage, precision,
    buffer_dtype, optimizer, groups, micro_batches_per_task, activations, layout). For a model of
    :mod:`gradvac_ds.training.modeling`, :func:`plan_model` takes P, Ψ, L and the layout from it.
    """
    _check_options(options, ("params", "tasks"))
    return plan_inputs(PlanInputs(params=parse_count(params, "params"), tasks=tasks, **options))


def plan_model(
    spec: ModelSpec,
    tasks: int,
    *,
    vocab_size: int,
    kind: str = "encdec",
    tp: int = 1,
    granularity: str = "layer",
    micro_batch_tokens: int | None = None,
    seq_length: int | None = None,
    **options: Any,
) -> Plan:
    """The plan for K = ``tasks`` on the model ``spec`` (preset, YAML path or config mapping).

    P, Ψ, the optimizer-group layout and L at ``granularity`` come from the model built on the
    meta device at T = ``tp`` (:func:`~gradvac_ds.planning.model_layout.model_layout`); with
    ``micro_batch_tokens`` the activations are estimated too (``seq_length`` defaults to the
    model's maximum). ``options`` are the run's other :class:`PlanInputs` fields.
    """
    _check_options(options, _FROM_MODEL)
    layout = model_layout(spec, vocab_size, kind, tp)
    inputs = layout.plan_inputs(
        tasks, granularity, micro_batch_tokens=micro_batch_tokens, seq_length=seq_length, **options
    )
    return plan_inputs(inputs)
