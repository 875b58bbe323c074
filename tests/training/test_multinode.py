"""A real two-node job on this machine: two torchrun launchers (node ranks 0 and 1) over loopback.

Each launcher starts 2 processes of ``launch/train.py`` (the README's demo, shrunk through ``--set``
overrides to 4 GradVac steps on a small synthetic corpus), so the job has 4 data-parallel ranks
spread over two rendezvous participants, exactly as on two hosts (static rendezvous on
``--master_addr 127.0.0.1 --master_port P``; both "nodes" share the run directory, as nodes share
a file system). The same job then runs as 1 node x 4 processes; global ranks, data shards, task
schedule and collectives are the same, so the final DeepSpeed checkpoints must hold the same
weights and the same GradVac EMA targets.

The run is kept small for this 2-core box: 300 training pairs per language, a 300-piece vocabulary
(cached under ``.cache/gradvac_ds`` by content hash, so later runs only load it), 4 steps, and
evaluation on 4 test sentences with 8 decoding steps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from data_helpers import prepare_run
from distributed import free_port

REPO = Path(__file__).resolve().parents[2]
TRAIN = REPO / "launch" / "train.py"
DEMO = REPO / "configs" / "demo.yaml"
STEPS = 4
JOB_TIMEOUT = 420  # seconds; a job takes ~30 s on an idle 2-core box
SHRUNK = {
    "training.steps": STEPS,
    "training.modes": "[gradvac]",
    "training.warmup_steps": 2,
    "training.eval_interval": STEPS,
    "training.checkpoint_interval": 2,
    "evaluation.max_sentences": 4,
    "evaluation.max_length": 8,
    "data.synthetic.train_sentences": 300,
    "data.synthetic.valid_sentences": 8,
    "data.synthetic.test_sentences": 4,
    "data.vocab.vocab_size": 300,
    "data.batching.micro_batches_per_step": 4,
    "data.encode_workers": 1,
}
"""``--set`` overrides of configs/demo.yaml shared by the multi-process trainer tests (the
fault-tolerance test imports them: equal data settings reuse the cached SentencePiece model)."""


def job_env() -> dict[str, str]:
    return dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")


def train_args(run_dir: Path, **overrides: object) -> list[str]:
    """``launch/train.py`` arguments: the demo config, the shrunk overrides, then ``overrides``
    (dotted keys with ``__`` for ``.``), and ``run_dir``."""
    args = [str(TRAIN), "--config", str(DEMO)]
    values = {**SHRUNK, **{k.replace("__", "."): v for k, v in overrides.items()}, "run_dir": run_dir}
    for key, value in values.items():
        args += ["--set", f"{key}={value}"]
    prepare_run(args[1:], REPO)  # training reads only prepared data
    return args


def torchrun(*launcher_args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--max-restarts", "0", *launcher_args]


def node_launcher(node: int, port: int, nproc: int, args: list[str]) -> list[str]:
    """One node's torchrun of a 2-node job with its rendezvous on 127.0.0.1:``port``."""
    rendezvous = ["--nnodes", "2", "--node_rank", str(node), "--master_addr", "127.0.0.1"]
    return torchrun(*rendezvous, "--master_port", str(port), "--nproc_per_node", str(nproc), *args)


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    """Start a launcher in its own session (so that a failing test can stop exactly its processes)."""
    with log.open("w") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            cmd, cwd=REPO, env=job_env(), stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(proc: subprocess.Popen) -> None:
    """Kill the process group of a launcher this test started, if it is still running."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def wait_all(procs: list[subprocess.Popen], logs: list[Path], timeout: float) -> list[int]:
    """Wait for every launcher; on timeout kill them all and fail with the logs' tails."""
    deadline = time.monotonic() + timeout
    try:
        for proc in procs:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:
        pytest.fail(f"job did not finish within {timeout} s:\n{tails(logs)}")
    finally:
        for proc in procs:
            stop(proc)
    return [proc.returncode for proc in procs]


def tails(logs: list[Path], chars: int = 3000) -> str:
    return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}" for log in logs)


