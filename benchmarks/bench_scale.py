"""GradVac at scale on this machine: megatron-core GPT models up to >= 100M parameters on 2 CPU ranks.

``python benchmarks/bench_scale.py`` trains, for each model size (``--sizes``) and ZeRO stage
(``--stages``, default 2 and 3), plain DeepSpeed and GradVacEngine: a paired timing run and one
memory run per mode (``--world`` ranks of one thread each, on the accelerator's backend). Then a K
sweep (``--k-sweep``, default 4, 16, 64) on the first size: K known tasks of which each step samples
``--tasks-per-step`` (one micro-batch each), so the task buffers keep that many rows while the Gram,
its all-reduce and the solver grow with K.

Models: megatron-core ``GPTModel`` built by :func:`gradvac_ds.training.modeling.build_model`
(decoder-only translator, learned positions, tied embeddings). Sizes (``name=hidden:layers:ffn:heads:vocab``):
``small`` 5.3M, ``medium`` ~33M, ``gpt110m`` 110M parameters; ``--sizes`` also takes new definitions.
Each stage and mode also runs a ~0.1M-parameter baseline (see below). ``--k-sweep ''`` (``small,gpt110m``
x stages 2, 3 and the four baselines) took 20 minutes on two cores shared with another job (load
average ~8; its step times are disturbed by that job); ``--sizes medium`` or a larger custom size
for more.

**Step time** comes from paired runs: plain DeepSpeed and GradVac on two copies of the same model in
the same processes, one step of each per round, the order alternating, on the same batches, so that
the box's drift (another job, frequency, the allocator's state) hits both alike. The ratio is the
median of the per-round ratios GradVac / plain (slower rank), with its distribution-free 95 %
interval; rounds continue until that interval is within ``--tolerance`` (2 %) of the median, from
``--min-rounds`` to ``--max-rounds``. Plain is measured again for every K of the sweep, and CPU
time (all ranks) is reported beside the wall time.

**Memory** runs take each mode in fresh processes, so that each peak is its own. Per run they report
GradVac's phases (through the engine's ``StepObserver``, median of ``--steps`` steps after
``--warmup``), the task-buffer and Gram bytes, and the peak RSS per rank (``VmHWM``, reset after
``deepspeed.initialize`` so that the full model drawn before ZeRO-3 partitions it does not count)
against the planner's prediction for the run's exact parameter layout, bucket size (``--bucket``)
and optimizer path (torch's single-tensor Adam, its CPU default): :func:`gradvac_ds.planning.plan`'s
per-rank ``total`` for GradVac, its ``plain_total`` for plain DeepSpeed (model states, DeepSpeed's
buffers, task buffers, and the larger of activations plus the backward's transients and the
optimizer step's), plus the fixed RSS of the process (interpreter, libraries and the code pages
training touches, threads, gloo): the peak RSS of a run of the same stage and mode on a
~0.1M-parameter baseline model, less that model's own planner total.

glibc raises its mmap threshold whenever a large block is freed, after which freed tensor memory
stays in the heap and counts in the RSS (measured: +0.5 GiB on a 33M-parameter ZeRO-3 run); the
workers therefore run with ``MALLOC_MMAP_THRESHOLD_`` fixed (``--malloc-mmap-threshold``, glibc's
own initial 128 KiB; 0 keeps glibc's dynamic behaviour), as a CPU user who wants the RSS to follow
the live tensors would set it (or use jemalloc/tcmalloc). Large allocations are then fresh pages
each time, which costs step time on CPU, equally in both modes.

Nothing in the engine's path is O(P) Python work: per step the Python loops run over buffer
fragments, Gram segments and column chunks (counted below as ``python_items_per_step``), while every
O(P) operation is one tensor kernel.

Output: a table, a plot (``--plot``, default ``runs/bench_scale/bench_scale.png``) and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from harness import (
    PhaseTimer,
    copy_bandwidth,
    current_memory_bytes,
    launch_workers,
    memory_kind,
    peak_memory_bytes,
    print_table,
    reset_peak_memory,
)

SIZES = {
    "small": (256, 4, 1024, 4, 8000),
    "medium": (512, 8, 2048, 8, 16000),
    "gpt110m": (768, 12, 3072, 12, 32000),
}
"""name -> (hidden, layers, ffn, heads, vocab)."""
BASELINE = (64, 1, 128, 2, 256)
"""The baseline model (~0.1M parameters): its run measures the process's fixed RSS."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="small,gpt110m", help="sizes by name, or name=hidden:layers:ffn:heads:vocab"
    )
    parser.add_argument("--stages", default="2,3")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--tasks", type=int, default=4, help="K of the size runs (all tasks in every step)")
    parser.add_argument(
        "--k-sweep", default="4,16,64", help="K values of the sweep on the first size; '' skips it"
    )
    parser.add_argument("--tasks-per-step", type=int, default=4, help="tasks sampled per step in the sweep")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--batch", type=int, default=2, help="sequences per micro-batch per rank")
    parser.add_argument("--seq", type=int, default=32, help="source and target tokens per sequence")
    parser.add_argument(
        "--bucket", type=int, default=2_000_000, help="DeepSpeed reduce/all-gather bucket elements"
    )
    parser.add_argument("--world", type=int, default=2)
    parser.add_argument(
        "--min-rounds", type=int, default=8, help="paired timing: rounds before the interval is judged"
    )
    parser.add_argument("--max-rounds", type=int, default=40, help="paired timing: most rounds")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=0.02,
        help="paired timing: stop when the 95%% interval of the median ratio is within +-tolerance of it",
    )
    parser.add_argument(
        "--malloc-mmap-threshold",
        type=int,
        default=131072,
        help="MALLOC_MMAP_THRESHOLD_ (0: glibc's default)",
    )
    parser.add_argument("--plot", default="runs/bench_scale/bench_scale.png")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scale-run", default="", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def size_table(spec: str) -> dict[str, tuple[int, ...]]:
    out = {}
    for item in filter(None, spec.split(",")):
        name, _, dims = item.partition("=")
        if dims:
            values = tuple(int(v) for v in dims.split(":"))
            if len(values) != 5:
                raise SystemExit(f"--sizes {item!r}: give name=hidden:layers:ffn:heads:vocab")
            out[name] = values
        elif name in SIZES:
            out[name] = SIZES[name]
        else:
            raise SystemExit(f"--sizes: unknown size {name!r}; known: {sorted(SIZES)} or name=h:l:f:a:v")
    return out


