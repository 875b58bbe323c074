"""benchmarks/gpu_check.sh in its CPU dry-run mode: every step runs at toy sizes and leaves its
results under $OUT (the same script runs the full sizes on a CUDA device)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gpu_check.sh"


def test_the_exactness_step_fails_on_an_error_beyond_its_tolerance():
    sys.path.insert(0, str(SCRIPT.parents[1] / "tests" / "workers"))
    from engine_cases import judge

    good = [{"case": "s2_fp32", "param_rel_err": 3e-7}, {"case": "s2_bf16", "param_rel_err": 1e-2}]
    assert judge(good)[1] and judge(good)[0]["max_param_rel_err_over_tolerance"] == 0.5
    summary, ok = judge([*good, {"case": "s3_fp32", "param_rel_err": 2e-6}])
    assert not ok and summary["inexact"] == [["s3_fp32", 2e-6, 1e-6]]
    assert not judge([{"case": "s2_fp32", "param_rel_err": float("nan")}])[1]
    assert not judge([{"case": "comm_s2", "calls": []}])[1]  # nothing judged is not a pass


def test_dry_run_runs_every_step_and_writes_the_summary(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path), PYTHON=sys.executable)
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run"], env=env, capture_output=True, text=True, timeout=900
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert proc.returncode == 0, (summary, proc.stdout[-3000:])
    assert summary["dry_run"] is True
    assert summary["exit_status"] == dict.fromkeys(
        ["bf16_mcore", "engine", "env", "exact_w1", "exact_w2", "install", "kernels"], 0
    )
    for step in ("exact_w1", "exact_w2"):
        assert summary[step]["cases"] == 3 and summary[step]["errors"] == summary[step]["inexact"] == []
        assert summary[step]["max_param_rel_err_over_tolerance"] <= 1
    assert summary["kernels"]["max_cosine_error_fp32_gram"] < 1e-6
    assert (
        summary["engine"]["engine_allreduce_bytes_per_step"]
        == summary["engine"]["expected_allreduce_bytes_per_step"]
    )
    for name in ("exact_w1.jsonl", "exact_w2.jsonl", "bf16_mcore.png", "steps.txt", "env.log"):
        assert (tmp_path / name).exists(), name
