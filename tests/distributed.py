"""Launching multi-process test workers under torchrun."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

WORKERS = Path(__file__).parent / "workers"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_single_process(backend: str = "gloo") -> None:
    """Make this test process a world of one (free local port) unless torch.distributed is up."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)


def run_torchrun(script: str, nproc: int, out: Path, *args: str, timeout: int = 900) -> dict[str, dict]:
    """Run ``tests/workers/<script>`` on ``nproc`` gloo processes; return its JSON lines by case."""
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
        "--master_port", str(free_port()), str(WORKERS / script), "--out", str(out), *args,
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    results = {}
    if out.exists():
        for line in out.read_text().splitlines():
            row = json.loads(line)
            results[row["case"]] = row
    if proc.returncode != 0 or not results:
        pytest.fail(f"{script} on {nproc} processes failed (rc={proc.returncode}):\n{proc.stderr[-6000:]}")
    return results


def run_training(
    config: str, sets: list[str], nproc: int, threads: int, cwd: Path, timeout: int = 900
) -> int:
    """``deepspeed --num_gpus nproc launch/train.py --config config *sets`` (``--set`` pairs) on gloo
    CPU ranks of ``threads`` threads each, from ``cwd``; fails the test with the log tail on error.
    Returns the master port the job used."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", str(nproc),
        "--master_port", str(port), "launch/train.py", "--config", config, *sets,
    ]  # fmt: skip
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode:
        pytest.fail(f"training exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return port
