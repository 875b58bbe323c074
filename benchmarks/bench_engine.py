"""GradVacEngine overhead inside DeepSpeed ZeRO-2: step time, task-buffer memory, hook traffic.

One command runs everything: ``python benchmarks/bench_engine.py`` re-launches this file on two
gloo ranks (``python -m torch.distributed.run --nproc_per_node 2``, ``DS_ACCELERATOR=cpu``, one
thread per rank), collects rank 0's results, and prints a table followed by one JSON line.

Workload: a small causal language model (token + position embeddings, a pre-norm
``nn.TransformerEncoder`` whose parameters are named ``encoder.layers.N.*``, final LayerNorm, output
head), fp32, ZeRO stage 2, data parallel over N = 2 ranks. For each K in ``--tasks`` (default
4, 8, 16) every step runs K tasks with one micro-batch each, so ``gradient_accumulation_steps = K``
and each task's data comes from its own slice of the vocabulary. Default granularity ``layer``.

What is measured, per K:

* **Step time.** Three engines built from the same initial weights: GradVacEngine with
  ``mode: gradvac``, GradVacEngine with ``mode: sum``, and plain DeepSpeed
  (``engine.backward``/``engine.step`` per micro-batch, no GradVac). They run in the same process,
  one step each per round, with the order rotated every round so that each mode takes each
  position equally often (drift and ordering effects cancel); every round feeds the same batches
  to all three. The first ``--warmup`` rounds are dropped. A step's time is wall clock from a
  barrier to the end of its optimizer step, the slower of the two ranks. Reported ratios are the
  median over rounds of the per-round ratios (paired, so a slow round for the whole box cancels).
  Also reported: the ratio of each mode's fastest step (contention from other processes only ever
  adds time) and the same paired ratios on CPU time (``time.process_time``, all threads, both
  ranks summed), which does not count time spent descheduled on a busy machine.
  Note that ``mode: sum`` still captures the task gradients, builds and all-reduces the Gram and
  combines (with unit weights): gradvac/sum isolates the solver loop, gradvac/plain is the full
  cost of GradVac over stock DeepSpeed.
* **Task-buffer memory.** ``GradVacEngine.task_buffer_bytes`` on each rank (the peak: buffers are
  allocated once for the K known tasks) against the ideal K * P / N * 4 bytes (P = model
  parameters); the excess is ZeRO's partition padding.
* **Hook traffic.** After the timed rounds, ``--phase-steps`` more ``mode: gradvac`` steps run
  with ``gradvac_ds.engine.dist`` replaced by a proxy that counts (and times) every collective the
  engine issues itself, with ``consistency_check_interval: 0``; expected L * K^2 * 8 bytes per step
  (one float64 all-reduce of the [L, K, K] Gram; L = ``gv.grouping.num_groups``). DeepSpeed's own
  per-micro-batch reduce-scatter is the same as plain DeepSpeed and is not counted.
* **Phases.** In the same instrumented steps, the engine's module-level ``accumulate_gram`` and
  ``combine_segments``, ``GradVacState.solve`` (the step's task orders and the solver), the
  proxy's ``all_reduce`` (which includes waiting for the other rank), the adapter's capture
  (``read_into`` + ``clear`` after each task) and DeepSpeed's optimizer ``step`` are wrapped with
  timers. The timed rounds run without any wrapper.

The last line of standard output is one JSON object whose first keys are
``step_time_ratio_k16``, ``step_time_ratio_k8``, ``step_time_ratio_k4`` (gradvac / sum),
``task_buffer_bytes_over_KP_over_N`` and the hook / expected all-reduce bytes per step (for the
largest K), followed by the per-K details.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import logging
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

MODES = ("gradvac", "sum", "plain")
PHASES = ("capture", "gram", "all-reduce", "solve", "combine", "deepspeed step", "gv.step other")
WORLD = 2


# ---------------------------------------------------------------------------------------- CLI
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", default="4,8,16", help="comma-separated K values (tasks per step)")
    parser.add_argument("--steps", type=int, default=8, help="timed rounds per K (each runs every mode once)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds per K before the timed ones")
    parser.add_argument("--phase-steps", type=int, default=3, help="instrumented gradvac steps per K")
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
            "tasks": [f"task{k}" for k in range(num_tasks)],
            "beta": 0.01,
            "consistency_check_interval": 0,
            "log_interval": 0,
        },
    }


def build(args: argparse.Namespace, num_tasks: int, mode: str):
    """A GradVacEngine (``mode`` gradvac/sum) or a plain DeepSpeed engine (``mode`` plain)."""
    import deepspeed

    from gradvac_ds.engine import GradVacEngine, split_config

    ds_cfg, gv_cfg = split_config(ds_config(args, num_tasks, "sum" if mode == "plain" else mode))
    model = make_model(args)
    engine, *_ = deepspeed.initialize(
        model=model, optimizer=torch.optim.Adam(model.parameters(), lr=1e-4), config=ds_cfg
    )
    return engine if mode == "plain" else GradVacEngine(engine, gv_cfg)


def run_step(engine, mode: str, batches: list[torch.Tensor]) -> tuple[float, float, float]:
    """One optimizer step over one micro-batch per task.

    Returns wall seconds of the forward/backward part (including GradVac's capture after each task)
    and of ``step()``, and the CPU seconds of the whole step consumed by this process (all threads).
    """
    cpu = time.process_time()
    start = time.perf_counter()
    if mode == "plain":
        for tokens in batches[:-1]:
            engine.backward(engine(tokens))
            engine.step()  # no-op off the accumulation boundary, as DeepSpeed's training loop expects
        engine.backward(engine(batches[-1]))
        middle = time.perf_counter()
        engine.step()
    else:
        for k, tokens in enumerate(batches):
            with engine.task(f"task{k}", micro_batches=1):
                engine.backward(engine(tokens))
        middle = time.perf_counter()
        engine.step()
    end = time.perf_counter()
    return middle - start, end - middle, time.process_time() - cpu


# ---------------------------------------------------------------------------------------- instrumentation
class PhaseClock:
    """Accumulates wall time per named phase (reset per step by the caller)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def take(self) -> dict[str, float]:
        """The accumulated seconds per phase; starts a new accumulation."""
        out, self.seconds = dict(self.seconds), defaultdict(float)
        return out

    def wrap(self, phase: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*a: Any, **kw: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.seconds[phase] += time.perf_counter() - start

        return timed


class CountingTimedComm:
    """Stands in for ``deepspeed.comm`` inside ``gradvac_ds.engine``: counts and times all-reduces."""

    def __init__(self, real: Any, clock: PhaseClock) -> None:
        self._real = real
        self._clock = clock
        self.calls: list[int] = []

    def all_reduce(self, tensor: torch.Tensor, *a: Any, **kw: Any) -> Any:
        self.calls.append(tensor.numel() * tensor.element_size())
        return self._clock.wrap("all-reduce", self._real.all_reduce)(tensor, *a, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def instrumented_steps(gv, args: argparse.Namespace, num_tasks: int, first_round: int) -> dict[str, Any]:
    """Run ``--phase-steps`` gradvac steps with the engine's phases timed and its collectives counted."""
    import gradvac_ds.engine as gv_engine

    clock = PhaseClock()
    proxy = CountingTimedComm(gv_engine.dist, clock)
    patched = ("dist", "accumulate_gram", "combine_segments")
    saved = {name: getattr(gv_engine, name) for name in patched}
    gv_engine.dist = proxy
    gv_engine.accumulate_gram = clock.wrap("gram", saved["accumulate_gram"])
    gv_engine.combine_segments = clock.wrap("combine", saved["combine_segments"])
    gv.state.solve = clock.wrap("solve", gv.state.solve)  # draws the step's orders and solves
    gv.adapter.read_into = clock.wrap("capture", gv.adapter.read_into)
    gv.adapter.clear = clock.wrap("capture", gv.adapter.clear)
    gv.engine.step = clock.wrap("deepspeed step", gv.engine.step)
    rank = int(os.environ["RANK"])
    per_step: list[list[float]] = []
    try:
        for s in range(args.phase_steps):
            rnd = first_round + s
            batches = [task_batch(args, rnd, k, num_tasks, rank) for k in range(num_tasks)]
            for k, tokens in enumerate(batches):
                with gv.task(f"task{k}", micro_batches=1):
                    gv.backward(gv(tokens))
            start = time.perf_counter()
            gv.step()
            total = time.perf_counter() - start
            phases = clock.take()
            inside = sum(v for k, v in phases.items() if k != "capture")
            phases["gv.step other"] = total - inside
            per_step.append([1e3 * phases.get(name, 0.0) for name in PHASES])
    finally:
        for name, fn in saved.items():
            setattr(gv_engine, name, fn)
        del gv.state.solve
    steps = len(per_step)
    return {
        "phases_ms_min": torch.tensor(per_step, dtype=torch.float64).min(dim=0).values.tolist(),
        "allreduce_calls_per_step": len(proxy.calls) / steps,
        "allreduce_bytes_per_step": sum(proxy.calls) / steps,
    }


# ---------------------------------------------------------------------------------------- worker
def measure(args: argparse.Namespace, num_tasks: int) -> dict[str, Any]:
    """Everything for one K; identical on every rank after the final reductions."""
    from deepspeed import comm as dist

    rank = dist.get_rank()
    engines = {mode: build(args, num_tasks, mode) for mode in MODES}
    gv = engines["gradvac"]
    num_params = sum(p.numel() for p in gv.module.parameters())
    rounds = args.warmup + args.steps
    fwd_bwd: dict[str, list[float]] = {m: [] for m in MODES}
    step: dict[str, list[float]] = {m: [] for m in MODES}
    cpu: dict[str, list[float]] = {m: [] for m in MODES}
    for rnd in range(rounds):
        batches = [task_batch(args, rnd, k, num_tasks, rank) for k in range(num_tasks)]
        order = MODES[rnd % len(MODES) :] + MODES[: rnd % len(MODES)]
        for mode in order:
            dist.barrier()
            a, b, c = run_step(engines[mode], mode, batches)
            fwd_bwd[mode].append(a)
            step[mode].append(b)
            cpu[mode].append(c)
        if rank == 0:
            print(f"[bench_engine] K={num_tasks} round {rnd + 1}/{rounds}", file=sys.stderr, flush=True)

    # slower rank per step
    stacked = torch.tensor([[fwd_bwd[m], step[m]] for m in MODES], dtype=torch.float64)
    dist.all_reduce(stacked, op=dist.ReduceOp.MAX)
    fb = {m: stacked[i, 0, args.warmup :].tolist() for i, m in enumerate(MODES)}
    st = {m: stacked[i, 1, args.warmup :].tolist() for i, m in enumerate(MODES)}
    total = {m: [a + b for a, b in zip(fb[m], st[m], strict=True)] for m in MODES}
    # CPU seconds of both ranks together
    cpu_sum = torch.tensor([cpu[m] for m in MODES], dtype=torch.float64)
    dist.all_reduce(cpu_sum)
    cpu_total = {m: cpu_sum[i, args.warmup :].tolist() for i, m in enumerate(MODES)}

    def paired(num: str, den: str, times: dict[str, list[float]]) -> float:
        return statistics.median(a / b for a, b in zip(times[num], times[den], strict=True))

    buffers = torch.tensor([float(gv.task_buffer_bytes)], dtype=torch.float64)
    dist.all_reduce(buffers, op=dist.ReduceOp.MAX)
    ideal = num_tasks * num_params / WORLD * 4
    instr = instrumented_steps(gv, args, num_tasks, first_round=rounds)
    phases = torch.tensor(instr["phases_ms_min"], dtype=torch.float64)
    dist.all_reduce(phases, op=dist.ReduceOp.MAX)
    num_groups = gv.grouping.num_groups
    result = {
        "K": num_tasks,
        "P": num_params,
        "L": num_groups,
        "groups": list(gv.grouping.group_names),
        "median_step_ms": {m: 1e3 * statistics.median(total[m]) for m in MODES},
        "median_fwd_bwd_ms": {m: 1e3 * statistics.median(fb[m]) for m in MODES},
        "median_opt_step_ms": {m: 1e3 * statistics.median(st[m]) for m in MODES},
        "ratio_gradvac_over_sum": paired("gradvac", "sum", total),
        "ratio_gradvac_over_plain": paired("gradvac", "plain", total),
        "ratio_sum_over_plain": paired("sum", "plain", total),
        "best_step_ms": {m: 1e3 * min(total[m]) for m in MODES},
        "best_ratio_gradvac_over_sum": min(total["gradvac"]) / min(total["sum"]),
        "best_ratio_gradvac_over_plain": min(total["gradvac"]) / min(total["plain"]),
        "median_cpu_ms": {m: 1e3 * statistics.median(cpu_total[m]) for m in MODES},
        "cpu_ratio_gradvac_over_sum": paired("gradvac", "sum", cpu_total),
        "cpu_ratio_gradvac_over_plain": paired("gradvac", "plain", cpu_total),
        "cpu_ratio_sum_over_plain": paired("sum", "plain", cpu_total),
        "task_buffer_bytes": int(buffers.item()),
        "ideal_KP_over_N_bytes": ideal,
        "task_buffer_over_ideal": buffers.item() / ideal,
        "hook_allreduce_calls_per_step": instr["allreduce_calls_per_step"],
        "hook_allreduce_bytes_per_step": instr["allreduce_bytes_per_step"],
        "expected_allreduce_bytes_per_step": num_groups * num_tasks**2 * 8,
        "phases_ms_max_over_ranks": dict(zip(PHASES, phases.tolist(), strict=True)),
    }
    del engines, gv
    gc.collect()
    return result


def worker(args: argparse.Namespace) -> None:
    import deepspeed
    from deepspeed import comm as dist

    torch.set_num_threads(1)
    logging.getLogger("DeepSpeed").setLevel(logging.WARNING)
    deepspeed.utils.logger.setLevel(logging.WARNING)
    deepspeed.init_distributed(dist_backend="gloo")
    if dist.get_world_size() != WORLD:
        raise SystemExit(f"bench_engine runs on {WORLD} ranks, got {dist.get_world_size()}")
    load_before = os.getloadavg()[0]
    per_k = [measure(args, int(k)) for k in args.tasks.split(",")]
    if dist.get_rank() == 0:
        config = {k: v for k, v in vars(args).items() if k not in ("worker", "out")}
        load = [round(load_before, 2), round(os.getloadavg()[0], 2)]
        report = {"config": config, "load_average_1min": load, "per_k": per_k}
        if args.out:
            Path(args.out).write_text(json.dumps(report))
        else:
            emit(report)
    dist.barrier()


# ---------------------------------------------------------------------------------------- report
def summary(report: dict[str, Any]) -> dict[str, Any]:
    """The final JSON line: the headline keys first, then per-K details."""
    by_k = {r["K"]: r for r in report["per_k"]}
    top = max(by_k)
    out: dict[str, Any] = {}
    for k in (16, 8, 4):
        out[f"step_time_ratio_k{k}"] = round(by_k[k]["ratio_gradvac_over_sum"], 4) if k in by_k else None
    out["task_buffer_bytes_over_KP_over_N"] = round(by_k[top]["task_buffer_over_ideal"], 6)
    out["hook_allreduce_bytes_per_step"] = by_k[top]["hook_allreduce_bytes_per_step"]
    out["expected_allreduce_bytes_per_step"] = by_k[top]["expected_allreduce_bytes_per_step"]
    out["bytes_for_k"] = top
    for k, r in sorted(by_k.items()):
        out[f"step_time_ratio_vs_plain_k{k}"] = round(r["ratio_gradvac_over_plain"], 4)
        out[f"sum_over_plain_k{k}"] = round(r["ratio_sum_over_plain"], 4)
        out[f"best_of_ratio_k{k}"] = round(r["best_ratio_gradvac_over_sum"], 4)
        out[f"best_of_ratio_vs_plain_k{k}"] = round(r["best_ratio_gradvac_over_plain"], 4)
        out[f"cpu_time_ratio_k{k}"] = round(r["cpu_ratio_gradvac_over_sum"], 4)
        out[f"cpu_time_ratio_vs_plain_k{k}"] = round(r["cpu_ratio_gradvac_over_plain"], 4)
        out[f"median_step_ms_k{k}"] = {m: round(v, 1) for m, v in r["median_step_ms"].items()}
        out[f"phases_ms_k{k}"] = {m: round(v, 2) for m, v in r["phases_ms_max_over_ranks"].items()}
    first = report["per_k"][0]
    out["P"], out["L"], out["world"] = first["P"], first["L"], WORLD
    out["load_average_1min"] = report["load_average_1min"]
    out["config"] = report["config"]
    return out


def print_table(title: str, columns: list[tuple[str, int, str]], rows: list[list[Any]]) -> None:
    """One table: ``columns`` are (header, width, format spec); each row holds one value per column."""
    print(title)
    head = " ".join(f"{name:>{width}}" for name, width, _ in columns)
    print(head)
    print("-" * len(head))
    for row in rows:
        print(
            " ".join(f"{value:>{width}{spec}}" for value, (_, width, spec) in zip(row, columns, strict=True))
        )
    print()


def emit(report: dict[str, Any]) -> None:
    """Print the tables, then the summary JSON as the last line."""
    cfg, rows = report["config"], report["per_k"]
    first = rows[0]
    print(
        f"GradVacEngine on ZeRO-2 fp32, {WORLD} ranks (gloo, CPU, 1 thread/rank): TinyLM "
        f"layers={cfg['layers']} d={cfg['d_model']} ffn={cfg['ffn']} vocab={cfg['vocab']} "
        f"micro-batch={cfg['batch']}x{cfg['seq']} tokens/rank; P={first['P']:,} params, "
        f"L={first['L']} groups; {cfg['steps']} timed rounds after {cfg['warmup']} warm-up"
    )
    load = report["load_average_1min"]
    print(
        f"1-min load average on this {os.cpu_count()}-CPU box: {load[0]:.1f} before, {load[1]:.1f} after "
        "(other processes compete with the 2 ranks when it exceeds the CPU count)\n"
    )
    times = [("K", 3, ""), ("gradvac ms", 11, ".1f"), ("sum ms", 9, ".1f"), ("plain ms", 9, ".1f")]
    ratios = [("gv/sum", 8, ".4f"), ("gv/plain", 9, ".4f")]
    print_table(
        "wall step time (median, slower rank; ratios = median of per-round paired ratios)",
        [*times, *ratios, ("sum/plain", 10, ".4f")],
        [
            [r["K"], *(r["median_step_ms"][m] for m in MODES), r["ratio_gradvac_over_sum"],
             r["ratio_gradvac_over_plain"], r["ratio_sum_over_plain"]]
            for r in rows
        ],
    )  # fmt: skip
    print_table(
        "fastest step of each mode (wall ms; contention only adds time: the minimum is least disturbed)",
        [*times, *ratios],
        [
            [r["K"], *(r["best_step_ms"][m] for m in MODES), r["best_ratio_gradvac_over_sum"],
             r["best_ratio_gradvac_over_plain"]]
            for r in rows
        ],
    )  # fmt: skip
    print_table(
        "CPU time per step, both ranks together (median; ratios = median of per-round paired ratios)",
        [*times, *ratios, ("sum/plain", 10, ".4f")],
        [
            [r["K"], *(r["median_cpu_ms"][m] for m in MODES), r["cpu_ratio_gradvac_over_sum"],
             r["cpu_ratio_gradvac_over_plain"], r["cpu_ratio_sum_over_plain"]]
            for r in rows
        ],
    )  # fmt: skip
    print_table(
        "split of a step (median ms): forward/backward of the K micro-batches incl. capture | step()",
        [("K", 3, ""), *((f"{m} {part}", 13, ".1f") for m in MODES for part in ("fwd/bwd", "step"))],
        [
            [r["K"], *(r[key][m] for m in MODES for key in ("median_fwd_bwd_ms", "median_opt_step_ms"))]
            for r in rows
        ],
    )
    print_table(
        "memory and hook communication per rank",
        [("K", 3, ""), ("task buffers B", 15, ","), ("K*P/N*4 B", 13, ",.0f"), ("ratio", 8, ".5f"),
         ("hook all-reduce B/step", 23, ",.0f"), ("L*K^2*8 B", 10, ","), ("calls/step", 11, ".1f")],
        [
            [r["K"], r["task_buffer_bytes"], r["ideal_KP_over_N_bytes"], r["task_buffer_over_ideal"],
             r["hook_allreduce_bytes_per_step"], r["expected_allreduce_bytes_per_step"],
             r["hook_allreduce_calls_per_step"]]
            for r in rows
        ],
    )  # fmt: skip
    print_table(
        f"GradVac phases per step, ms (best of {cfg['phase_steps']} instrumented gradvac steps, max rank)\n"
        "capture = copy + clear after each task, summed over the K tasks; all-reduce includes rank skew;\n"
        "gv.step other = gv.step() minus the phases inside it (task orders, checks, bookkeeping)",
        [("K", 3, ""), *((name, 14, ".2f") for name in PHASES)],
        [[r["K"], *(r["phases_ms_max_over_ranks"].get(n, math.nan) for n in PHASES)] for r in rows],
    )
    print(json.dumps(summary(report)))


# ---------------------------------------------------------------------------------------- launcher
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(argv: list[str]) -> int:
    """Re-run this file on two ranks; their logs go to stderr, the table and JSON to stdout."""
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    repo = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH", "")) if p)
    with tempfile.TemporaryDirectory(prefix="bench_engine_") as tmp:
        out = Path(tmp) / "report.json"
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(WORLD),
            "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
            str(Path(__file__).resolve()), *argv, "--worker", "--out", str(out),
        ]  # fmt: skip
        proc = subprocess.run(cmd, env=env, stdout=sys.stderr, stderr=sys.stderr)
        if proc.returncode != 0 or not out.exists():
            print(f"bench_engine: workers failed (rc={proc.returncode})", file=sys.stderr)
            return proc.returncode or 1
        emit(json.loads(out.read_text()))
    return 0


def main() -> None:
    args = parse_args()
    if args.worker:
        worker(args)
    else:
        sys.exit(launch(sys.argv[1:]))


if __name__ == "__main__":
    main()
