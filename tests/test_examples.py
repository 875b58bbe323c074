"""examples/: each script runs under the deepspeed launcher, and the README shows it verbatim."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from distributed import free_port

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "hf_marian_gradvac.py"


def test_the_hugging_face_example_trains_with_gradvac_under_the_launcher() -> None:
    port = free_port()
    cmd = [
        sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", "2",
        "--master_port", str(port), str(EXAMPLE),
    ]  # fmt: skip
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    # the example is plain user code: DeepSpeed's CPU shm all-reduce leaves its buffers behind
    # (the trainer removes them, see gradvac_ds.training.jit_ops); this test removes its own
    for leftover in Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_*_127.0.0.1_{port}_*"):
        leftover.unlink()
    assert proc.returncode == 0, proc.stderr[-4000:]
    steps = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"step"')]
    assert [s["step"] for s in steps] == [0, 1, 2, 3]
    # the shared embedding and the 2 + 2 layers of transformers' MarianMT are GradVac's layer groups
    assert {s["groups"] for s in steps} == {5}
    assert all(s["fired"] > 0 for s in steps), "the toy tasks conflict: GradVac must correct"
    assert steps[-1]["loss"] < steps[0]["loss"]


def test_the_readme_shows_the_example_as_it_is() -> None:
    code = EXAMPLE.read_text()
    body = code[code.index("import json") :]
    assert body in (REPO / "README.md").read_text()