# ---------------------------------------------------------------------------------------- worker
def model_config(dims: tuple[int, ...], seq: int) -> dict[str, Any]:
    hidden, layers, ffn, heads, _ = dims
    return {
        "name": "bench", "hidden_size": hidden, "ffn_hidden_size": ffn, "num_attention_heads": heads,
        "encoder_layers": 1, "decoder_layers": 1, "decoder_only_layers": layers,
        "max_sequence_length": 4 * seq, "dropout": 0.0, "attention_dropout": 0.0, "activation": "gelu",
        "share_embeddings": True, "label_smoothing": 0.0, "make_vocab_size_divisible_by": 128,
    }  # fmt: skip


def bench_model(run: dict[str, Any], args: argparse.Namespace):
    """The run's megatron-core GPT translator, from seed 1 (the same weights for every mode)."""
    from gradvac_ds.training.modeling import build_model

    dims = tuple(run["dims"])
    return build_model(model_config(dims, args.seq), dims[4], "decoder", seed=1)


def ds_config(run: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    zero: dict[str, Any] = {
        "stage": run["stage"],
        "reduce_bucket_size": args.bucket,
        "allgather_bucket_size": args.bucket,
    }
    if run["stage"] == 3:
        zero.update(stage3_prefetch_bucket_size=args.bucket, stage3_max_live_parameters=args.bucket)
    cfg: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": args.batch,
        "gradient_accumulation_steps": run["per_step"],
        "gradient_clipping": 1.0,
        "steps_per_print": 10**9,
        "zero_optimization": zero,
        "gradvac": {
            "mode": "gradvac",
            "tasks": [f"t{k}" for k in range(run["K"])],
            "consistency_check_interval": 0,
            "log_interval": 0,
        },
    }
    if args.precision == "bf16":
        cfg["bf16"] = {"enabled": True}
    return cfg


