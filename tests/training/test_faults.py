"""Long runs are safe (issue 11): each probe is a real run of ``launch/train.py`` under the deepspeed
launcher, or real engine steps and checkpoints under torchrun (tests/workers/checkpoint_cases.py).

- Shutdown: SIGTERM to one worker, and SIGTERM to the ``deepspeed`` runner alone, both end every
  process of the job with a final complete checkpoint at a step boundary; ``--resume`` continues from
  it and keeps the validation history.
- A run whose optimizer steps keep being skipped stops with an error; ``--overwrite`` replaced the
  earlier outputs first. A rerun in a used run directory without ``--resume``/``--overwrite`` is refused.
- Checkpoints: a non-finite model is never written; ``latest`` outside its folder, empty or naming a
  missing folder, a truncated or zero-byte file, another ZeRO stage or world size each raise a
  CheckpointError naming the file (and the previous complete checkpoint); per-rank files load with
  ``weights_only=True``.
- A stale DeepSpeed op build lock is reported with its path before the process group starts.

The runs use the shrunk demo of tests/training/test_multinode.py (the same data settings, so they
reuse its cached SentencePiece model).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import torch
from distributed import WORKERS, free_port
from test_multinode import REPO, job_env, start, stop, tails, train_args

from gradvac_ds.config import ConfigError
from gradvac_ds.training import jit_ops
from gradvac_ds.training.run_config import RunConfig

JOB_TIMEOUT = 420.0
STOP_BOUND_S = 120.0  # from the signal to the end of the last process of the job
NEVER = 10_000
MODE = "gradvac"


def runner(run_dir: Path, *extra: str, **overrides: object) -> list[str]:
    """``deepspeed --num_gpus 2 launch/train.py`` on the shrunk demo (the README's command)."""
    launcher = [sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", "2"]
    return [*launcher, "--master_port", str(free_port()), *train_args(run_dir, **overrides), *extra]


def wait(proc: subprocess.Popen, log: Path, timeout: float = JOB_TIMEOUT) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(proc)
        pytest.fail(f"job did not end within {timeout} s:\n{tails([log])}")


def session(pgid: int) -> list[psutil.Process]:
    """Live processes of the process group a test started (the runner, launch.py, the workers)."""
    alive = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return alive


def workers(launcher: psutil.Process) -> dict[int, psutil.Process]:
    """The ``launch/train.py`` processes under a launcher, by RANK."""
    found = {}
    for child in launcher.children(recursive=True):
        try:
            if "train.py" in " ".join(child.cmdline()) and "RANK" in child.environ():
                found[int(child.environ()["RANK"])] = child
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def checkpoints(run_dir: Path) -> Path:
    return run_dir / MODE / "checkpoints"


def complete(directory: Path, tag: str) -> None:
    """``tag`` is complete: its checkpoint.json lists every file with the size it has, for 2 ranks."""
    meta = json.loads((directory / tag / "checkpoint.json").read_text())
    assert meta["world_size"] == 2 and meta["zero_stage"] == 2
    assert {"rank0.pt", "rank1.pt", "mp_rank_00_model_states.pt"} <= set(meta["files"])
    for name, size in meta["files"].items():
        assert (directory / tag / name).stat().st_size == size, name
    step = int(tag.removeprefix("step"))
    for rank in (0, 1):
        state = torch.load(directory / tag / f"rank{rank}.pt", weights_only=True)
        assert state["data"]["step"] == step


def interrupted(root: Path, name: str, send) -> dict:
    """Start a never-ending run, call ``send(runner_process)`` once its first checkpoint is complete,
    and wait until no process of the job is left."""
    run_dir, log = root / name, root / f"{name}.log"
    proc = start(runner(run_dir, training__steps=NEVER, training__eval_interval=1), log)
    latest = checkpoints(run_dir) / "latest"
    try:
        deadline = time.monotonic() + JOB_TIMEOUT
        while not latest.is_file():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no checkpoint before the job ended or timed out:\n{tails([log])}")
            time.sleep(0.05)
        first = latest.read_text()
        send(proc)
        sent = time.monotonic()
        while session(proc.pid) and time.monotonic() - sent < STOP_BOUND_S:
            time.sleep(0.2)
        left = [" ".join(p.cmdline())[:120] for p in session(proc.pid)]
        elapsed = time.monotonic() - sent
        code = proc.poll()
    finally:
        stop(proc)
        for p in session(proc.pid):
            p.kill()
    print(f"{name}: job ended {elapsed:.1f} s after the signal; runner exit {code}")
    return {"run_dir": run_dir, "log": log, "first": first, "left": left, "code": code, "elapsed": elapsed}


def final_step(log: Path) -> int:
    """The step the run says it stopped at (every rank prints the same line)."""
    steps = set(re.findall(r"Interrupted: stopped at step (\d+)", log.read_text(errors="replace")))
    assert len(steps) == 1, f"expected one agreed stop step, got {steps}:\n{tails([log])}"
    return int(steps.pop())


def resume_to_end(result: dict, root: Path) -> None:
    """``--resume`` from the final checkpoint for one more step; the history is kept."""
    run_dir = result["run_dir"]
    stopped = final_step(result["log"])
    log = root / f"{run_dir.name}_resume.log"
    proc = start(runner(run_dir, "--resume", training__steps=stopped + 1, training__eval_interval=1), log)
    assert wait(proc, log) == 0, tails([log])
    assert (checkpoints(run_dir) / "latest").read_text() == f"step{stopped + 1}"
    complete(checkpoints(run_dir), f"step{stopped + 1}")
    history = json.loads((run_dir / MODE / "validation.json").read_text())
    assert [h["step"] for h in history] == list(range(1, stopped + 2))
    assert (run_dir / MODE / "bleu.json").is_file()


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="module")
def worker_signalled(root) -> dict:
    """SIGTERM to the rank-1 worker only, as a scheduler that signals one process would send."""

    def send(proc: subprocess.Popen) -> None:
        victim = workers(psutil.Process(proc.pid)).get(1)
        assert victim is not None, "rank 1 worker not found under the runner"
        victim.send_signal(signal.SIGTERM)

    return interrupted(root, "worker_signalled", send)


@pytest.fixture(scope="module")
def runner_signalled(root) -> dict:
    """SIGTERM to the ``deepspeed`` runner process alone (``kill <pid>``)."""
    return interrupted(root, "runner_signalled", lambda proc: proc.send_signal(signal.SIGTERM))


@pytest.mark.parametrize("case", ["worker_signalled", "runner_signalled"])
def test_sigterm_stops_every_process_with_a_final_checkpoint(case, request):
    result = request.getfixturevalue(case)
    assert not result["left"], f"{len(result['left'])} processes outlived the job: {result['left']}"
    stopped = final_step(result["log"])
    directory = checkpoints(result["run_dir"])
    assert (directory / "latest").read_text() == f"step{stopped}"
    assert stopped >= int(result["first"].removeprefix("step"))
    complete(directory, f"step{stopped}")
    assert not (result["run_dir"] / MODE / "bleu.json").exists(), "an interrupted run must not finish"
    if case == "worker_signalled":  # the runner reports the workers' status: 128 + SIGTERM
        assert result["code"] == 143, result["code"]


@pytest.mark.parametrize("case", ["worker_signalled", "runner_signalled"])
def test_resume_from_the_final_checkpoint_keeps_the_validation_history(case, request, root):
    resume_to_end(request.getfixturevalue(case), root)


def test_rerun_in_a_used_run_dir_is_refused(root):
    """No process group starts: the refusal comes before it, and nothing of the old run changes."""
    run_dir = root / "used"
    old = run_dir / MODE / "checkpoints" / "latest"
    old.parent.mkdir(parents=True)
    old.write_text("step2")
    cmd = [sys.executable, *train_args(run_dir)]
    proc = subprocess.run(cmd, cwd=REPO, env=job_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "--resume" in proc.stderr and "--overwrite" in proc.stderr and str(run_dir / MODE) in proc.stderr
    assert old.read_text() == "step2"


def test_skipped_steps_stop_the_run_and_overwrite_replaced_the_old_outputs(root):
    """lr = 3e37 makes the first Adam update ~1e37 (the largest an fp32 step size allows): every later
    activation overflows, every gradient is NaN and its step skipped.
    With training.max_consecutive_skipped_steps = 2 the run stops after step 3, exit 1, no checkpoint
    (the first is due at step 5). The run directory held an earlier run: --overwrite deleted it."""
    run_dir, log = root / "skips", root / "skips.log"
    stale = run_dir / MODE / "stale.txt"
    stale.parent.mkdir(parents=True)
    stale.write_text("an earlier run")
    overrides = {
        "training.lr": "3.0e+37",  # YAML reads a float only with a dot
        "training.steps": 20,
        "training.checkpoint_interval": 5,
        "training.eval_interval": NEVER,
        "training.max_consecutive_skipped_steps": 2,
    }
    cmd = runner(run_dir, "--overwrite", **{k.replace(".", "__"): v for k, v in overrides.items()})
    proc = start(cmd, log)
    code = wait(proc, log)
    text = log.read_text(errors="replace")
    assert code == 1, tails([log])
    assert "SkippedStepsError: steps 2..3: 2 optimizer steps in a row were skipped" in text, tails([log])
    assert not (checkpoints(run_dir) / "latest").exists()
    assert not stale.exists()


def test_run_dir_null_is_an_error_naming_the_field():
    values = {"run_dir": None, "deepspeed": {"gradvac": {}}}
    with pytest.raises(ConfigError, match=r"run_dir = None must be a string"):
        RunConfig.from_dict(values)


@pytest.mark.parametrize("value", [-1, 1.5, True, "10"])
def test_max_consecutive_skipped_steps_must_be_an_integer_at_least_zero(value):
    with pytest.raises(ConfigError, match=r"training\.max_consecutive_skipped_steps"):
        RunConfig.from_dict({"run_dir": "r", "training": {"max_consecutive_skipped_steps": value}})


@pytest.fixture(scope="module")
def checkpoint_cases(root) -> dict[str, dict]:
    """tests/workers/checkpoint_cases.py: 2 ranks save and probe, then 1 rank loads."""
    directory, out = root / "engine_ckpt" / "checkpoints", root / "checkpoint_cases.jsonl"
    env = dict(job_env())
    rows = {}
    for nproc, phase in ((2, "save"), (1, "load")):
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
            "--master_port", str(free_port()), str(WORKERS / "checkpoint_cases.py"),
            "--out", str(out), "--dir", str(directory), "--phase", phase,
        ]  # fmt: skip
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=JOB_TIMEOUT)
        assert proc.returncode == 0, proc.stderr[-5000:]
    for line in out.read_text().splitlines():
        row = json.loads(line)
        assert "error" not in row, row
        rows[row["case"]] = row
    return rows