def run_job(launches: list[list[str]], logs: list[Path], timeout: float = JOB_TIMEOUT) -> float:
    """Run the launchers concurrently; all must succeed. Returns the wall time."""
    began = time.monotonic()
    procs = [start(cmd, log) for cmd, log in zip(launches, logs, strict=True)]
    codes = wait_all(procs, logs, timeout)
    if any(codes):
        pytest.fail(f"launchers exited with {codes}:\n{tails(logs)}")
    return time.monotonic() - began


def checkpoint(run_dir: Path, tag: str) -> dict:
    """The saved model-states file of one checkpoint (module weights and the GradVac client state)."""
    path = run_dir / "gradvac" / "checkpoints" / tag / "mp_rank_00_model_states.pt"
    return torch.load(path, map_location="cpu", weights_only=False)


def rank_file(tag_dir: Path, rank: int) -> Path | None:
    """A rank's own checkpoint file (data position, RNG states): ``rank<R>.pt`` as
    gradvac_ds.training.checkpointing writes it (``data_rank<R>.json`` in its first version), or None."""
    for name in (f"rank{rank}.pt", f"data_rank{rank}.json"):
        if (tag_dir / name).is_file():
            return tag_dir / name
    return None


def rank_data(tag_dir: Path, rank: int) -> dict:
    """The data-schedule state a rank saved in checkpoint ``tag_dir``."""
    path = rank_file(tag_dir, rank)
    assert path is not None, f"{tag_dir} has no file of rank {rank}"
    if path.suffix == ".json":
        return json.loads(path.read_text())
    return torch.load(path, map_location="cpu", weights_only=False)["data"]


def weights(state: dict) -> dict[str, torch.Tensor]:
    return {k: v.float() for k, v in state["module"].items() if torch.is_tensor(v)}


def max_abs_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory) -> dict[str, Path]:
    """The 2-node x 2 job and the 1-node x 4 job, run at the same time (they share nothing but the
    cached vocabulary; side by side they take less wall time than one after the other, as most of
    a short job is process start-up)."""
    root = tmp_path_factory.mktemp("multinode")
    two_nodes, one_node = root / "two_nodes", root / "one_node"
    port = free_port()
    launches = [node_launcher(node, port, 2, train_args(two_nodes)) for node in (0, 1)]
    launches.append(torchrun("--standalone", "--nproc_per_node", "4", *train_args(one_node)))
    elapsed = run_job(launches, [root / "node0.log", root / "node1.log", root / "single.log"])
    print(f"2 nodes x 2 processes and 1 node x 4 processes, side by side: {elapsed:.1f} s")
    return {"two_nodes": two_nodes, "one_node": one_node}


def test_two_node_job_writes_a_complete_four_rank_checkpoint(jobs):
    directory = jobs["two_nodes"] / "gradvac" / "checkpoints"
    assert (directory / "latest").read_text().strip() == f"step{STEPS}"
    files = {p.name for p in (directory / f"step{STEPS}").iterdir()}
    for rank in range(4):
        assert rank_file(directory / f"step{STEPS}", rank) is not None
        assert f"zero_pp_rank_{rank}_mp_rank_00_optim_states.pt" in files
    assert (jobs["two_nodes"] / "gradvac" / "bleu.json").is_file()


def test_two_nodes_train_the_same_parameters_as_one_node(jobs):
    two, one = checkpoint(jobs["two_nodes"], f"step{STEPS}"), checkpoint(jobs["one_node"], f"step{STEPS}")
    assert max_abs_diff(weights(two), weights(one)) <= 1e-6
    targets = (two["gradvac"]["targets"], one["gradvac"]["targets"])
    assert torch.allclose(torch.as_tensor(targets[0]), torch.as_tensor(targets[1]), rtol=0, atol=1e-9)
    # the comparison is not vacuous: the weights moved between the step-2 and step-4 checkpoints
    assert max_abs_diff(weights(two), weights(checkpoint(jobs["two_nodes"], "step2"))) > 1e-4


def test_four_data_parallel_ranks_on_two_nodes(jobs):
    tag = jobs["two_nodes"] / "gradvac" / "checkpoints" / f"step{STEPS}"
    states = [rank_data(tag, r) for r in range(4)]
    assert [s["fingerprint"]["dp_rank"] for s in states] == [0, 1, 2, 3]
    assert {s["fingerprint"]["dp_world_size"] for s in states} == {4}
    assert {s["step"] for s in states} == {STEPS}
