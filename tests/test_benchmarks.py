"""The benchmarks still run against the current package and end with their JSON line.

Smoke runs at toy sizes: nothing here is timed; the figures checked are exact counts.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

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


def test_bench_engine_counts_bytes_against_plain_and_the_naive_baseline():
    row = _last_json(
        "bench_engine.py", "--tasks", "2,3", "--naive-tasks", "3", "--steps", "1", "--warmup", "0",
        "--phase-steps", "1", "--layers", "1", "--d-model", "32", "--heads", "2", "--ffn", "64",
        "--vocab", "64", "--seq", "16", "--batch", "2", "--method-tasks", "3",
    )  # fmt: skip
    assert list(row)[:3] == [
        "step_time_ratio_vs_plain_k3", "cpu_time_ratio_vs_plain_k3", "method_step_time_ratio_vs_plain_k3"
    ]  # fmt: skip
    assert sorted(row["method_step_time_ratio_vs_plain_k3"]) == ["aligned_mtl", "imtl_g", "mgda", "upgrad"]
    assert all(v > 0 for v in row["method_step_time_ratio_vs_plain_k3"].values())
    assert row["world"] == 2 and row["bytes_for_k"] == 3
    assert row["engine_allreduce_bytes_per_step"] == row["expected_allreduce_bytes_per_step"]
    assert row["task_buffer_bytes_over_KP_over_N"] >= 1.0
    naive = row["naive_k3"]
    gradient_bytes = 3 * row["P"] * 4
    assert naive["task_gradient_bytes_per_rank"]["naive"] == gradient_bytes
    assert naive["task_gradient_bytes_per_rank"]["gradvac_ds"] < gradient_bytes  # partitioned over N = 2
    traffic = naive["traffic_bytes_per_step"]
    assert traffic["naive"] == gradient_bytes  # K full all-reduces of P float32
    # GradVac adds exactly its one Gram all-reduce to DeepSpeed's own reductions
    assert traffic["gradvac"] - traffic["plain"] == row["expected_allreduce_bytes_per_step"]
    assert set(row["k2"]["phases_ms_gradvac"]) == {
        "capture", "gram", "all_reduce", "solve", "agreement", "combine", "optimizer", "other",
    }  # fmt: skip


def test_bench_scale_compares_rss_with_the_planner(tmp_path):
    row = _last_json(
        "bench_scale.py", "--sizes", "toy=64:2:128:2:512", "--stages", "2", "--k-sweep", "4",
        "--tasks", "2", "--tasks-per-step", "2", "--steps", "1", "--warmup", "0", "--world", "1",
        "--seq", "8", "--plot", str(tmp_path / "scale.png"), "--min-rounds", "6", "--max-rounds", "7",
    )  # fmt: skip
    assert (tmp_path / "scale.png").stat().st_size > 0
    size_run, sweep_run = row["runs"]
    for run in (size_run, sweep_run):  # the paired timing: its own plain per K, an interval, CPU time
        assert 6 <= run["rounds"] <= 7 and run["plain_step_s"] > 0 and run["cpu_ratio_vs_plain"] > 0
        assert run["ratio_low"] <= run["ratio_vs_plain"] <= run["ratio_high"]
        assert run["converged"] == (run["ratio_high"] - run["ratio_low"] <= 0.04 * run["ratio_vs_plain"])
    assert row["sweep_ratio_interval"]["4"] == [sweep_run["ratio_low"], sweep_run["ratio_high"]]
    assert row["max_step_time_ratio_vs_plain"] == size_run["ratio_vs_plain"]
    # capture and combine against their copy-bandwidth bounds: k b / B and (k + 1) b / (2 B), k = 2
    assert size_run["copy_gb_per_s"] > 0 and size_run["capture_over_bound"] > 0
    assert abs(size_run["capture_bound_ms"] - 2 * size_run["combine_bound_ms"] * 2 / 3) < 1e-9
    assert row["max_combine_over_bound"] >= size_run["combine_over_bound"]
    assert size_run["task_buffer_bytes"] > 0 and size_run["gram_bytes"] == size_run["L"] * 2 * 2 * 8
    assert sweep_run["K"] == 4 and sweep_run["gram_bytes"] == sweep_run["L"] * 4 * 4 * 8
    assert 0.5 < size_run["rss_over_predicted"] < 2.0


def test_bench_train_times_the_trainer_and_the_plain_loop_on_the_same_work():
    shrink = ["data.synthetic.train_sentences=240", "data.synthetic.valid_sentences=8",
              "data.synthetic.test_sentences=8", "data.vocab.vocab_size=600"]  # fmt: skip
    row = _last_json(
        "bench_train.py", "--steps", "3", "--warmup", "1", "--layouts", "1x1", "--copy-steps", "0",
        *[arg for item in shrink for arg in ("--set", item)],
    )  # fmt: skip
    assert list(row)[:5] == [
        "tokens_per_s", "plain_torch_tokens_per_s", "ratio_vs_plain_torch",
        "achieved_flops_fraction_of_gemm_peak", "copy_task_exact_match",
    ]  # fmt: skip
    assert row["layout"] == "1x1" and row["steps"] == 3 and row["copy_task_exact_match"] is None
    assert row["ratio_vs_plain_torch"] == row["tokens_per_s"] / row["plain_torch_tokens_per_s"] > 0
    assert 0 < row["achieved_flops_fraction_of_gemm_peak"] < 1 and row["flops_per_token"] > 1e5


def test_the_naive_baseline_keeps_its_task_rows_on_the_models_device():
    """On a GPU the naive baseline's rows are all-reduced by NCCL and become ``.grad`` of CUDA
    parameters: they must live where the parameters do (here the meta device stands in)."""
    sys.path.insert(0, str(BENCHMARKS))
    from naive import NaiveDataParallelGradVac

    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)).to("meta")
    baseline = NaiveDataParallelGradVac(model, torch.optim.SGD(model.parameters(), lr=0.1), ["a", "b"])
    assert baseline.buffer.device == next(model.parameters()).device
    assert baseline.task_buffer_bytes == 2 * sum(p.numel() for p in model.parameters()) * 4


def _benchmark_module(filename: str, name: str):
    """benchmarks/<filename> loaded by path under the module name ``name``."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / filename)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_median_interval_covers_at_95_percent_and_no_wider():
    """Order-statistic ranks of the median's interval, checked against the binomial law."""
    from scipy.stats import binom

    # benchmarks/harness.py by path: tests/workers has a module of the same name on sys.path
    median_interval = _benchmark_module("harness.py", "benchmark_harness").median_interval

    assert median_interval([3.0, 1.0, 2.0]) == (2.0, 1.0, 3.0)  # too few values: the whole range
    for n in (6, 10, 25, 40):
        median, low, high = median_interval([float(v) for v in range(1, n + 1)])
        j = int(low)
        assert high == n + 1 - j and median == (n + 1) / 2
        assert 1 - 2 * binom.cdf(j - 1, n, 0.5) >= 0.95 > 1 - 2 * binom.cdf(j, n, 0.5)