def test_per_rank_files_hold_plain_values(checkpoint_cases):
    row = checkpoint_cases["save"]
    assert row["latest"] == "step2" and row["data"]["step"] == 2
    assert {"checkpoint.json", "rank0.pt", "rank1.pt"} <= set(row["files"])


def test_a_non_finite_model_is_never_checkpointed(checkpoint_cases):
    """Rank 1 alone holds a NaN weight: both ranks refuse, nothing is written, latest stays."""
    row = checkpoint_cases["non_finite"]
    assert [e[0] if e else None for e in row["errors"]] == ["NonFiniteModelError"] * 2
    assert "on rank 1" in row["errors"][1][1] and "stays at 'step2'" in row["errors"][0][1]
    assert row["latest"] == "step2" and not row["step3_written"]


BROKEN = {
    "empty_latest": (r"latest is empty", "step2"),
    "latest_outside": (r"latest names '\.\./\.\./outside', which is not a checkpoint folder inside", "step2"),
    "missing_tag": (r"latest names 'step9', but \S+/step9 does not exist", "step2"),
    "truncated_rank_file": (r"step2/rank1\.pt is truncated or altered \(\d+ bytes\); it was saved", "step1"),
    "zero_byte_model_file": (r"step2/mp_rank_00_model_states\.pt is empty \(0 bytes\)", "step1"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_checkpoint_is_named_and_the_previous_one_offered(case, checkpoint_cases):
    pattern, previous = BROKEN[case]
    errors = checkpoint_cases[case]["errors"]
    assert [e[0] if e else None for e in errors] == ["CheckpointError"] * 2, errors
    for _, message in errors:
        assert re.search(pattern, message), message
        assert re.search(rf"the previous complete checkpoint is \S+/{previous};", message), message


def test_the_restored_checkpoint_loads(checkpoint_cases):
    """Negative control: after each probe the checkpoint was restored, and it loads."""
    assert checkpoint_cases["healthy"]["errors"] == [None, None]


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("zero_stage_0", "saved by 2 ranks at ZeRO stage 2, but this run has 2 ranks at ZeRO stage 0"),
        ("zero_stage_3", "saved by 2 ranks at ZeRO stage 2, but this run has 2 ranks at ZeRO stage 3"),
        ("world_size_1", "saved by 2 ranks at ZeRO stage 2, but this run has 1 ranks at ZeRO stage 2"),
    ],
)
def test_a_resume_with_another_stage_or_world_size_says_so(case, says, checkpoint_cases):
    errors = checkpoint_cases[case]["errors"]
    assert all(e is not None and e[0] == "CheckpointError" and says in e[1] for e in errors), errors


