"""Training throughput of ``launch/train.py`` against a plain-PyTorch anchor, timed in one run.

    python benchmarks/bench_train.py                       # the demo config, 120 timed steps
    python benchmarks/bench_train.py --steps 40 --copy-steps 0

1. **Trainer**: ``deepspeed --num_gpus R launch/train.py`` on the run config (mode ``sum``, no
   validation or checkpoint inside the timed steps) for each process x thread layout of
   ``--layouts`` (e.g. ``2x1``: 2 ranks of 1 thread; ``1x2``: 1 rank of 2 threads); the trainer's
   own ``throughput.json`` gives its tokens/s over the optimizer steps alone.
2. **Plain PyTorch**: the same megatron-core model (same preset, overrides and seed), the same
   batches (the config's schedule on one data-parallel rank: every step's micro-batches of all
   ranks), ``torch.optim.AdamW`` with the config's rate and gradient clipping, in this process with
   all cores' threads, no DeepSpeed.
3. **FLOPs**: ``torch.utils.flop_counter.FlopCounterMode`` counts forward + backward of every timed
   plain batch (matrix products, attention); achieved FLOP/s = counted FLOPs / wall time of each
   side, against the box's fp32 GEMM peak measured here (``torch.mm`` of 2048 x 2048, all threads).
4. **Copy task** (``--copy-steps``, 0 skips it): ``configs/sanity.yaml`` with the copy task only,
   trained and decoded by the trainer; its test exact match.

The last line is one JSON object: ``tokens_per_s`` (the trainer in the first layout),
``plain_torch_tokens_per_s``, ``ratio_vs_plain_torch``, ``achieved_flops_fraction_of_gemm_peak``,
``copy_task_exact_match``, then the per-layout figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import free_port

REPO = Path(__file__).resolve().parents[1]
PREPARE = [sys.executable, "-m", "gradvac_ds.training.data.prepare", "--quiet"]


def _sets(overrides: list[str]) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


def _env(threads: int) -> dict[str, str]:
    return dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore")


def _run(cmd: list[str], threads: int) -> None:
    proc = subprocess.run(cmd, cwd=REPO, env=_env(threads), capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd[:6])} ... failed (rc={proc.returncode}):\n{proc.stderr[-4000:]}")


def trainer_throughput(config: str, overrides: list[str], ranks: int, threads: int, run_dir: Path) -> dict:
    """``launch/train.py`` under the deepspeed launcher on ``ranks`` processes of ``threads`` threads."""
    sets = _sets([*overrides, f"run_dir={run_dir}"])
    cmd = [
        sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", str(ranks),
        "--master_port", str(free_port()), "launch/train.py", "--config", config, "--mode", "sum",
        "--overwrite", *sets,
    ]  # fmt: skip
    _run(cmd, threads)
    return json.loads((run_dir / "sum" / "throughput.json").read_text())


def gemm_peak_flops(threads: int, size: int = 2048, repeats: int = 10) -> float:
    """Best fp32 ``torch.mm`` FLOP/s of ``size`` x ``size`` matrices on ``threads`` threads."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def plain_torch(
    config_path: str, overrides: list[str], steps: int, warmup: int, threads: int, ranks: int
) -> dict:
    """The plain-PyTorch loop (module docstring, 2 and 3): tokens/s and counted FLOP/s; a step runs
    the micro-batches that ``ranks`` data-parallel ranks of the trainer run in one of its steps."""
    import deepspeed
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from gradvac_ds.training.build import build_network, build_optimizer, leave_together
    from gradvac_ds.training.config_file import parse_overrides
    from gradvac_ds.training.data import open_prepared
    from gradvac_ds.training.megatron import init_model_parallel
    from gradvac_ds.training.run_config import RunConfig

    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1")
    os.environ["MASTER_PORT"] = str(free_port())
    deepspeed.init_distributed("gloo")
    init_model_parallel(1)
    torch.set_num_threads(threads)
    config = RunConfig.load(REPO / config_path, parse_overrides(overrides))
    data = open_prepared(config.data)
    model = build_network(config, data, "cpu")
    optimizer = build_optimizer(config, model)
    clip = config.deepspeed.get("gradient_clipping", 0.0)
    schedules = [data.schedule(rank, ranks) for rank in range(ranks)]
    steps_batches = []
    for _ in range(warmup + steps):
        per_rank = [schedule.next_step() for schedule in schedules]
        steps_batches.append([batch for step in per_rank for batches in step.values() for batch in batches])

    def step(batches: list) -> None:
        for batch in batches:
            (model(*batch.inputs) / len(batches)).backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for batches in steps_batches[:warmup]:
        step(batches)
    timed = steps_batches[warmup:]
    start = time.perf_counter()
    for batches in timed:
        step(batches)
    seconds = time.perf_counter() - start
    counter = FlopCounterMode(display=False)
    with counter:
        for batches in timed:
            for batch in batches:
                model(*batch.inputs).backward()
    optimizer.zero_grad(set_to_none=True)
    leave_together()
    tokens = sum(batch.num_tgt_tokens for batches in timed for batch in batches)
    return {
        "steps": steps,
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
        "flops": counter.get_total_flops(),
        "flops_per_token": counter.get_total_flops() / tokens,
    }


