"""GradVacEngine overhead inside DeepSpeed ZeRO-2 against plain DeepSpeed and a naive data-parallel GradVac.

One command runs everything: ``python benchmarks/bench_engine.py`` re-launches this file on
``--world`` gloo ranks (default 2; ``DS_ACCELERATOR=cpu``, one thread per rank; on a GPU box set
``DS_ACCELERATOR=cuda`` and it runs NCCL), collects rank 0's results, prints tables and then one
JSON line.

Workload: a small causal language model (token + position embeddings, a pre-norm
``nn.TransformerEncoder`` named ``encoder.layers.N.*``, final LayerNorm, output head), fp32, ZeRO
stage 2, data parallel over N ranks. For each K in ``--tasks`` (default 4, 8, 16) every step runs K
tasks of one micro-batch each (``gradient_accumulation_steps = K``); task k draws tokens from its
own window of the vocabulary. Granularity ``layer``; ``--gram-dtype`` picks the Gram's GEMM dtype.

Modes, all built from the same initial weights and fed the same micro-batches:

* ``plain``: DeepSpeed alone (``engine.backward``/``engine.step`` per micro-batch).
* ``gradvac``: GradVacEngine, ``mode: gradvac``. ``gradvac / plain`` is the headline: the full cost
  of GradVac over stock DeepSpeed on the same micro-batches.
* ``sum``: GradVacEngine, ``mode: sum`` (captures, Gram, all-reduce and combine with unit weights):
  ``gradvac / sum`` isolates the solver.
* the Gramian methods of ``--methods`` (default upgrad, mgda, imtl_g, aligned_mtl; at the K in
  ``--method-tasks``, default 16): GradVacEngine with that ``mode``, timed in rounds of their own
  with plain DeepSpeed, each round rotating the order of plain and the methods; ``method / plain``
  is each method's full cost over stock DeepSpeed.
* ``naive`` (at the K in ``--naive-tasks``, default 16): :mod:`naive` -- a replicated model, each
  task's full gradient all-reduced, the dense GradVac loop on flat vectors on every rank.

**Step time.** One step of each mode per round, the order rotated every round so that each mode
takes each position equally often; the first ``--warmup`` rounds are dropped. A step's time is
wall clock from a barrier to the end of its optimizer step, the slower rank. Ratios are medians of
per-round paired ratios (a slow round for the whole box cancels). Also: the ratio of each mode's
fastest step, and the same paired ratios of CPU time (``time.process_time`` of all threads, ranks
summed), which does not count time spent descheduled on a busy machine.

**Memory and traffic.** Task-gradient bytes per rank: ``GradVacEngine.task_buffer_bytes`` against
the ideal K * P / N * 4 (the excess is ZeRO's padding), and the naive K * P * 4. After the timed
rounds, ``--phase-steps`` more steps of each GradVac mode run instrumented through the engine's
seams (:mod:`harness`): a ``StepObserver`` timing the phases, a ``Comm`` counting the engine's own
collectives (expected: one all-reduce of (L * K^2 + 4) float64 per step), and DeepSpeed's
``comms_logger`` counting the payload bytes of every collective of the step, DeepSpeed's gradient
reductions included, for plain, gradvac and naive alike.

The last line is one JSON object whose first keys are ``step_time_ratio_vs_plain_k16`` and
``cpu_time_ratio_vs_plain_k16`` (gradvac / plain), then ``method_step_time_ratio_vs_plain_k16``
(each method / plain), the gradvac / sum ratios, memory and traffic, then per-K details.
"""

from __future__ import annotations

import argparse
import gc
import itertools
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
from harness import CountingComm, PhaseTimer, deepspeed_traffic, launch_workers, print_table
from naive import NaiveDataParallelGradVac
from torch import nn

from gradvac_ds.comm import PHASES
from gradvac_ds.gram import SIGNATURE_SLOTS

MODES = ("gradvac", "sum", "plain", "naive")
ENGINE_PHASES = (*PHASES, "other")