def _lock(tmp_path: Path, monkeypatch, age_s: float) -> Path:
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "extensions"))
    (lock,) = jit_ops.build_lock_paths()
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.touch()
    os.utime(lock, (time.time() - age_s, time.time() - age_s))
    return lock


def test_a_stale_build_lock_is_reported_before_the_process_group_starts(tmp_path, monkeypatch):
    """A lock left by a killed compile: the run fails at once naming it (it used to wait forever)."""
    lock = _lock(tmp_path, monkeypatch, age_s=2 * jit_ops.STALE_AFTER_S)
    env = dict(job_env(), RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1")
    env["MASTER_PORT"] = str(free_port())
    cmd = [sys.executable, *train_args(tmp_path / "run")]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 1 and f"StaleBuildLock: {lock} is" in proc.stderr, proc.stderr[-3000:]


def test_a_build_in_progress_is_left_to_torch_however_old(tmp_path, monkeypatch):
    """The lock's owner holds it open (as torch's FileBaton does): never stale, even after hours."""
    lock = _lock(tmp_path, monkeypatch, age_s=10 * jit_ops.STALE_AFTER_S)
    hold = "import sys, time; f = open(sys.argv[1]); print('held', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", hold, str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert holder.pid in jit_ops.lock_holders(lock)[0]
        jit_ops.check_build_locks()
    finally:
        holder.kill()
        holder.wait()
    os.utime(lock)  # now young, and its owner is gone: stale at once, whatever its age
    with pytest.raises(jit_ops.StaleBuildLock, match="no process holds it"):
        jit_ops.check_build_locks()


def test_a_lock_released_while_it_is_checked_is_not_stale(tmp_path, monkeypatch):
    """A build that ends closes its lock, then removes it: a check that catches the lock between the
    two (no holder, file still there) looks again and finds it gone (this failed a two-node job,
    whose other node was loading the cached op)."""
    lock = _lock(tmp_path, monkeypatch, age_s=0)
    remover = threading.Timer(jit_ops.RECHECK_S / 4, lock.unlink)
    remover.start()
    try:
        jit_ops.check_build_locks()
    finally:
        remover.join()
    lock.touch()  # still there at the second look, still no holder: stale
    with pytest.raises(jit_ops.StaleBuildLock, match="no process holds it"):
        jit_ops.check_build_locks()


def test_without_proc_a_lock_is_stale_only_when_old(tmp_path, monkeypatch):
    lock = _lock(tmp_path, monkeypatch, age_s=5)
    monkeypatch.setattr(jit_ops, "PROC", tmp_path / "no-proc")
    assert jit_ops.lock_holders(lock) is None
    jit_ops.check_build_locks()
    os.utime(lock, (time.time() - 2 * jit_ops.STALE_AFTER_S,) * 2)
    with pytest.raises(jit_ops.StaleBuildLock, match="does not show its holder"):
        jit_ops.check_build_locks()


def test_setup_builds_the_jit_ops():
    """``python -m gradvac_ds.training.jit_ops`` (scripts/setup_env.sh) leaves a built op behind."""
    proc = subprocess.run(
        [sys.executable, "-m", "gradvac_ds.training.jit_ops"], env=job_env(), capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (folder,) = re.findall(r"^built (.+)$", proc.stdout, flags=re.MULTILINE)
    assert Path(folder, "deepspeed_shm_comm.so").is_file()


STUB_SRUN = """#!{python}
import pathlib, signal, sys, time
log = pathlib.Path({log!r})
def stop(signum, frame):
    log.write_text(log.read_text() + signal.Signals(signum).name + "\\n")
    sys.exit(128 + signum)
signal.signal(signal.SIGTERM, stop)
log.write_text("started " + " ".join(sys.argv[1:4]) + "\\n")
time.sleep(60)
"""


def _default_signals() -> None:
    """In the child before exec: SIGINT and SIGQUIT back to their defaults, as SLURM starts a batch
    script. A test session started as a background job (``nohup ... &``) has them ignored, the
    child would inherit that, and a non-interactive bash cannot trap a signal ignored on entry."""
    for signum in (signal.SIGINT, signal.SIGQUIT):
        signal.signal(signum, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_slurm_script_forwards_the_signal_to_its_launcher(tmp_path, signum):
    """launch/slurm.sbatch run by bash as SLURM would, with stand-ins for SLURM's own commands (this
    machine has no SLURM): ``scontrol`` names one host, ``srun`` records the signals it gets. SIGTERM or
    SIGINT to the batch script must reach srun as SIGTERM (srun passes it on to every task), and the
    script must wait for srun and exit with its status."""
    bin_dir, log = tmp_path / "bin", tmp_path / "srun.log"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text("#!/bin/sh\necho localhost\n")
    (bin_dir / "srun").write_text(STUB_SRUN.format(python=sys.executable, log=str(log)))
    for stub in ("scontrol", "srun"):
        (bin_dir / stub).chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", SLURM_JOB_NODELIST="n1", SLURM_JOB_ID="7")
    env["SLURM_NNODES"] = "1"
    cmd = ["bash", "launch/slurm.sbatch", "configs/demo.yaml", "torchrun"]
    script = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True, preexec_fn=_default_signals)
    try:
        deadline = time.monotonic() + 30
        while not (log.is_file() and log.read_text().startswith("started")):
            assert script.poll() is None and time.monotonic() < deadline, "srun never started"
            time.sleep(0.05)
        script.send_signal(signum)
        code = script.wait(timeout=30)
    finally:
        stop(script)
        for proc in session(script.pid):
            proc.kill()
    assert log.read_text().splitlines()[1:] == ["SIGTERM"]  # SIGINT too is passed on as SIGTERM
    assert code == 128 + signal.SIGTERM