def copy_task_exact_match(steps: int, threads: int, run_dir: Path) -> float:
    """Exact match of the trainer on the copy task (configs/sanity.yaml, copy only) after ``steps``."""
    overrides = ["data.sanity.tasks=[copy]", "data.vocab.vocab_size=127", f"training.steps={steps}",
                 f"training.eval_interval={steps}", f"training.checkpoint_interval={steps}",
                 f"run_dir={run_dir}"]  # fmt: skip
    _run([*PREPARE, "--config", "configs/sanity.yaml", *_sets(overrides)], 1)
    _run([sys.executable, "launch/train.py", "--config", "configs/sanity.yaml", "--overwrite",
          *_sets(overrides)], threads)  # fmt: skip
    scores = json.loads((run_dir / "bleu.json").read_text())["sum"]
    return scores["zxx-cpy"]["exact_match"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="configs/demo.yaml")
    parser.add_argument("--steps", type=int, default=120, help="timed optimizer steps per side")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps before the plain loop")
    parser.add_argument("--layouts", default="2x1,1x2", help="ranks x threads of the trainer runs")
    parser.add_argument("--copy-steps", type=int, default=600, help="copy-task training steps (0: skip)")
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ranks", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a field")
    args = parser.parse_args()
    threads = os.cpu_count() or 1
    # The trainer's timed steps: validation and checkpoints only after the last one.
    overrides = [*args.set, f"training.steps={args.steps}", f"training.eval_interval={args.steps}",
                 f"training.checkpoint_interval={args.steps}", "evaluation.max_sentences=1"]  # fmt: skip
    if args.plain:
        print(json.dumps(plain_torch(args.config, overrides, args.steps, args.warmup, threads, args.ranks)))
        return
    _run([*PREPARE, "--config", args.config, *_sets(overrides)], 1)
    layouts = [tuple(int(x) for x in layout.split("x")) for layout in args.layouts.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        trainer = {}
        for ranks, per_rank in layouts:
            run_dir = Path(tmp) / f"r{ranks}t{per_rank}"
            run = trainer_throughput(args.config, overrides, ranks, per_rank, run_dir)
            trainer[f"{ranks}x{per_rank}"] = run
            print(f"trainer {ranks} rank(s) x {per_rank} thread(s): {run['tokens_per_s']:,.0f} tokens/s")
        # the plain loop in a fresh process with all threads (this one may have loaded other libraries)
        proc = subprocess.run(
            [sys.executable, __file__, "--plain", "--config", args.config, "--steps", str(args.steps),
             "--warmup", str(args.warmup), "--ranks", str(layouts[0][0]), *_sets(args.set)],
            cwd=REPO, env=_env(threads), capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode:
            sys.exit(f"plain loop failed:\n{proc.stderr[-4000:]}")
        plain = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"plain PyTorch, 1 process x {threads} threads: {plain['tokens_per_s']:,.0f} tokens/s")
        peak = gemm_peak_flops(threads)
        exact = None
        if args.copy_steps:
            exact = copy_task_exact_match(args.copy_steps, threads, Path(tmp) / "copy")
    first = next(iter(trainer))
    flops_per_token = plain["flops_per_token"]
    result = {
        "tokens_per_s": trainer[first]["tokens_per_s"],
        "plain_torch_tokens_per_s": plain["tokens_per_s"],
        "ratio_vs_plain_torch": trainer[first]["tokens_per_s"] / plain["tokens_per_s"],
        "achieved_flops_fraction_of_gemm_peak": trainer[first]["tokens_per_s"] * flops_per_token / peak,
        "copy_task_exact_match": exact,
        "layout": first,
        "ratio_vs_plain_torch_by_layout": {
            name: run["tokens_per_s"] / plain["tokens_per_s"] for name, run in trainer.items()
        },
        "plain_flops_fraction_of_gemm_peak": plain["tokens_per_s"] * flops_per_token / peak,
        "flops_per_token": flops_per_token,
        "gemm_peak_gflops": peak / 1e9,
        "threads": threads,
        "steps": args.steps,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