# ---------------------------------------------------------------------------------------- CLI
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", default="4,8,16", help="comma-separated K values (tasks per step)")
    parser.add_argument("--naive-tasks", default="16", help="K values at which the naive baseline runs")
    parser.add_argument("--world", type=int, default=2, help="data-parallel ranks N")
    parser.add_argument(
        "--steps", type=int, default=12, help="timed rounds per K (each runs every mode once)"
    )
    parser.add_argument("--naive-steps", type=int, default=4, help="timed rounds of naive against plain")
    parser.add_argument("--methods", default="upgrad,mgda,imtl_g,aligned_mtl", help="Gramian modes to time")
    parser.add_argument("--method-tasks", default="16", help="K values at which the methods run")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds per K before the timed ones")
    parser.add_argument("--phase-steps", type=int, default=3, help="instrumented steps per K and mode")
    parser.add_argument("--gram-dtype", default="fp32", choices=("fp32", "fp64"))
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--ffn", type=int, default=512)
    parser.add_argument("--vocab", type=int, default=512)
    parser.add_argument("--seq", type=int, default=64, help="tokens per sequence")
    parser.add_argument("--batch", type=int, default=8, help="sequences per micro-batch per rank")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------------------- model
class TinyLM(nn.Module):
    """Causal LM: embeddings, pre-norm TransformerEncoder (``encoder.layers.N``), LayerNorm, head."""

    def __init__(self, vocab: int, d_model: int, layers: int, heads: int, ffn: int, seq: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(seq, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, heads, ffn, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(seq), persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Next-token cross-entropy of ``tokens[B, seq + 1]``."""
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        positions = torch.arange(inputs.shape[1], device=inputs.device)
        h = self.embed(inputs) + self.pos(positions)
        h = self.encoder(h, mask=self.mask, is_causal=True)
        logits = self.head(self.norm(h))
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def make_model(args: argparse.Namespace) -> TinyLM:
    torch.manual_seed(0)
    return TinyLM(args.vocab, args.d_model, args.layers, args.heads, args.ffn, args.seq)


def task_batch(args: argparse.Namespace, rnd: int, task: int, num_tasks: int, rank: int) -> torch.Tensor:
    """Tokens of one micro-batch; task k draws from its own window of the vocabulary."""
    gen = torch.Generator().manual_seed(1_000_003 * rnd + 1009 * task + rank)
    window = max(args.vocab // 2, 2)
    offset = (task * (args.vocab - window)) // max(num_tasks - 1, 1)
    return torch.randint(0, window, (args.batch, args.seq + 1), generator=gen) + offset


def device() -> torch.device:
    import deepspeed

    return torch.device(deepspeed.get_accelerator().current_device_name())


# ---------------------------------------------------------------------------------------- engines
def ds_config(args: argparse.Namespace, num_tasks: int, mode: str) -> dict[str, Any]:
    return {
        "train_micro_batch_size_per_gpu": args.batch,
        "gradient_accumulation_steps": num_tasks,
        "gradient_clipping": 1.0,
        "steps_per_print": 10**9,
        "zero_optimization": {"stage": 2},
        "gradvac": {
            "mode": mode,
            "tasks": task_names(num_tasks),
            "beta": 0.01,
            "gram_dtype": args.gram_dtype,
            "consistency_check_interval": 0,
            "log_interval": 0,
        },
    }


def task_names(num_tasks: int) -> list[str]:
    return [f"task{k}" for k in range(num_tasks)]


class Seams:
    """The observer and comm one GradVacEngine is built with; both idle until switched on."""

    def __init__(self) -> None:
        self.timer = PhaseTimer(synchronize=True)
        self.comm = CountingComm()

    def switch(self, on: bool) -> None:
        self.timer.active = self.comm.active = on


def build(args: argparse.Namespace, num_tasks: int, mode: str) -> tuple[Any, Seams | None]:
    """A GradVacEngine (``mode`` gradvac/sum), plain DeepSpeed (plain) or the naive baseline."""
    import deepspeed

    from gradvac_ds.engine import GradVacEngine, split_config

    model = make_model(args)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    if mode == "naive":
        model.to(device())
        names = task_names(num_tasks)
        return NaiveDataParallelGradVac(model, optimizer, names, beta=0.01, clip=1.0), None
    ds_cfg, gv_cfg = split_config(ds_config(args, num_tasks, "sum" if mode == "plain" else mode))
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=ds_cfg)
    if mode == "plain":
        return engine, None
    seams = Seams()
    return GradVacEngine(engine, gv_cfg, comm=seams.comm, observer=seams.timer), seams


def run_step(engine, mode: str, batches: list[torch.Tensor]) -> tuple[float, float, float]:
    """One optimizer step over one micro-batch per task.

    Returns wall seconds of the forward/backward part (including GradVac's capture after each task)
    and of the step, and the CPU seconds of the whole step consumed by this process (all threads).
    """
    import deepspeed

    sync = deepspeed.get_accelerator().synchronize
    batches = [b.to(device()) for b in batches]
    sync()
    cpu = time.process_time()
    start = time.perf_counter()
    if mode == "naive":
        names = task_names(len(batches))
        middle = start
        engine.step({names[k]: [tokens] for k, tokens in enumerate(batches)})
    elif mode == "plain":
        for tokens in batches[:-1]:
            engine.backward(engine(tokens))
            engine.step()  # no-op off the accumulation boundary, as DeepSpeed's training loop expects
        engine.backward(engine(batches[-1]))
        sync()
        middle = time.perf_counter()
        engine.step()
    else:
        for k, tokens in enumerate(batches):
            with engine.task(f"task{k}", micro_batches=1):
                engine.backward(engine(tokens))
        sync()
        middle = time.perf_counter()
        engine.step()
    sync()
    end = time.perf_counter()
    return middle - start, end - middle, time.process_time() - cpu


# ---------------------------------------------------------------------------------------- instrumentation
def instrumented(engines: dict[str, Any], seams: dict[str, Seams], args, num_tasks: int, first_round: int):
    """``--phase-steps`` steps of every mode with DeepSpeed's traffic counted; for the GradVac modes
    also the engine's phases (through its observer) and its own collectives (through its comm)."""
    from deepspeed import comm as dist

    rank = dist.get_rank()
    phases: dict[str, list[list[float]]] = {m: [] for m in seams}
    traffic: dict[str, dict[str, float]] = {}
    own_calls: dict[str, list[tuple[str, int]]] = {}
    for mode, engine in engines.items():
        totals: dict[str, float] = {}
        for s in range(args.phase_steps):
            batches = [task_batch(args, first_round + s, k, num_tasks, rank) for k in range(num_tasks)]
            if mode in seams:
                seams[mode].switch(True)
            dist.barrier()
            with deepspeed_traffic() as counted:
                start = time.perf_counter()
                run_step(engine, mode, batches)
                total = time.perf_counter() - start
            for op, size in counted.items():
                totals[op] = totals.get(op, 0.0) + size / args.phase_steps
            if mode in seams:
                seams[mode].switch(False)
                took = seams[mode].timer.take()
                took["other"] = total - sum(took.values())  # forward/backward and bookkeeping
                phases[mode].append([1e3 * took.get(name, 0.0) for name in ENGINE_PHASES])
                own_calls.setdefault(mode, []).extend(seams[mode].comm.take())
        traffic[mode] = totals
    out = {}
    for mode in seams:
        best = torch.tensor(phases[mode], dtype=torch.float64).min(dim=0).values
        dist.all_reduce(best, op=dist.ReduceOp.MAX)
        out[f"phases_ms_{mode}"] = dict(zip(ENGINE_PHASES, best.tolist(), strict=True))
    calls = own_calls.get("gradvac", [])
    out["engine_calls_per_step"] = len(calls) / args.phase_steps
    out["engine_bytes_per_step"] = sum(size for _, size in calls) / args.phase_steps
    out["traffic_bytes_per_step"] = {m: dict(sorted(t.items())) for m, t in traffic.items()}
    return out


# ---------------------------------------------------------------------------------------- worker
def timed_rounds(engines, orders: list[tuple[str, ...]], args, num_tasks: int, rounds: int, first: int):
    """Run ``rounds`` rounds, round r running one step of each mode in ``orders[r % len(orders)]``
    on the same batches; returns per mode the (slower-rank) wall seconds of forward/backward and of
    the step, and the CPU seconds of all ranks, without the first ``args.warmup`` rounds."""
    from deepspeed import comm as dist

    rank = dist.get_rank()
    modes = list(orders[0])
    raw: dict[str, list[list[float]]] = {m: [[], [], []] for m in modes}
    for rnd in range(rounds):
        batches = [task_batch(args, first + rnd, k, num_tasks, rank) for k in range(num_tasks)]
        for mode in orders[rnd % len(orders)]:
            dist.barrier()
            for series, value in zip(raw[mode], run_step(engines[mode], mode, batches), strict=True):
                series.append(value)
        if rank == 0:
            print(f"[bench_engine] K={num_tasks} {'/'.join(modes)} round {rnd + 1}/{rounds}", file=sys.stderr)
    wall = torch.tensor([raw[m][:2] for m in modes], dtype=torch.float64)
    dist.all_reduce(wall, op=dist.ReduceOp.MAX)  # the slower rank per step
    cpu = torch.tensor([raw[m][2] for m in modes], dtype=torch.float64)
    dist.all_reduce(cpu)  # CPU seconds of all ranks together
    keep = slice(args.warmup, None)
    fb = {m: wall[i, 0, keep].tolist() for i, m in enumerate(modes)}
    st = {m: wall[i, 1, keep].tolist() for i, m in enumerate(modes)}
    total = {m: [a + b for a, b in zip(fb[m], st[m], strict=True)] for m in modes}
    return fb, st, total, {m: cpu[i, keep].tolist() for i, m in enumerate(modes)}


def paired(num: str, den: str, times: dict[str, list[float]]) -> float | None:
    """Median over rounds of the per-round ratio num / den (None when ``num`` did not run)."""
    if num not in times or den not in times:
        return None
    return statistics.median(a / b for a, b in zip(times[num], times[den], strict=True))


def measure(args: argparse.Namespace, num_tasks: int) -> dict[str, Any]:
    """Everything for one K; identical on every rank after the final reductions.

    The three DeepSpeed modes run in rounds that cycle through all six orders of the three, so each
    mode runs equally often at each position and after each other mode. The naive baseline, whose
    float64 copies of K full gradients disturb the caches and the allocator of whatever runs next,
    is timed in rounds of its own against plain DeepSpeed (alternating which goes first); its ratio
    to gradvac is (naive / plain) / (gradvac / plain).
    """
    from deepspeed import comm as dist

    world = dist.get_world_size()
    naive_ks = {int(k) for k in args.naive_tasks.split(",") if k}
    modes = [m for m in MODES if m != "naive" or num_tasks in naive_ks]
    built = {mode: build(args, num_tasks, mode) for mode in modes}
    engines = {mode: engine for mode, (engine, _) in built.items()}
    seams = {mode: s for mode, (_, s) in built.items() if s is not None}
    gv = engines["gradvac"]
    num_params = sum(p.numel() for p in gv.module.parameters())
    rounds = args.warmup + args.steps
    orders = list(itertools.permutations(("gradvac", "sum", "plain")))
    fb, st, total, cpu_total = timed_rounds(engines, orders, args, num_tasks, rounds, first=0)
    ratio = {f"{a}/{b}": paired(a, b, total) for a, b in RATIOS}
    cpu_ratio = {f"{a}/{b}": paired(a, b, cpu_total) for a, b in RATIOS}
    best_ratio = {f"{a}/{b}": min(total[a]) / min(total[b]) for a, b in RATIOS}
    if "naive" in engines:
        pair_orders = [("plain", "naive"), ("naive", "plain")]
        n_fb, n_st, n_total, n_cpu = timed_rounds(
            engines, pair_orders, args, num_tasks, args.warmup + args.naive_steps, first=rounds
        )
        fb["naive"], st["naive"], total["naive"], cpu_total["naive"] = (
            n_fb["naive"], n_st["naive"], n_total["naive"], n_cpu["naive"]
        )  # fmt: skip
        for table, times in ((ratio, n_total), (cpu_ratio, n_cpu)):
            table["naive/plain"] = paired("naive", "plain", times)
            table["naive/gradvac"] = table["naive/plain"] / table["gradvac/plain"]
        best_ratio["naive/plain"] = min(n_total["naive"]) / min(n_total["plain"])
        best_ratio["naive/gradvac"] = best_ratio["naive/plain"] / best_ratio["gradvac/plain"]

    methods = (
        [m for m in args.methods.split(",") if m] if str(num_tasks) in args.method_tasks.split(",") else []
    )
    method_ratio, method_cpu_ratio = {}, {}
    if methods:
        engines.update({m: build(args, num_tasks, m)[0] for m in methods})
        lineup = ["plain", *methods]
        rotations = [tuple(lineup[i:] + lineup[:i]) for i in range(len(lineup))]
        start = rounds + args.warmup + args.naive_steps
        _, _, m_total, m_cpu = timed_rounds(engines, rotations, args, num_tasks, rounds, first=start)
        method_ratio = {m: paired(m, "plain", m_total) for m in methods}
        method_cpu_ratio = {m: paired(m, "plain", m_cpu) for m in methods}

    buffers = torch.tensor([float(gv.task_buffer_bytes)], dtype=torch.float64)
    dist.all_reduce(buffers, op=dist.ReduceOp.MAX)
    ideal = num_tasks * num_params / world * 4
    instr = instrumented(engines, seams, args, num_tasks, first_round=rounds + args.naive_steps + args.warmup)
    num_groups = gv.grouping.num_groups
    result = {
        "K": num_tasks,
        "P": num_params,
        "L": num_groups,
        "modes": modes,
        "groups": list(gv.grouping.group_names),
        "median_step_ms": {m: 1e3 * statistics.median(total[m]) for m in modes},
        "median_fwd_bwd_ms": {m: 1e3 * statistics.median(fb[m]) for m in modes},
        "median_opt_step_ms": {m: 1e3 * statistics.median(st[m]) for m in modes},
        "best_step_ms": {m: 1e3 * min(total[m]) for m in modes},
        "median_cpu_ms": {m: 1e3 * statistics.median(cpu_total[m]) for m in modes},
        "ratio": ratio,
        "cpu_ratio": cpu_ratio,
        "method_ratio": method_ratio,
        "method_cpu_ratio": method_cpu_ratio,
        "best_ratio": best_ratio,
        "task_buffer_bytes": int(buffers.item()),
        "naive_task_buffer_bytes": num_tasks * num_params * 4,
        "ideal_KP_over_N_bytes": ideal,
        "task_buffer_over_ideal": buffers.item() / ideal,
        "expected_engine_bytes_per_step": (num_groups * num_tasks**2 + SIGNATURE_SLOTS) * 8,
        **instr,
    }
    del engines, gv, built
    gc.collect()
    return result


RATIOS = (
    ("gradvac", "plain"),
    ("gradvac", "sum"),
    ("sum", "plain"),
)


def worker(args: argparse.Namespace) -> None:
    import deepspeed
    from deepspeed import comm as dist

    from gradvac_ds.training.build import leave_together

    torch.set_num_threads(1)
    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    deepspeed.utils.logger.setLevel(logging.WARNING)
    accelerator = deepspeed.get_accelerator()
    deepspeed.init_distributed(dist_backend="gloo" if accelerator.device_name() == "cpu" else None)
    if dist.get_world_size() != args.world:
        raise SystemExit(f"bench_engine was told --world {args.world}, got {dist.get_world_size()} ranks")
    load_before = os.getloadavg()[0]
    per_k = [measure(args, int(k)) for k in args.tasks.split(",")]
    if dist.get_rank() == 0:
        config = {k: v for k, v in vars(args).items() if k not in ("worker", "out")}
        load = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        report = {
            "config": config,
            "load_average_1min": load,
            "accelerator": deepspeed.get_accelerator().device_name(),
            "per_k": per_k,
        }
        Path(args.out).write_text(json.dumps(report))
    leave_together()


# ---------------------------------------------------------------------------------------- report
def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The final JSON line: the headline keys first, then memory and traffic, then per-K details."""
    by_k = {r["K"]: r for r in report["per_k"]}
    top = max(by_k)
    head = 16 if 16 in by_k else top
    out: dict[str, Any] = {
        f"step_time_ratio_vs_plain_k{head}": _round(by_k[head]["ratio"]["gradvac/plain"]),
        f"cpu_time_ratio_vs_plain_k{head}": _round(by_k[head]["cpu_ratio"]["gradvac/plain"]),
    }
    for k in sorted(by_k, reverse=True):
        if by_k[k]["method_ratio"]:
            out[f"method_step_time_ratio_vs_plain_k{k}"] = {
                m: _round(v) for m, v in by_k[k]["method_ratio"].items()
            }
            out[f"method_cpu_time_ratio_vs_plain_k{k}"] = {
                m: _round(v) for m, v in by_k[k]["method_cpu_ratio"].items()
            }
    for k in sorted(by_k, reverse=True):
        out[f"step_time_ratio_vs_sum_k{k}"] = _round(by_k[k]["ratio"]["gradvac/sum"])
    r = by_k[top]
    out["task_buffer_bytes_over_KP_over_N"] = round(r["task_buffer_over_ideal"], 6)
    out["engine_allreduce_bytes_per_step"] = r["engine_bytes_per_step"]
    out["expected_allreduce_bytes_per_step"] = r["expected_engine_bytes_per_step"]
    out["bytes_for_k"] = top
    naive = [k for k in sorted(by_k) if "naive" in by_k[k]["modes"]]
    for k in naive:
        q = by_k[k]
        out[f"naive_k{k}"] = {
            "step_time_ratio_naive_over_gradvac": _round(q["ratio"]["naive/gradvac"]),
            "step_time_ratio_naive_over_plain": _round(q["ratio"]["naive/plain"]),
            "task_gradient_bytes_per_rank": {
                "naive": q["naive_task_buffer_bytes"], "gradvac_ds": q["task_buffer_bytes"]
            },
            "traffic_bytes_per_step": {
                m: sum(q["traffic_bytes_per_step"][m].values()) for m in ("naive", "gradvac", "plain")
            },
        }  # fmt: skip
    for k, q in sorted(by_k.items()):
        out[f"k{k}"] = {
            "ratio": {name: _round(v) for name, v in q["ratio"].items() if v is not None},
            "cpu_ratio": {name: _round(v) for name, v in q["cpu_ratio"].items() if v is not None},
            "best_ratio": {name: _round(v) for name, v in q["best_ratio"].items() if v is not None},
            "median_step_ms": {m: round(v, 1) for m, v in q["median_step_ms"].items()},
            "phases_ms_gradvac": {m: round(v, 2) for m, v in q["phases_ms_gradvac"].items()},
        }
    first = report["per_k"][0]
    out["P"], out["L"], out["world"] = first["P"], first["L"], report["config"]["world"]
    out["accelerator"] = report["accelerator"]
    out["load_average_1min"] = report["load_average_1min"]
    out["config"] = report["config"]
    return out


def emit(report: dict[str, Any]) -> None:
    """Print the tables, then the summary JSON as the last line."""
    cfg, rows = report["config"], report["per_k"]
    first = rows[0]
    print(
        f"GradVacEngine on ZeRO-2 fp32, {cfg['world']} ranks ({report['accelerator']}): TinyLM "
        f"layers={cfg['layers']} d={cfg['d_model']} ffn={cfg['ffn']} vocab={cfg['vocab']} "
        f"micro-batch={cfg['batch']}x{cfg['seq']} tokens/rank; P={first['P']:,} params, L={first['L']} "
        f"groups; Gram {cfg['gram_dtype']}; {cfg['steps']} timed rounds after {cfg['warmup']} warm-up"
    )
    load = report["load_average_1min"]
    print(
        f"1-min load average on this {os.cpu_count()}-CPU box: {load[0]:.1f} before, {load[1]:.1f} after "
        "(other processes compete with the ranks when it exceeds the CPU count)\n"
    )

    def cell(q: dict, key: str, mode: str) -> float | None:
        return q[key].get(mode)

    times = [("K", 3, ""), *((f"{m} ms", 11, ".1f") for m in MODES)]
    ratios = [(name, 14, ".4f") for name in ("gradvac/plain", "gradvac/sum", "sum/plain", "naive/plain")]
    for title, key, ratio_key in (
        ("wall step time (median, slower rank; ratios = median of per-round paired ratios)",
         "median_step_ms", "ratio"),
        ("fastest step of each mode (wall ms; contention only adds time)", "best_step_ms", "best_ratio"),
        ("CPU time per step, all ranks together (median; paired ratios)", "median_cpu_ms", "cpu_ratio"),
    ):  # fmt: skip
        print_table(
            title,
            [*times, *ratios],
            [
                [q["K"], *(cell(q, key, m) for m in MODES), *(q[ratio_key].get(n) for n, _, _ in ratios)]
                for q in rows
            ],
        )
    print_table(
        "task gradients held per rank; payload bytes per step of all collectives (DeepSpeed's comms_logger)",
        [("K", 3, ""), ("gradvac_ds B", 14, ","), ("K*P/N*4 B", 13, ",.0f"), ("naive K*P*4 B", 14, ","),
         ("plain B/step", 14, ",.0f"), ("gradvac B/step", 15, ",.0f"), ("naive B/step", 14, ",.0f"),
         ("engine B/step", 14, ",.0f"), ("(L*K^2+4)*8", 12, ",")],
        [
            [q["K"], q["task_buffer_bytes"], q["ideal_KP_over_N_bytes"], q["naive_task_buffer_bytes"],
             *(sum(q["traffic_bytes_per_step"][m].values()) if m in q["traffic_bytes_per_step"] else None
               for m in ("plain", "gradvac", "naive")),
             q["engine_bytes_per_step"], q["expected_engine_bytes_per_step"]]
            for q in rows
        ],
    )  # fmt: skip
    print_table(
        f"GradVac phases per step, ms (best of {cfg['phase_steps']} instrumented steps, max rank, device "
        "synchronised per phase)\ncapture = copy + clear after each task, summed over tasks; all_reduce "
        "includes rank skew; other = forward/backward and bookkeeping",
        [("K", 3, ""), ("mode", 8, ""), *((name, 11, ".2f") for name in ENGINE_PHASES)],
        [
            [q["K"], mode, *(q[f"phases_ms_{mode}"].get(n, math.nan) for n in ENGINE_PHASES)]
            for q in rows
            for mode in ("gradvac", "sum")
        ],
    )
    methods = [q for q in rows if q["method_ratio"]]
    if methods:
        print_table(
            "Gramian methods against plain DeepSpeed (median of per-round paired ratios; rounds rotate "
            "the order of plain and the methods)",
            [("K", 3, ""), ("mode", 12, ""), ("wall ratio", 11, ".4f"), ("CPU ratio", 11, ".4f")],
            [
                [q["K"], m, q["method_ratio"][m], q["method_cpu_ratio"][m]]
                for q in methods
                for m in q["method_ratio"]
            ],
        )
    print(json.dumps(summary(report)))


def main() -> None:
    args = parse_args()
    if args.worker:
        worker(args)
        return
    report = launch_workers(__file__, sys.argv[1:], args.world, "bench_engine")
    if report is None:
        sys.exit(1)
    emit(report)


if __name__ == "__main__":
    main()
