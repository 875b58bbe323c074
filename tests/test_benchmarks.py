"""The benchmarks still run against the current package and end with their JSON line.

Smoke runs at toy sizes: nothing here is timed; the figures checked are exact counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def _last_json(script: str, *args: str) -> dict:
    env = dict(os.environ, DS_ACCELERATOR="cpu", PYTHONWARNINGS="ignore")
    command = [sys.executable, str(BENCHMARKS / script), *args]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_bench_solver_weights_match_the_loop():
    row = _last_json("bench_solver.py", "--groups", "6", "--tasks", "4", "--repeats", "1")
    assert (row["L"], row["K"]) == (6, 4)
    assert row["max_rel_weight_diff"] < 1e-12


def test_bench_engine_counts_one_gram_all_reduce_per_step():
    row = _last_json(
        "bench_engine.py", "--tasks", "2,3", "--steps", "1", "--warmup", "0", "--phase-steps", "1",
        "--layers", "1", "--d-model", "32", "--heads", "2", "--ffn", "64", "--vocab", "64",
        "--seq", "16", "--batch", "2",
    )  # fmt: skip
    assert row["bytes_for_k"] == 3
    assert row["hook_allreduce_bytes_per_step"] == row["expected_allreduce_bytes_per_step"]
    assert row["task_buffer_bytes_over_KP_over_N"] >= 1.0
    assert set(row["phases_ms_k2"]) == {
        "capture", "gram", "all-reduce", "solve", "combine", "deepspeed step", "gv.step other",
    }  # fmt: skip
