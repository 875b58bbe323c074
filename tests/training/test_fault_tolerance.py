"""A rank that dies ends the whole job quickly, leaves the last checkpoint intact, and the job resumes.

The shrunk demo (see tests/test_multinode.py) runs as a two-node job, one process per node (two
torchrun launchers over loopback), with a checkpoint every 2 steps and far more steps than it will
ever reach. As soon as the first checkpoint's ``latest`` pointer appears, the test SIGKILLs the
rank-1 worker (a child of the node-1 launcher). Then:

- both launchers exit non-zero within ``BOUND_S``: node 1's elastic agent sees its worker die
  (``--max-restarts 0``: no restart) and fails; rank 0 on node 0 gets a gloo "connection reset by
  peer" in its next collective, raises, and node 0's agent fails too;
- ``latest`` names a complete checkpoint: DeepSpeed's model and per-rank optimizer files, the
  GradVac state, and every rank's own file (data position and RNG states, ``rank<R>.pt``);
- ``--resume`` on one node with two processes (same world size, same global ranks) continues from
  that checkpoint and completes two more steps.
"""

from __future__ import annotations

import signal
import subprocess
import time

import psutil
import pytest
import torch
from distributed import free_port
from test_multinode import (
    JOB_TIMEOUT,
    node_launcher,
    rank_data,
    rank_file,
    run_job,
    start,
    stop,
    tails,
    torchrun,
    train_args,
)

BOUND_S = 120.0
NEVER = 10_000  # steps of the job that gets killed: it must still be running when the kill comes


def _worker_of(launcher: psutil.Process, rank: int) -> psutil.Process | None:
    """The ``launch/train.py`` process with RANK=rank among the launcher's descendants."""
    for child in launcher.children(recursive=True):
        try:
            if child.environ().get("RANK") == str(rank) and "train.py" in " ".join(child.cmdline()):
                return child
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


def _complete(directory, tag: str, world: int) -> None:
    files = {p.name for p in (directory / tag).iterdir()}
    expected = {"mp_rank_00_model_states.pt"}
    expected |= {f"zero_pp_rank_{r}_mp_rank_00_optim_states.pt" for r in range(world)}
    assert expected <= files, f"{tag} lacks {sorted(expected - files)}"
    assert all(rank_file(directory / tag, r) is not None for r in range(world)), f"{tag}: {sorted(files)}"
    state = torch.load(directory / tag / "mp_rank_00_model_states.pt", map_location="cpu", weights_only=False)
    step = int(tag.removeprefix("step"))
    assert state["gradvac"]["step"] == step
    for r in range(world):
        data = rank_data(directory / tag, r)
        assert data["step"] == step and data["fingerprint"]["dp_rank"] == r


@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> dict:
    """Run the two-node job, kill rank 1 after the first checkpoint, and time the teardown."""
    root = tmp_path_factory.mktemp("fault")
    run_dir = root / "run"
    latest = run_dir / "gradvac" / "checkpoints" / "latest"
    port = free_port()
    logs = [root / "node0.log", root / "node1.log"]
    args = train_args(run_dir, training__steps=NEVER, training__eval_interval=NEVER)
    launchers = [start(node_launcher(node, port, 1, args), logs[node]) for node in (0, 1)]
    try:
        deadline = time.monotonic() + JOB_TIMEOUT
        while not latest.is_file():
            if any(p.poll() is not None for p in launchers) or time.monotonic() > deadline:
                pytest.fail(f"no checkpoint before the job ended or timed out:\n{tails(logs)}")
            time.sleep(0.05)
        victim = _worker_of(psutil.Process(launchers[1].pid), rank=1)
        assert victim is not None, "rank 1 worker not found under the node-1 launcher"
        victim.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        codes = []
        for proc in launchers:
            try:
                codes.append(proc.wait(timeout=max(BOUND_S - (time.monotonic() - killed_at), 0.1)))
            except subprocess.TimeoutExpired:
                codes.append(None)
        elapsed = time.monotonic() - killed_at
    finally:
        for proc in launchers:
            stop(proc)
    print(f"job ended {elapsed:.1f} s after the kill; launcher exit codes {codes}")
    return {"root": root, "run_dir": run_dir, "codes": codes, "elapsed": elapsed, "logs": logs}


def test_dead_rank_ends_every_launcher_non_zero_within_bound(killed):
    codes, logs = killed["codes"], killed["logs"]
    assert None not in codes, f"a launcher still ran {BOUND_S} s after the kill:\n{tails(logs)}"
    assert all(code != 0 for code in codes), codes
    assert killed["elapsed"] < BOUND_S
    assert not (killed["run_dir"] / "gradvac" / "bleu.json").exists(), "the killed job must not finish"


def test_latest_points_to_a_complete_checkpoint(killed):
    directory = killed["run_dir"] / "gradvac" / "checkpoints"
    tag = (directory / "latest").read_text().strip()
    _complete(directory, tag, world=2)


def test_resume_from_the_surviving_checkpoint_completes(killed):
    run_dir, root = killed["run_dir"], killed["root"]
    directory = run_dir / "gradvac" / "checkpoints"
    tag = (directory / "latest").read_text().strip()
    resumed_from, final = int(tag.removeprefix("step")), int(tag.removeprefix("step")) + 2
    saved = {p.name: p.stat().st_mtime_ns for p in (directory / tag).iterdir()}
    resume = torchrun("--standalone", "--nproc_per_node", "2", *train_args(run_dir, training__steps=final))
    resume.append("--resume")
    elapsed = run_job([resume], [root / "resume.log"])
    print(f"resume from step {resumed_from} to {final}: {elapsed:.1f} s")
    assert (directory / "latest").read_text().strip() == f"step{final}"
    _complete(directory, f"step{final}", world=2)
    assert (run_dir / "gradvac" / "bleu.json").is_file()
    # it continued from the checkpoint instead of starting over (which would rewrite it)
    assert {p.name: p.stat().st_mtime_ns for p in (directory / tag).iterdir()} == saved