def batch(args, vocab: int, step: int, task: int, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(src, tgt) token ids of one micro-batch; task k samples its own window of the vocabulary."""
    gen = torch.Generator().manual_seed(7919 * step + 104729 * task + rank)
    window = max(vocab // 4, 8)
    offset = 4 + (task * 131) % max(vocab - window - 4, 1)
    shape = (args.batch, args.seq)
    return torch.randint(0, window, shape, generator=gen) + offset, torch.randint(
        0, window, shape, generator=gen
    ) + offset


def step_tasks(run: dict[str, Any], step: int) -> list[int]:
    """The step's tasks: all K, or ``per_step`` of them drawn (same on every rank) when K is larger."""
    if run["K"] == run["per_step"]:
        return list(range(run["K"]))
    gen = torch.Generator().manual_seed(step)
    return sorted(torch.randperm(run["K"], generator=gen)[: run["per_step"]].tolist())


def python_items(gv) -> int:
    """Python-level iterations of one engine step besides the per-task ones: fragments, segments
    and column chunks (each one tensor kernel), independent of how many elements they hold."""
    from gradvac_ds.gram import CHUNK_ELEMENTS

    rows = gv._buffers[0].shape[0]
    chunks = sum(
        math.ceil((s.stop - s.start) / max(1, CHUNK_ELEMENTS // rows)) for segs in gv.segments for s in segs
    )
    return 2 * chunks + sum(len(layout.fragments) for layout in gv.adapter.layouts)


def run_step(engine, gv, args, run: dict[str, Any], step: int, rank: int, device) -> tuple[float, float]:
    """One optimizer step of plain DeepSpeed (``gv`` None) or GradVac over the step's tasks; returns
    this rank's (wall, CPU) seconds, the accelerator synchronised at both ends."""
    import deepspeed
    from deepspeed import comm as dist

    accelerator = deepspeed.get_accelerator()
    dist.barrier()
    accelerator.synchronize()
    start, cpu = time.perf_counter(), time.process_time()
    for k in step_tasks(run, step):
        src, tgt = (t.to(device) for t in batch(args, run["dims"][4], step, k, rank))
        if gv is None:
            engine.backward(engine(src, tgt))
            engine.step()
        else:
            with gv.task(f"t{k}", micro_batches=1):
                gv.backward(gv(src, tgt))
    if gv is not None:
        gv.step()
    accelerator.synchronize()
    return time.perf_counter() - start, time.process_time() - cpu


def paired_worker(args: argparse.Namespace, run: dict[str, Any], device: torch.device, rank: int) -> None:
    """Plain DeepSpeed and GradVac on two copies of the same model in the same processes, one step
    of each per round, the order alternating, on the same batches. The per-round ratio GradVac /
    plain (the slower rank's wall time of each) is collected until the 95 % interval of its median
    lies within ``--tolerance`` of it (after ``--min-rounds``, at most ``--max-rounds``); CPU time
    (``time.process_time``, all ranks summed) is reported beside it. Every rank sees the same
    all-reduced times, so all stop at the same round."""
    import deepspeed
    from deepspeed import comm as dist
    from harness import median_interval

    from gradvac_ds.engine import GradVacEngine, split_config
    from gradvac_ds.training.megatron import MegatronMPU

    ds_cfg, gv_cfg = split_config(ds_config(run, args))
    engines = {}
    for mode in ("plain", "gradvac"):
        model = bench_model(run, args)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=ds_cfg, mpu=MegatronMPU())
        engines[mode] = (engine, GradVacEngine(engine, gv_cfg) if mode == "gradvac" else None)
    wall: dict[str, list[float]] = {"plain": [], "gradvac": []}
    cpu: dict[str, list[float]] = {"plain": [], "gradvac": []}
    ratios: list[float] = []
    interval = (math.nan, math.nan, math.nan)
    for rnd in range(args.warmup + args.max_rounds):
        order = ("plain", "gradvac") if rnd % 2 == 0 else ("gradvac", "plain")
        measured = {mode: run_step(*engines[mode], args, run, rnd, rank, device) for mode in order}
        times = torch.tensor([measured["plain"][0], measured["gradvac"][0]], dtype=torch.float64)
        dist.all_reduce(times, op=dist.ReduceOp.MAX)
        seconds = torch.tensor([measured["plain"][1], measured["gradvac"][1]], dtype=torch.float64)
        dist.all_reduce(seconds)
        if rnd < args.warmup:
            continue
        for i, mode in enumerate(("plain", "gradvac")):
            wall[mode].append(float(times[i]))
            cpu[mode].append(float(seconds[i]))
        ratios.append(float(times[1] / times[0]))
        interval = median_interval(ratios)
        if rank == 0:
            print(f"[bench_scale] {run['label']} round {len(ratios)}: ratio {interval[0]:.3f} "
                  f"[{interval[1]:.3f}, {interval[2]:.3f}]", file=sys.stderr)  # fmt: skip
        if len(ratios) >= args.min_rounds and interval[2] - interval[1] <= 2 * args.tolerance * interval[0]:
            break
    median, low, high = interval
    report = {
        **run,
        "rounds": len(ratios),
        "ratio": median,
        "ratio_low": low,
        "ratio_high": high,
        "converged": high - low <= 2 * args.tolerance * median,
        "plain_step_s": statistics.median(wall["plain"]),
        "gradvac_step_s": statistics.median(wall["gradvac"]),
        "cpu_ratio": statistics.median(g / p for g, p in zip(cpu["gradvac"], cpu["plain"], strict=True)),
        "plain_cpu_s": statistics.median(cpu["plain"]),
        "gradvac_cpu_s": statistics.median(cpu["gradvac"]),
        "accelerator": deepspeed.get_accelerator().device_name(),
    }
    if rank == 0:
        Path(args.out).write_text(json.dumps(report))


def worker(args: argparse.Namespace) -> None:
    import deepspeed
    from deepspeed import comm as dist

    from gradvac_ds.training.build import leave_together
    from gradvac_ds.training.megatron import init_model_parallel

    torch.set_num_threads(1)
    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    deepspeed.utils.logger.setLevel(logging.WARNING)
    run = json.loads(args.scale_run)
    accelerator = deepspeed.get_accelerator()
    deepspeed.init_distributed(dist_backend=accelerator.communication_backend_name())
    device = torch.device(accelerator.current_device_name())
    init_model_parallel(1)
    rank = dist.get_rank()
    if run["kind"] == "pair":
        paired_worker(args, run, device, rank)
    else:
        memory_worker(args, run, device, rank)
    leave_together()


def memory_worker(args: argparse.Namespace, run: dict[str, Any], device: torch.device, rank: int) -> None:
    """One mode in fresh processes (module docstring, **Memory**): its phases, buffer bytes and peak
    RSS against the planner's prediction."""
    import deepspeed
    from deepspeed import comm as dist

    from gradvac_ds.engine import GradVacEngine, split_config
    from gradvac_ds.planning import ActivationInputs, layout_of, plan
    from gradvac_ds.training.megatron import MegatronMPU

    base_rss = current_memory_bytes()
    dims = tuple(run["dims"])
    model = bench_model(run, args)
    num_params = sum(p.numel() for p in model.parameters())
    ds_cfg, gv_cfg = split_config(ds_config(run, args))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    layout = layout_of(optimizer.param_groups)  # before ZeRO-3 replaces the groups by its partitions
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=ds_cfg, mpu=MegatronMPU())
    del model
    timer = PhaseTimer()
    gv = GradVacEngine(engine, gv_cfg, observer=timer) if run["mode"] == "gradvac" else None
    bandwidth = torch.tensor([copy_bandwidth(device, barrier=dist.barrier)], dtype=torch.float64)
    dist.all_reduce(bandwidth, op=dist.ReduceOp.MIN)
    reset = reset_peak_memory()
    times, phases = [], []
    for step in range(args.warmup + args.steps):
        timer.active = step >= args.warmup
        times.append(run_step(engine, gv, args, run, step, rank, device)[0])
        phases.append(timer.take())
        if rank == 0:
            print(f"[bench_scale] {run['label']} step {step + 1}/{args.warmup + args.steps}", file=sys.stderr)
    peak = peak_memory_bytes()
    slow = torch.tensor(times[args.warmup :], dtype=torch.float64)
    dist.all_reduce(slow, op=dist.ReduceOp.MAX)
    peaks = torch.tensor([float(peak), float(base_rss)], dtype=torch.float64)
    dist.all_reduce(peaks, op=dist.ReduceOp.MAX)
    groups = gv.grouping.num_groups if gv is not None else 0
    acts = ActivationInputs(
        micro_batch_tokens=args.batch * 2 * args.seq, seq_length=2 * args.seq, hidden_size=dims[0],
        num_attention_heads=dims[3], num_layers=dims[1],
    )  # fmt: skip
    predicted = plan(
        num_params, run["per_step"], dp=dist.get_world_size(), zero_stage=run["stage"],
        precision=args.precision, groups=max(groups, 1), layout=layout, activations=acts,
        reduce_bucket_size=args.bucket, optimizer_impl="single_tensor",
    ).gradvac_ds.memory  # fmt: skip
    report = {
        **run,
        "P": num_params,
        "L": groups,
        "median_step_s": statistics.median(slow.tolist()),
        "phases_ms": {
            name: 1e3 * statistics.median(p.get(name, 0.0) for p in phases[args.warmup :])
            for name in ("capture", "gram", "all_reduce", "solve", "combine", "optimizer")
        }
        if gv is not None
        else {},
        "task_buffer_bytes": gv.task_buffer_bytes if gv is not None else 0,
        "partition_bytes": gv.task_buffer_bytes // gv._buffers[0].shape[0] if gv is not None else 0,
        "copy_bytes_per_s": float(bandwidth.item()),
        "gram_bytes": groups * run["K"] ** 2 * 8,
        "python_items_per_step": python_items(gv) if gv is not None else 0,
        "peak_rss_bytes": int(peaks[0].item()),
        "base_rss_bytes": int(peaks[1].item()),
        "planner_bytes": predicted.total if gv is not None else predicted.plain_total,
        "peak_reset": reset,
        "memory": memory_kind(),
        "accelerator": deepspeed.get_accelerator().device_name(),
    }
    if rank == 0:
        Path(args.out).write_text(json.dumps(report))


# ---------------------------------------------------------------------------------------- driver
def runs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The memory runs (``kind: memory``, one mode in fresh processes: peak memory, phases) and the
    timing runs (``kind: pair``, plain and GradVac interleaved in the same processes)."""
    sizes = size_table(args.sizes)
    stages = [int(s) for s in args.stages.split(",")]
    out = []

    def add(kind: str, label: str, size: str, dims, stage: int, mode: str, k: int, per: int, sweep: bool):
        out.append({"kind": kind, "label": label, "size": size, "dims": dims, "stage": stage, "mode": mode,
                    "K": k, "per_step": per, "sweep": sweep})  # fmt: skip

    for stage in stages:
        for mode in ("plain", "gradvac"):
            add(
                "memory",
                f"baseline z{stage} {mode}",
                "baseline",
                BASELINE,
                stage,
                mode,
                args.tasks,
                args.tasks,
                False,
            )
    for name, dims in sizes.items():
        for stage in stages:
            for mode in ("plain", "gradvac"):
                add(
                    "memory",
                    f"{name} z{stage} {mode}",
                    name,
                    dims,
                    stage,
                    mode,
                    args.tasks,
                    args.tasks,
                    False,
                )
            add("pair", f"{name} z{stage} timing", name, dims, stage, "pair", args.tasks, args.tasks, False)
    sweep = [int(k) for k in args.k_sweep.split(",") if k]
    if sweep:
        name, dims = next(iter(sizes.items()))
        stage, per = stages[0], args.tasks_per_step
        add("memory", f"{name} z{stage} plain sweep", name, dims, stage, "plain", per, per, True)
        for k in sweep:
            add("memory", f"{name} z{stage} K={k}", name, dims, stage, "gradvac", k, min(per, k), True)
            add("pair", f"{name} z{stage} K={k} timing", name, dims, stage, "pair", k, min(per, k), True)
    return out


def predict(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run's predicted peak RSS: its planner total plus the fixed RSS of its stage and mode,
    which the baseline run measures (its peak RSS less its own, tiny, planner total)."""
    fixed = {
        (r["stage"], r["mode"]): r["peak_rss_bytes"] - r["planner_bytes"]
        for r in results
        if r["size"] == "baseline"
    }
    return [
        {**r, "fixed_rss_bytes": fixed[r["stage"], r["mode"]],
         "predicted_rss_bytes": fixed[r["stage"], r["mode"]] + r["planner_bytes"]}
        for r in results
        if r["size"] != "baseline"
    ]  # fmt: skip


def bandwidth_bounds(run: dict[str, Any]) -> dict[str, float]:
    """Capture and combine against what they must move, at the rank's copy bandwidth B (bytes/s of
    a large ``copy_``, which reads and writes that many bytes; the median over copies that all
    ranks run at the same time, as they run these phases). With b the bytes of one task's slice
    of this rank's partition (P/N elements at ZeRO 1-3) and k the tasks of the step:

        capture  copies each task's reduced slice into its row:  k b bytes copied -> k b / B
        combine  reads the k rows, writes the update once:       (k + 1) b bytes moved -> (k + 1) b / (2 B)

    ``*_over_bound`` is the measured median phase time over that bound (1 = at the limit)."""
    b, k, rate = run["partition_bytes"], run["per_step"], run["copy_bytes_per_s"]
    capture, combine = k * b / rate, (k + 1) * b / (2 * rate)
    return {
        "copy_gb_per_s": rate / 1e9,
        "capture_bound_ms": 1e3 * capture,
        "combine_bound_ms": 1e3 * combine,
        "capture_over_bound": run["phases_ms"]["capture"] / (1e3 * capture),
        "combine_over_bound": run["phases_ms"]["combine"] / (1e3 * combine),
    }


def summarise(results: list[dict[str, Any]], pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row per GradVac memory run, with the timing of its paired run (same size, stage, K)."""
    plain = {(r["size"], r["stage"], r["per_step"]): r for r in results if r["mode"] == "plain"}
    timing = {(p["size"], p["stage"], p["K"], p["sweep"]): p for p in pairs}
    rows = []
    for r in results:
        if r["mode"] != "gradvac":
            continue
        base = plain.get((r["size"], r["stage"], r["per_step"]))
        pair = timing[r["size"], r["stage"], r["K"], r["sweep"]]
        rows.append({
            "label": r["label"], "size": r["size"], "stage": r["stage"], "K": r["K"], "sweep": r["sweep"],
            "P": r["P"], "L": r["L"], "step_s": pair["gradvac_step_s"], "plain_step_s": pair["plain_step_s"],
            "ratio_vs_plain": pair["ratio"], "ratio_low": pair["ratio_low"], "ratio_high": pair["ratio_high"],
            "rounds": pair["rounds"], "converged": pair["converged"], "cpu_ratio_vs_plain": pair["cpu_ratio"],
            "cpu_s": pair["gradvac_cpu_s"], "plain_cpu_s": pair["plain_cpu_s"],
            "peak_rss": r["peak_rss_bytes"], "predicted_rss": r["predicted_rss_bytes"],
            "rss_over_predicted": r["peak_rss_bytes"] / r["predicted_rss_bytes"],
            "plain_peak_rss": base["peak_rss_bytes"] if base else None,
            "plain_predicted_rss": base["predicted_rss_bytes"] if base else None,
            "plain_rss_over_predicted": (
                base["peak_rss_bytes"] / base["predicted_rss_bytes"] if base else None
            ),
            "fixed_rss": r["fixed_rss_bytes"], "planner_bytes": r["planner_bytes"],
            "task_buffer_bytes": r["task_buffer_bytes"], "gram_bytes": r["gram_bytes"],
            "python_items_per_step": r["python_items_per_step"], "phases_ms": r["phases_ms"],
            **bandwidth_bounds(r),
        })  # fmt: skip
    return {"rows": rows}


def emit(results: list[dict[str, Any]], pairs: list[dict[str, Any]], args: argparse.Namespace) -> None:
    rows = summarise(results, pairs)["rows"]
    mib = 2**20
    where = results[0]["accelerator"]
    backend = "gloo ranks on CPU" if where == "cpu" else f"ranks on {where}"
    print(f"GradVac at scale: megatron-core GPT, {args.precision}, {args.world} {backend}, "
          f"micro-batch {args.batch}x{2 * args.seq} tokens, {args.steps} timed steps after "
          f"{args.warmup} warm-up\n")  # fmt: skip
    print_table(
        "step time: plain and GradVac interleaved in the same processes, one step each per round; "
        "ratio = median per-round ratio (slower rank) with its 95% interval; CPU: all ranks",
        [("run", 22, ""), ("gv s", 8, ".3f"), ("plain s", 8, ".3f"), ("ratio", 7, ".3f"), ("low", 7, ".3f"),
         ("high", 7, ".3f"), ("rounds", 7, ""), ("CPU ratio", 10, ".3f")],
        [[r["label"], r["step_s"], r["plain_step_s"], r["ratio_vs_plain"], r["ratio_low"], r["ratio_high"],
          r["rounds"], r["cpu_ratio_vs_plain"]] for r in rows],
    )  # fmt: skip
    print_table(
        f"memory (each mode in fresh processes; 'RSS' columns: the peak {results[0]['memory']}, "
        "max over ranks)",
        [("run", 22, ""), ("P", 12, ","), ("L", 3, ""),
         ("RSS MiB", 8, ".0f"), ("pred MiB", 9, ".0f"), ("RSS/pred", 9, ".3f"),
         ("plain RSS", 10, ".0f"), ("plain pred", 11, ".0f"), ("plain RSS/pred", 15, ".3f"),
         ("buffers MiB", 12, ".1f"), ("Gram B", 9, ","), ("py items", 9, ",")],
        [[r["label"], r["P"], r["L"],
          r["peak_rss"] / mib,
          r["predicted_rss"] / mib, r["rss_over_predicted"],
          r["plain_peak_rss"] / mib if r["plain_peak_rss"] else None,
          r["plain_predicted_rss"] / mib if r["plain_predicted_rss"] else None, r["plain_rss_over_predicted"],
          r["task_buffer_bytes"] / mib, r["gram_bytes"], r["python_items_per_step"]] for r in rows],
    )  # fmt: skip
    phase_names = ("capture", "gram", "all_reduce", "solve", "combine", "optimizer")
    print_table(
        "GradVac phases per step, ms (median, rank 0); capture and combine over their copy-bandwidth "
        "bounds (see bandwidth_bounds)",
        [("run", 22, ""), *((n, 11, ".1f") for n in phase_names), ("copy GB/s", 10, ".2f"),
         ("capture/bound", 14, ".2f"), ("combine/bound", 14, ".2f")],
        [[r["label"], *(r["phases_ms"].get(n, math.nan) for n in phase_names), r["copy_gb_per_s"],
          r["capture_over_bound"], r["combine_over_bound"]] for r in rows],
    )  # fmt: skip
    plot(rows, args.plot)
    sizes = [r for r in rows if not r["sweep"]]
    sweep = [r for r in rows if r["sweep"]]
    largest = max(sizes, key=lambda r: r["P"]) if sizes else None
    summary = {
        "largest_P": largest["P"] if largest else None,
        "max_step_time_ratio_vs_plain": max((r["ratio_vs_plain"] for r in sizes), default=None),
        "max_step_time_ratio_high": max((r["ratio_high"] for r in sizes), default=None),
        "max_cpu_time_ratio_vs_plain": max((r["cpu_ratio_vs_plain"] for r in sizes), default=None),
        "timing_converged": all(r["converged"] for r in rows),
        "max_abs_rss_error_vs_planner": max(
            (abs(x - 1) for r in rows for x in (r["rss_over_predicted"], r["plain_rss_over_predicted"]) if x),
            default=None,
        ),
        "max_capture_over_bound": max((r["capture_over_bound"] for r in rows), default=None),
        "max_combine_over_bound": max((r["combine_over_bound"] for r in rows), default=None),
        "sweep_ratio_vs_plain": {str(r["K"]): r["ratio_vs_plain"] for r in sweep},
        "sweep_ratio_interval": {str(r["K"]): [r["ratio_low"], r["ratio_high"]] for r in sweep},
        "sweep_cpu_ratio_vs_plain": {str(r["K"]): r["cpu_ratio_vs_plain"] for r in sweep},
        "sweep_gram_bytes": {str(r["K"]): r["gram_bytes"] for r in sweep},
        "memory": results[0]["memory"],
        "accelerator": results[0]["accelerator"],
        "plot": args.plot,
        "runs": rows,
    }  # fmt: skip
    print(json.dumps(summary))


def plot(rows: list[dict[str, Any]], path: str) -> None:
    """Step-time ratio and RSS/prediction per size and stage, and the K sweep's ratio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for stage in sorted({r["stage"] for r in rows if not r["sweep"]}):
        sel = sorted((r for r in rows if not r["sweep"] and r["stage"] == stage), key=lambda r: r["P"])
        axes[0].plot(
            [r["P"] / 1e6 for r in sel], [r["ratio_vs_plain"] for r in sel], "o-", label=f"ZeRO-{stage}"
        )
        axes[1].plot(
            [r["P"] / 1e6 for r in sel], [r["rss_over_predicted"] for r in sel], "o-", label=f"ZeRO-{stage}"
        )
        axes[1].plot(
            [r["P"] / 1e6 for r in sel], [r["plain_rss_over_predicted"] for r in sel], "x--",
            label=f"ZeRO-{stage} plain",
        )  # fmt: skip
    axes[0].set(xlabel="parameters (M)", ylabel="GradVac / plain step time", xscale="log")
    axes[1].set(xlabel="parameters (M)", ylabel="peak RSS / planner prediction", xscale="log")
    axes[1].axhspan(0.9, 1.1, alpha=0.15)
    sweep = sorted((r for r in rows if r["sweep"]), key=lambda r: r["K"])
    axes[2].plot([r["K"] for r in sweep], [r["ratio_vs_plain"] for r in sweep], "o-")
    axes[2].set(xlabel="K (known tasks; sampled per step)", ylabel="GradVac / plain step time", xscale="log")
    for ax in axes[:2]:
        ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    args = parse_args()
    if args.worker:
        worker(args)
        return
    forwarded = [a for a in sys.argv[1:]]
    if args.malloc_mmap_threshold:
        os.environ["MALLOC_MMAP_THRESHOLD_"] = str(args.malloc_mmap_threshold)
    results = []
    for run in runs(args):
        print(f"[bench_scale] {run['label']}", file=sys.stderr, flush=True)
        report = launch_workers(
            __file__, [*forwarded, "--scale-run", json.dumps(run)], args.world, "bench_scale"
        )
        if report is None:
            sys.exit(1)
        results.append(report)
    memory = [r for r in results if r["kind"] == "memory"]
    emit(predict(memory), [r for r in results if r["kind"] == "pair"], args)


if __name__ == "__main__":
    main()
