"""benchmarks/gpu_check.sh in its CPU dry-run mode: every step runs at toy sizes and leaves its
results under $OUT (the same script runs the full sizes on a CUDA device)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gpu_check.sh"


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
    assert summary["exact_w1"] == {"cases": 3, "errors": []}
    assert summary["exact_w2"] == {"cases": 3, "errors": []}
    assert summary["kernels"]["max_cosine_error_fp32_gram"] < 1e-6
    assert (
        summary["engine"]["engine_allreduce_bytes_per_step"]
        == summary["engine"]["expected_allreduce_bytes_per_step"]
    )
    for name in ("exact_w1.jsonl", "exact_w2.jsonl", "bf16_mcore.png", "steps.txt", "env.log"):
        assert (tmp_path / name).exists(), name