def test_bench_data_reports_peak_private_memory_and_the_first_batch():
    row = _last_json("bench_data.py", "--pairs", "4000")
    assert (row["pairs_small"], row["pairs_large"]) == (4000, 40000)
    for size in ("small", "large"):
        # A rank's private memory holds torch and megatron-core at least; the first batch precedes the
        # end of the first step.
        assert row[f"rank_anon_peak_mib_{size}"] > 50
        assert 0 < row[f"first_batch_seconds_{size}"] <= row[f"first_step_seconds_{size}"]
    ratio = row["rank_anon_peak_mib_large"] / row["rank_anon_peak_mib_small"]  # of MiB rounded to 0.1
    assert abs(row["rank_anon_peak_growth_ratio"] - ratio) < 1e-3
    added = row["pairs_large"] - row["pairs_small"]
    growth = (row["rank_anon_peak_mib_large"] - row["rank_anon_peak_mib_small"]) * 2**20 / added
    assert abs(row["rank_anon_peak_bytes_per_added_pair"] - growth) < 0.1 * 2**20 / added + 1e-3
    assert row["in_memory_rank_anon_peak_mib_small"] > 0


def test_bench_data_growth_is_per_pair_the_large_corpus_adds():
    """Per-pair index arrays of 12 bytes, 0.2M -> 2M pairs: 12 bytes per added pair (the smoke run
    above grows by ~0 MiB, so it cannot tell the divisor)."""
    bench_data = _benchmark_module("bench_data.py", "bench_data")
    small = {"pairs": 200_000, "rank_anon_peak_mib": 280.0}
    large = {"pairs": 2_000_000, "rank_anon_peak_mib": 280.0 + 12 * 1_800_000 / 2**20}
    assert abs(bench_data.bytes_per_added_pair(small, large) - 12.0) < 1e-9
