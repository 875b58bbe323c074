"""Render a :class:`~gradvac_ds.planning.costs.Plan` as a human-readable table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gradvac_ds.planning.costs import Plan
from gradvac_ds.planning.quantities import format_bytes, format_flops

Formatter = Callable[[int], str]


def _count(value: int) -> str:
    return f"{value:,}"


SECTIONS: tuple[tuple[str, str, tuple[tuple[str, str, Formatter], ...]], ...] = (
    (
        "memory per rank",
        "memory",
        (
            ("weights", "weights", format_bytes),
            ("gradients", "gradients", format_bytes),
            ("optimizer states", "optimizer_states", format_bytes),
            ("DeepSpeed buffers", "deepspeed_buffers", format_bytes),
            ("GradVac task buffers", "task_buffers", format_bytes),
            ("activations (estimate)", "activations", format_bytes),
            ("backward transient", "backward_transient", format_bytes),
            ("optimizer step transient", "optimizer_step_transient", format_bytes),
            ("total (peak)", "total", format_bytes),
            ("  same run without GradVac, peak", "plain_total", format_bytes),
        ),
    ),
    (
        "communication per step, per rank",
        "communication",
        (
            ("gradient reductions", "grad_reductions_per_step", _count),
            ("  same run without GradVac", "plain_grad_reductions_per_step", _count),
            ("gradient reduction payload", "grad_reduction_payload_bytes", format_bytes),
            ("gradient reduction wire (ring)", "grad_reduction_wire_bytes", format_bytes),
            ("ZeRO parameter all-gather wire", "param_allgather_wire_bytes", format_bytes),
            ("Gram all-reduce ranks (DP x TP)", "gram_allreduce_ranks", _count),
            ("Gram all-reduce payload", "gram_allreduce_payload_bytes", format_bytes),
            ("Gram all-reduce wire (ring)", "gram_allreduce_wire_bytes", format_bytes),
            ("added by GradVac, payload", "extra_payload_bytes", format_bytes),
            ("added by GradVac, wire", "extra_wire_bytes", format_bytes),
        ),
    ),
    (
        "compute per step, per rank",
        "compute",
        (
            ("Gram (K² dot products)", "gram_flops", format_flops),
            ("combine (K axpys)", "combine_flops", format_flops),
        ),
    ),
)
"""(section title, key in an approach's dict, rows of (label, key, formatter)), in print order."""

APPROACHES = (("gradvac_ds", "gradvac_ds"), ("naive_ddp", "naive DDP + dense GradVac"))
_LABEL_WIDTH = 36
_CELL_WIDTH = 28


def cell(value: Any, formatter: Formatter) -> str:
    """One table cell; ``n/a`` where a figure is unknown (activations without their inputs)."""
    return "n/a" if value is None else formatter(value)


def _header(plan: Plan) -> list[str]:
    i = plan.inputs
    lines = [
        f"P = {i.params:,} parameters, K = {i.tasks} tasks, N = {i.dp} data-parallel, "
        f"T = {i.tp} tensor-parallel, ZeRO stage {i.zero_stage}",
        f"precision {i.precision}, task buffers {i.buffer_dtype}, optimizer {i.optimizer} "
        f"({i.optimizer_impl}), L = {i.groups} groups, M = {i.micro_batches_per_task} micro-batches per task",
        f"reduce bucket {i.reduce_bucket_size:,} elements{' x 2 (overlap_comm)' if i.overlap_comm else ''}"
        + (f", ZeRO-3 persistence threshold {i.param_persistence_threshold:,}" if i.zero_stage == 3 else ""),
        f"per TP rank Ψ = {plan.params_per_tp_rank:,} parameters; "
        f"gradient elements owned per rank n_local = {plan.local_grad_numel:,}",
    ]
    if i.activations is None:
        lines.append("activations: n/a (needs hidden size, heads, layers; give a preset or the values)")
    return lines


def render_table(plan: Plan) -> str:
    """The plan as aligned text: one column per approach, one row per figure."""
    data = plan.to_dict()
    lines = _header(plan)
    titles = "".join(f"{title:>{_CELL_WIDTH}}" for _, title in APPROACHES)
    for section_title, section, rows in SECTIONS:
        lines.append("")
        lines.append(f"{section_title:<{_LABEL_WIDTH}}{titles}")
        for label, key, formatter in rows:
            values = [data[approach][section][key] for approach, _ in APPROACHES]
            cells = "".join(f"{cell(value, formatter):>{_CELL_WIDTH}}" for value in values)
            lines.append(f"  {label:<{_LABEL_WIDTH - 2}}{cells}")
    return "\n".join(lines)
