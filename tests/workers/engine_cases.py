"""Engine cases run under torchrun (gloo, DS_ACCELERATOR=cpu); one JSON line per case on rank 0.

Each case trains a tiny layered model with the real DeepSpeed engine wrapped by GradVacEngine and
checks it, on every rank, against a single-process run of the same model and data: full per-task
gradient vectors, the dense reference loop (gradvac_ds.reference), the same clipping and Adam.

    torchrun --nproc_per_node 2 tests/workers/engine_cases.py --out results.jsonl [--cases a,b]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import deepspeed
import torch
from deepspeed import comm as dist
from deepspeed.accelerator import get_accelerator
from deepspeed.utils import safe_get_full_fp32_param
from harness import run_cases
from torch import nn

from gradvac_ds.algorithm import draw_task_orders, step_generator
from gradvac_ds.comm import Comm
from gradvac_ds.config import split_config
from gradvac_ds.engine import GradVacEngine
from gradvac_ds.errors import RankDivergenceError, TaskProtocolError, UnsupportedEngineError
from gradvac_ds.gram import SIGNATURE_SLOTS
from gradvac_ds.grouping import group_parameters
from gradvac_ds.reference import dense_gradvac_groups, dense_weighted_groups
from gradvac_ds.training.build import leave_together
from gradvac_ds.weighting import GramianWeighting, make_weighting

TASKS = ["de-en", "fr-en", "ja-en", "sw-en"]
MICRO_BATCHES_PER_STEP = 8  # = gradient_accumulation_steps
BATCH, DIM = 4, 6
LR, CLIP, BETA = 1e-2, 0.5, 0.5
FULL = dict.fromkeys(TASKS, 2)
# the cases that also run on 4 ranks (the 2-rank launch runs every case)
FOUR_RANK_CASES = (
    "s0_fp32",
    "s1_fp32",
    "s2_fp32",
    "s2_fp32_cg1_oc1_rr",
    "s3_fp32",
    "s1_bf16_fp32acc",
    "sum_s2",
    "comm_s2",
)
GRAMIAN_MODES = ("upgrad", "mgda", "imtl_g", "aligned_mtl")
PARAM_TOLERANCE = {"fp32": 1e-6, "bf16": 2e-2, "fp16": 2e-3}
"""Largest ``param_rel_err`` by precision (the reasoning is in tests/test_engine.py's docstring)."""


def param_tolerance(case: str) -> float:
    """The tolerance of a case's ``param_rel_err``, by the precision its name carries (fp32 else)."""
    return next((PARAM_TOLERANCE[p] for p in ("bf16", "fp16") if p in case), PARAM_TOLERANCE["fp32"])


def judge(rows: list[dict]) -> tuple[dict, bool]:
    """The verdict of benchmarks/gpu_check.sh on a results file's rows: the cases that raised, the
    ones whose ``param_rel_err`` exceeds :func:`param_tolerance`, the worst error as a multiple of
    its tolerance, and whether all is well (some case must have been judged)."""
    failed = [r["case"] for r in rows if "error" in r]
    judged = [r for r in rows if "param_rel_err" in r]
    inexact = [
        [r["case"], r["param_rel_err"], param_tolerance(r["case"])]
        for r in judged
        if not r["param_rel_err"] <= param_tolerance(r["case"])
    ]
    worst = max((r["param_rel_err"] / param_tolerance(r["case"]) for r in judged), default=None)
    summary = {
        "cases": len(rows),
        "errors": failed,
        "inexact": inexact,
        "max_param_rel_err_over_tolerance": worst,
    }
    return summary, bool(judged) and not failed and not inexact


# step -> {task: micro-batches}; sw-en is absent from step 1 (ja-en takes its micro-batches)
SCHEDULE = [FULL, {"de-en": 2, "fr-en": 2, "ja-en": 4}, FULL, FULL]


class Tiny(nn.Module):
    """Two 'layers' with a LayerNorm each and a head: 3 layer groups + head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layers = nn.ModuleList(
            nn.Sequential(nn.Linear(DIM, DIM), nn.LayerNorm(DIM), nn.Tanh()) for _ in range(2)
        )
        self.head = nn.Linear(DIM, 3)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return ((self.head(x).float() - y) ** 2).mean()


def batch(step: int, task: int, rank: int, mb: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(100_000 * step + 1000 * task + 10 * rank + mb)
    x = torch.randn(BATCH, DIM, generator=gen) * (1 + task)
    y = torch.randn(BATCH, 3, generator=gen) + (task - 1.5)
    return x.to(dtype), y


def on_device(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The engine's inputs on the accelerator (the reference keeps the CPU copies)."""
    return tuple(t.to(get_accelerator().current_device_name()) for t in tensors)


def ds_config(stage: int, precision: str, mode: str, extra_zero: dict, seed: int = 0, check: int = 1) -> dict:
    cfg = {
        "train_micro_batch_size_per_gpu": BATCH,
        "gradient_accumulation_steps": None,  # set per case from the schedule
        "gradient_clipping": CLIP,
        "steps_per_print": 10**9,
        "zero_optimization": {"stage": stage, "reduce_bucket_size": 64, **extra_zero},
        "gradvac": {
            "mode": mode,
            "beta": BETA,
            "tasks": TASKS,
            "seed": seed,
            "consistency_check_interval": check,
        },
    }
    if precision.startswith("bf16"):
        cfg["bf16"] = {"enabled": True}
    if precision == "bf16_fp32acc":
        cfg["data_types"] = {"grad_accum_dtype": "fp32"}
    if precision == "fp16":
        cfg["fp16"] = {"enabled": True, "initial_scale_power": 8}
    return cfg


def dtype_of(precision: str) -> torch.dtype:
    return {"fp32": torch.float32, "fp16": torch.float16}.get(precision, torch.bfloat16)


def full_params(engine) -> dict[str, torch.Tensor]:
    """The model's parameters after the step: fp32 masters gathered at ZeRO-3, the module's
    (all-gathered) parameters otherwise (equal to the masters in fp32, rounded in bf16/fp16)."""
    out = {}
    for name, p in engine.module.named_parameters():
        if engine.zero_optimization_stage() == 3:
            out[name] = safe_get_full_fp32_param(p).detach().cpu().clone()
        else:
            out[name] = p.detach().float().cpu().clone()
    return out


def build(
    stage,
    precision,
    mode,
    extra_zero=None,
    seed=0,
    check=1,
    extra=None,
    gas=MICRO_BATCHES_PER_STEP,
    comm=None,
):
    cfg = {**ds_config(stage, precision, mode, extra_zero or {}, seed, check), **(extra or {})}
    cfg["gradient_accumulation_steps"] = gas
    ds_cfg, gv_cfg = split_config(cfg)
    model = Tiny()
    engine, *_ = deepspeed.initialize(
        model=model, optimizer=torch.optim.Adam(model.parameters(), lr=LR), config=ds_cfg
    )
    return GradVacEngine(engine, gv_cfg, comm=comm), cfg


def run_steps(
    gv: GradVacEngine,
    precision: str,
    steps: list[dict[str, int]],
    first_step: int = 0,
    poison=None,
    poison_rank: int | None = None,
    poison_factor: float = float("inf"),
):
    """Run ``steps``; ``poison = (step, task)`` multiplies that task's loss by ``poison_factor`` (on
    ``poison_rank`` only, or on every rank)."""
    rank, dtype = dist.get_rank(), dtype_of(precision)
    outcomes = []
    for offset, tasks in enumerate(steps):
        step = first_step + offset
        for name, micro_batches in tasks.items():
            t = TASKS.index(name)
            with gv.task(name, micro_batches=micro_batches):
                for mb in range(micro_batches):
                    x, y = on_device(*batch(step, t, rank, mb, dtype))
                    loss = gv(x, y)
                    if poison == (step, name) and poison_rank in (None, rank):
                        loss = loss * poison_factor
                    gv.backward(loss)
        outcomes.append(gv.step())
    return outcomes


def reference(init: dict[str, torch.Tensor], mode: str, steps: list[dict[str, int]], world: int):
    """Single process: the same model and data, dense GradVac, clipping, Adam."""
    model = Tiny().double()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(init[name])
    params = list(model.named_parameters())
    grouping = group_parameters(params, "layer")
    slices, offset = [[] for _ in grouping.group_names], 0
    for name, p in params:
        slices[grouping.group_of[name]].append(slice(offset, offset + p.numel()))
        offset += p.numel()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    targets = torch.zeros(grouping.num_groups, len(TASKS), len(TASKS), dtype=torch.float64)
    for step, tasks in enumerate(steps):
        flat = []
        for t in range(len(TASKS)):
            if TASKS[t] not in tasks:
                flat.append(torch.zeros(offset, dtype=torch.float64))
                continue
            model.zero_grad()
            for r in range(world):
                for mb in range(tasks[TASKS[t]]):
                    x, y = batch(step, t, r, mb, torch.float32)
                    (model(x.double(), y.double()) / MICRO_BATCHES_PER_STEP / world).backward()
            flat.append(torch.cat([p.grad.reshape(-1) for _, p in params]))
        active = [name in tasks for name in TASKS]
        method = make_weighting(mode)
        if isinstance(method, GramianWeighting):
            update = dense_weighted_groups(flat, slices, method, active=active)
        else:
            orders = draw_task_orders(len(TASKS), step_generator(0, step)).tolist()
            update, targets, _ = dense_gradvac_groups(
                flat, slices, targets, mode=mode, beta=BETA, active=active, orders=orders
            )
        cursor = 0
        for _, p in params:
            p.grad = update[cursor : cursor + p.numel()].view_as(p).clone()
            cursor += p.numel()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        opt.step()
    return {n: p.detach() for n, p in params}, targets


def rel_err(got: dict, want: dict) -> float:
    """Largest elementwise difference relative to the largest parameter magnitude."""
    scale = max(want[n].abs().max().item() for n in want)
    return max((got[n].double() - want[n]).abs().max().item() for n in want) / scale


def case_equivalence(stage, precision, mode="gradvac", extra_zero=None, extra=None):
    gv, _ = build(stage, precision, mode, extra_zero, extra=extra)
    init = full_params(gv)
    outcomes = run_steps(gv, precision, SCHEDULE)
    got = full_params(gv)
    want, want_targets = reference(
        {n: v.double() for n, v in init.items()}, mode, SCHEDULE, dist.get_world_size()
    )
    fired = sum(int(o.result.fired.sum()) for o in outcomes)
    active = [o.result.active.to(torch.float64) for o in outcomes]
    return {
        "reweighted": max(
            (o.result.weights - a).abs().max().item() for o, a in zip(outcomes, active, strict=True)
        ),
        "adapter": type(gv.adapter).__name__,
        "param_rel_err": rel_err(got, want),
        "target_abs_err": (gv.state.targets - want_targets).abs().max().item(),
        "fired": fired,
        "skipped": gv.ds_engine.skipped_steps,
        "moved": rel_err(got, {n: v.double() for n, v in init.items()}),
    }


def case_sum_vs_plain(stage, precision, extra_zero=None, extra=None):
    """mode: sum through GradVacEngine vs plain DeepSpeed on the same micro-batches (and config)."""
    gv, cfg = build(stage, precision, "sum", extra_zero, extra=extra)
    run_steps(gv, precision, [FULL, FULL])
    ours = full_params(gv)
    ds_cfg = {k: v for k, v in cfg.items() if k != "gradvac"}
    model = Tiny()
    plain, *_ = deepspeed.initialize(
        model=model, optimizer=torch.optim.Adam(model.parameters(), lr=LR), config=ds_cfg
    )
    dtype, rank = dtype_of(precision), dist.get_rank()
    for step in range(2):
        for t in range(len(TASKS)):
            for mb in range(FULL[TASKS[t]]):
                x, y = on_device(*batch(step, t, rank, mb, dtype))
                plain.backward(plain(x, y))
                plain.step()
    theirs = full_params(plain)
    return {"param_rel_err": rel_err(ours, {n: v.double() for n, v in theirs.items()})}


class CountingComm(Comm):
    """The engine's collectives, each recorded as (name, bytes)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def all_reduce(self, tensor, op=dist.ReduceOp.SUM, group=None):
        self.calls.append(("all_reduce", tensor.numel() * tensor.element_size()))
        super().all_reduce(tensor, op=op, group=group)

    def all_gather_into_tensor(self, output, tensor, group=None):
        self.calls.append(("all_gather_into_tensor", output.numel() * output.element_size()))
        super().all_gather_into_tensor(output, tensor, group=group)


def case_communication(stage):
    counter = CountingComm()
    gv, _ = build(stage, "fp32", "gradvac", check=0, comm=counter)
    run_steps(gv, "fp32", SCHEDULE)
    num_groups = gv.grouping.num_groups
    return {
        "calls": counter.calls,
        "steps": len(SCHEDULE),
        "expected_bytes": (num_groups * len(TASKS) ** 2 + SIGNATURE_SLOTS) * 8,
    }


def case_resume(stage, precision):
    gv, _ = build(stage, precision, "gradvac")
    run_steps(gv, precision, SCHEDULE)
    straight, straight_targets = full_params(gv), gv.state.targets.clone()
    root = tempfile.mkdtemp(prefix="gv_ckpt_") if dist.get_rank() == 0 else None
    holder = [root]
    dist.broadcast_object_list(holder, src=0)
    gv, _ = build(stage, precision, "gradvac")
    run_steps(gv, precision, SCHEDULE[:2])
    gv.save_checkpoint(holder[0], tag="half")
    resumed, _ = build(stage, precision, "gradvac")
    resumed.load_checkpoint(holder[0], tag="half")
    run_steps(resumed, precision, SCHEDULE[2:], first_step=2)
    return {
        "param_rel_err": rel_err(full_params(resumed), {n: v.double() for n, v in straight.items()}),
        "target_abs_err": (resumed.state.targets - straight_targets).abs().max().item(),
        "state_step": resumed.state.step,
    }


def case_overflow(stage, precision):
    gv, _ = build(stage, precision, "gradvac")
    run_steps(gv, precision, SCHEDULE[:1])
    before, targets = full_params(gv), gv.state.targets.clone()
    outcomes = run_steps(gv, precision, SCHEDULE[1:2], first_step=1, poison=(1, "fr-en"))
    after = full_params(gv)
    return {
        "skipped_outcome": outcomes[0].skipped,
        "ds_skipped_steps": gv.ds_engine.skipped_steps,
        "params_changed": rel_err(after, {n: v.double() for n, v in before.items()}),
        "targets_changed": (gv.state.targets - targets).abs().max().item(),
    }


def case_nan_on_one_rank(stage, precision):
    """One non-finite micro-batch on rank 1 only: the step is a no-op on every rank (no write-back,
    no optimizer step, GradVac state unchanged), DeepSpeed counts it as skipped, and the next step
    trains normally."""
    gv, _ = build(stage, precision, "gradvac")
    run_steps(gv, precision, SCHEDULE[:1])
    before, targets, step = full_params(gv), gv.state.targets.clone(), gv.state.step
    (outcome,) = run_steps(gv, precision, SCHEDULE[1:2], first_step=1, poison=(1, "fr-en"), poison_rank=1)
    after, targets_after, step_after = full_params(gv), gv.state.targets.clone(), gv.state.step
    (following,) = run_steps(gv, precision, SCHEDULE[2:3], first_step=2)
    final = full_params(gv)
    return {
        "skip_reason": outcome.skip_reason,
        "ds_skipped_steps": gv.ds_engine.skipped_steps,
        "ds_global_steps": gv.ds_engine.global_steps,
        "params_changed": rel_err(after, {n: v.double() for n, v in before.items()}),
        "targets_changed": (targets_after - targets).abs().max().item(),
        "state_step_unchanged": step_after == step,
        "next_step_applied": not following.skipped,
        "final_finite": all(bool(torch.isfinite(v).all()) for v in final.values()),
        "moved_after": rel_err(final, {n: v.double() for n, v in after.items()}),
    }


def case_deepspeed_skips_huge_task():
    """fp32 ZeRO-2, one task's loss x 1e30: the Gram is finite, but DeepSpeed finds the combined
    gradient's norm non-finite and skips its step. GradVac must agree: no EMA move, no step count."""
    gv, _ = build(2, "fp32", "gradvac")
    run_steps(gv, "fp32", SCHEDULE[:1])
    targets, step = gv.state.targets.clone(), gv.state.step
    (outcome,) = run_steps(gv, "fp32", SCHEDULE[1:2], first_step=1, poison=(1, "fr-en"), poison_factor=1e30)
    return {
        "skip_reason": outcome.skip_reason,
        "result_present": outcome.result is not None,
        "ds_skipped_steps": gv.ds_engine.skipped_steps,
        "targets_changed": (gv.state.targets - targets).abs().max().item(),
        "state_step_unchanged": gv.state.step == step,
    }


def case_task_order_differs(discover: bool):
    """Each rank runs the same tasks in a different order (per-rank sampling): DeepSpeed would
    reduce one task with another; the engine refuses the step on every rank, naming the orders."""
    extra = (
        {"gradvac": {**ds_config(2, "fp32", "gradvac", {})["gradvac"], "tasks": "discover"}}
        if discover
        else None
    )
    gv, _ = build(2, "fp32", "gradvac", check=0, extra=extra)
    before = full_params(gv)
    order = {"de-en": 2, "fr-en": 2, "ja-en": 2, "sw-en": 2}
    if dist.get_rank() == 1:
        order = dict(reversed(list(order.items())))
    try:
        run_steps(gv, "fp32", [order])
    except RankDivergenceError as err:
        message = str(err)
    else:
        message = None
    return {
        "error": message,
        "params_changed": rel_err(full_params(gv), {n: v.double() for n, v in before.items()}),
    }


def case_divergence():
    seed = 1 if dist.get_rank() == 1 else 0
    gv, _ = build(2, "fp32", "gradvac", seed=seed, check=1)
    try:
        run_steps(gv, "fp32", SCHEDULE[:1])
    except RankDivergenceError as err:
        return {"error": str(err)}
    return {"error": None}


def case_monitor():
    """Per-pair cosines and fire rates reach DeepSpeed's CSV monitor at the logging interval."""
    holder = [tempfile.mkdtemp(prefix="gv_monitor_") if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(holder, src=0)
    monitor = {"csv_monitor": {"enabled": True, "output_path": holder[0], "job_name": "gv"}}
    gv, _ = build(2, "fp32", "gradvac", extra=monitor)
    gv.gradvac_config = type(gv.gradvac_config)(**{**gv.gradvac_config.to_dict(), "log_interval": 2})
    run_steps(gv, "fp32", SCHEDULE)
    files = sorted(str(p.relative_to(holder[0])) for p in Path(holder[0]).rglob("*.csv"))
    rows = {}
    for path in Path(holder[0]).rglob("*.csv"):
        rows[path.name] = [line.split(",")[0] for line in path.read_text().splitlines()[1:]]
    return {"files": files, "steps_logged": rows}


def case_buffer_rows():
    """With 2 micro-batches per step at most 2 of the 4 tasks run per step: 2 buffer rows suffice."""
    gv, _ = build(2, "fp32", "gradvac", gas=2)
    numel = sum(layout.numel for layout in gv.adapter.layouts)
    run_steps(gv, "fp32", [{"de-en": 1, "ja-en": 1}, {"fr-en": 1, "sw-en": 1}, {"sw-en": 2}])
    return {"rows": gv._buffers[0].shape[0], "bytes": gv.task_buffer_bytes, "expected_bytes": 2 * numel * 4}


def case_combine_in_a_task_row(stage: int):
    """Where each step's combined gradient is built: the adapter's ``output_buffer`` is recorded and
    compared with the engine's task buffers (same storage = no P/N allocation per step). The
    schedule has steps with every task (the output is the last task's row) and with fewer tasks
    than rows (a free row)."""
    gv, _ = build(stage, "fp32", "gradvac")
    offered = gv.adapter.output_buffer
    places = []

    def recording(index, device, spare=None):
        out = offered(index, device, spare)
        rows = gv._buffers[index]
        shares = out.untyped_storage().data_ptr() == rows.untyped_storage().data_ptr()
        places.append((out.data_ptr() - rows.data_ptr()) // (rows.stride(0) * 4) if shares else None)
        return out

    gv.adapter.output_buffer = recording
    run_steps(gv, "fp32", SCHEDULE)
    return {"places": places, "rows": gv._buffers[0].shape[0], "adapter": type(gv.adapter).__name__}


def case_one_reduction_buffer(stage: int, extra_zero: dict | None = None):
    """Where DeepSpeed's reduction of each task lands: at every capture the storage of the
    partition views is recorded and kept alive (so that a freed tensor's address cannot come back
    as a new allocation). One storage for every task of every step = no P/N allocation per task."""
    gv, _ = build(stage, "fp32", "gradvac", extra_zero)
    read = gv.adapter.read_into
    kept, storages = [], []

    def recording(index, out):
        grads = gv.adapter.opt.averaged_gradients[index]
        view = next(t for t in grads if not getattr(t, "_zero_padding", False))
        kept.append(view.untyped_storage())
        storages.append(kept[-1].data_ptr())
        read(index, out)

    gv.adapter.read_into = recording
    outcomes = run_steps(gv, "fp32", SCHEDULE)
    tasks = sum(len(step) for step in SCHEDULE) * len(gv.adapter.layouts)
    return {"captures": len(storages), "tasks": tasks, "storages": len(set(storages)),
            "skipped": sum(o.skipped for o in outcomes)}  # fmt: skip


OFFLOAD_ZERO = {"offload_optimizer": {"device": "cpu"}}
OFFLOAD_EXTRA = {"zero_force_ds_cpu_optimizer": False}  # torch Adam on the host, as the reference


def case_offload_refusals():
    """Parameter offload and optimizer offload at ZeRO-1 are refused with the field's name."""
    messages = {}
    attempts = {
        "offload_param": (3, {**OFFLOAD_ZERO, "offload_param": {"device": "cpu"}}),
        "stage1": (1, OFFLOAD_ZERO),
    }
    for name, (stage, zero) in attempts.items():
        try:
            build(stage, "fp32", "gradvac", zero, extra=OFFLOAD_EXTRA)
        except UnsupportedEngineError as err:
            messages[name] = str(err)
    return {"messages": messages}


def case_protocol():
    """Misuse of the task/step protocol raises TaskProtocolError with a message saying what."""
    gv, _ = build(2, "fp32", "gradvac")
    x, y = on_device(*batch(0, 0, dist.get_rank(), 0, torch.float32))
    messages = {}
    attempts = {
        "backward_outside_task": lambda: gv.backward(gv(x, y)),
        "step_without_tasks": gv.step,
        "unknown_task": lambda: gv.task("xx-en").__enter__(),
    }
    for name, attempt in attempts.items():
        try:
            attempt()
        except (TaskProtocolError, KeyError) as err:
            messages[name] = str(err)
    try:
        with gv.task("de-en", micro_batches=2):
            gv.backward(gv(x, y))
    except TaskProtocolError as err:
        messages["too_few_backward"] = str(err)
    gv.ds_engine.optimizer.zero_grad()
    for name in TASKS[:2]:
        with gv.task(name, micro_batches=1):
            gv.backward(gv(x, y))
    try:
        gv.step()
    except TaskProtocolError as err:
        messages["gas_mismatch"] = str(err)
    return {"messages": messages}


def cases(world: int) -> dict:
    out = {
        "s0_fp32": lambda: case_equivalence(0, "fp32"),
        "s1_fp32": lambda: case_equivalence(1, "fp32"),
        "s2_fp32": lambda: case_equivalence(2, "fp32"),
        "s2_fp32_cg0_oc1": lambda: case_equivalence(
            2, "fp32", extra_zero={"contiguous_gradients": False, "overlap_comm": True}
        ),
        "s2_fp32_cg1_oc1_rr": lambda: case_equivalence(
            2,
            "fp32",
            extra_zero={"contiguous_gradients": True, "overlap_comm": True, "round_robin_gradients": True},
        ),
        "s3_fp32": lambda: case_equivalence(3, "fp32"),
        "s3_fp32_p0": lambda: case_equivalence(
            3, "fp32", extra_zero={"stage3_param_persistence_threshold": 0}
        ),
        "pcgrad_s2": lambda: case_equivalence(2, "fp32", mode="pcgrad"),
        **{
            f"{mode}_s{stage}": (lambda mode=mode, stage=stage: case_equivalence(stage, "fp32", mode=mode))
            for mode in GRAMIAN_MODES
            for stage in (0, 1, 2, 3)
        },
        **{
            f"{mode}_s{stage}_offload": (
                lambda mode=mode, stage=stage: case_equivalence(
                    stage, "fp32", mode=mode, extra_zero=OFFLOAD_ZERO, extra=OFFLOAD_EXTRA
                )
            )
            for mode in GRAMIAN_MODES
            for stage in (2, 3)
        },
        "s0_bf16": lambda: case_equivalence(0, "bf16"),
        "s1_bf16_fp32acc": lambda: case_equivalence(1, "bf16_fp32acc"),
        "s2_bf16": lambda: case_equivalence(2, "bf16"),
        "s2_bf16_fp32acc": lambda: case_equivalence(2, "bf16_fp32acc"),
        "s3_bf16": lambda: case_equivalence(3, "bf16"),
        "s2_fp16": lambda: case_equivalence(2, "fp16"),
        "s3_fp16": lambda: case_equivalence(3, "fp16"),
        "sum_s0": lambda: case_sum_vs_plain(0, "fp32"),
        "sum_s2": lambda: case_sum_vs_plain(2, "fp32"),
        "sum_s3": lambda: case_sum_vs_plain(3, "fp32"),
        "s2_fp32_offload": lambda: case_equivalence(2, "fp32", extra_zero=OFFLOAD_ZERO, extra=OFFLOAD_EXTRA),
        "s3_fp32_offload": lambda: case_equivalence(3, "fp32", extra_zero=OFFLOAD_ZERO, extra=OFFLOAD_EXTRA),
        "sum_s2_offload": lambda: case_sum_vs_plain(2, "fp32", OFFLOAD_ZERO, OFFLOAD_EXTRA),
        "sum_s3_offload": lambda: case_sum_vs_plain(3, "fp32", OFFLOAD_ZERO, OFFLOAD_EXTRA),
        "offload_refusals": case_offload_refusals,
        "comm_s2": lambda: case_communication(2),
        "comm_s3": lambda: case_communication(3),
        "resume_s2": lambda: case_resume(2, "fp32"),
        "resume_s3": lambda: case_resume(3, "fp32"),
        "overflow_s2_fp16": lambda: case_overflow(2, "fp16"),
        "overflow_s1_fp32": lambda: case_overflow(1, "fp32"),
        "nan_one_rank_s0_fp32": lambda: case_nan_on_one_rank(0, "fp32"),
        "nan_one_rank_s2_bf16": lambda: case_nan_on_one_rank(2, "bf16"),
        "nan_one_rank_s3_fp32": lambda: case_nan_on_one_rank(3, "fp32"),
        "nan_one_rank_s2_fp16": lambda: case_nan_on_one_rank(2, "fp16"),
        "deepspeed_skip_s2_fp32": case_deepspeed_skips_huge_task,
        "order_differs_discover": lambda: case_task_order_differs(True),
        "order_differs_fixed": lambda: case_task_order_differs(False),
        "divergence": case_divergence,
        "protocol": case_protocol,
        "monitor": case_monitor,
        "buffer_rows": case_buffer_rows,
        **{
            f"in_row_s{stage}": (lambda stage=stage: case_combine_in_a_task_row(stage)) for stage in (0, 1, 2)
        },
        "one_buffer_s1": lambda: case_one_reduction_buffer(1),
        "one_buffer_s2": lambda: case_one_reduction_buffer(2),
        "one_buffer_s2_oc1": lambda: case_one_reduction_buffer(2, {"overlap_comm": True}),
    }
    if world > 2:
        out = {k: v for k, v in out.items() if k in FOUR_RANK_CASES}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--cases", default="")
    args = parser.parse_args()
    accel = get_accelerator()
    deepspeed.init_distributed(dist_backend="gloo" if accel.device_name() == "cpu" else None)
    # The CPU accelerator reports no fp16 support; the CPU kernels used here do run in fp16.
    accel.is_fp16_supported = lambda: True
    accel.supported_dtypes = lambda: [torch.float32, torch.bfloat16, torch.float16]
    selected = cases(dist.get_world_size())
    if args.cases:
        selected = {k: v for k, v in selected.items() if k in args.cases.split(",")}
    run_cases(selected, args.out)
    leave_together()


if __name__ == "__main__":
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    main()
