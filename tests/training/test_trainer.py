"""End to end: the demo config, shrunk, under the real deepspeed launcher on 2 CPU processes.

An uninterrupted run checkpoints, writes BLEU/validation/similarity outputs. A second run with
the same config is SIGKILLed (its whole process group) once its first checkpoint is complete and
resumed with --resume: its final parameters must equal the uninterrupted run's exactly (data
position, GradVac state, optimizer state and RNG states all come back).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from data_helpers import prepare_run
from distributed import free_port, run_torchrun

REPO = Path(__file__).resolve().parents[2]
STEPS = 12
SHRUNK = [
    f"training.steps={STEPS}",
    "training.checkpoint_interval=4",
    "training.eval_interval=6",
    "training.modes=[gradvac]",
    "training.similarity_window=4",
    "data.synthetic.train_sentences=240",
    "data.vocab.vocab_size=600",
    "data.batching.micro_batches_per_step=4",
    "data.synthetic.valid_sentences=8",
    "data.synthetic.test_sentences=8",
    "data.batching.max_sentences=16",
    "evaluation.max_sentences=8",
    "evaluation.max_length=12",
]


def launch(run_dir: Path, *extra: str) -> subprocess.Popen:
    """Start ``deepspeed --num_gpus 2 launch/train.py`` on the shrunk demo config."""
    overrides = [arg for item in [*SHRUNK, f"run_dir={run_dir}"] for arg in ("--set", item)]
    prepare_run(["--config", "configs/demo.yaml", *overrides], REPO)  # training reads only prepared data
    cmd = [
        sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", "2",
        "--master_port", str(free_port()), "launch/train.py", "--config", "configs/demo.yaml",
        *overrides, *extra,
    ]  # fmt: skip
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    log = open(run_dir.parent / f"{run_dir.name}.log", "w")
    return subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def finish(proc: subprocess.Popen, run_dir: Path, timeout: int = 600) -> None:
    rc = proc.wait(timeout=timeout)
    if rc != 0:
        pytest.fail(f"training exited {rc}:\n{(run_dir.parent / f'{run_dir.name}.log').read_text()[-5000:]}")


def final_module(run_dir: Path) -> dict[str, torch.Tensor]:
    path = run_dir / "gradvac" / "checkpoints" / f"step{STEPS}" / "mp_rank_00_model_states.pt"
    return torch.load(path, map_location="cpu", weights_only=False)["module"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("e2e") / "straight"
    run_dir.mkdir()
    finish(launch(run_dir), run_dir)
    return run_dir


def test_run_writes_checkpoints_scores_and_similarity_log(uninterrupted):
    mode_dir = uninterrupted / "gradvac"
    assert (mode_dir / "checkpoints" / "latest").read_text() == f"step{STEPS}"
    for tag in ("step4", "step8", f"step{STEPS}"):
        files = {p.name for p in (mode_dir / "checkpoints" / tag).iterdir()}
        assert {"rank0.pt", "rank1.pt", "mp_rank_00_model_states.pt"} <= files
    scores = json.loads((uninterrupted / "bleu.json").read_text())["gradvac"]
    assert sorted(scores) == ["en-qaa", "en-qab", "en-qba", "en-qbb", "en-qca", "en-qcb"]
    for pair in scores.values():
        assert 0.0 <= pair["bleu"] <= 100.0 and 0.0 <= pair["chrf"] <= 100.0
        assert pair["bleu_signature"].startswith("nrefs:1|") and pair["sentences"] == 8
    history = json.loads((mode_dir / "validation.json").read_text())
    assert [h["step"] for h in history] == [6, 12]
    assert all(history[1]["valid_loss"][t] < history[0]["valid_loss"][t] for t in scores)
    meta = json.loads((mode_dir / "gradvac_similarity" / "meta.json").read_text())
    assert meta["task_names"] == sorted(scores)
    assert meta["window"] == 4  # training.similarity_window
    assert [(c["step_first"], c["step_last"]) for c in meta["chunks"]] == [(0, 3), (4, 7), (8, 11)]
    assert (uninterrupted / "families.csv").read_text().startswith("language,family\nqaa,")


def test_monitor_series_share_the_global_samples_axis_under_the_launcher(uninterrupted):
    """demo.yaml enables the CSV monitor: lr, per-task training/validation loss (reduced over both
    ranks), BLEU and GradVac's scalars land in monitor/gradvac/ against the same x values."""
    monitor = uninterrupted / "monitor" / "gradvac"

    def xs(name: str) -> list[int]:
        return [int(line.split(",")[0]) for line in (monitor / name).read_text().splitlines()[1:]]

    lr = xs("Train_Samples_lr.csv")
    assert len(lr) == STEPS and lr == [lr[0] * (s + 1) for s in range(STEPS)]
    assert xs("gradvac_cos_mean.csv") == [lr[0], lr[10]]  # log_interval 10: optimizer steps 0 and 10
    assert set(xs("Train_Samples_loss_en-qaa.csv")) <= {lr[0], lr[10], lr[STEPS - 1]}
    assert xs("Valid_Samples_loss_mean.csv") == [lr[5], lr[STEPS - 1]]  # eval_interval 6
    assert xs("Test_Samples_bleu_average.csv") == [lr[STEPS - 1]]
    assert "ranking" not in (uninterrupted / "gradvac" / "summary.txt").read_text()
    assert (uninterrupted / "gradvac" / "samples.txt").read_text().count("HYP: ") == 6 * 3


def test_killed_run_resumes_to_identical_parameters(uninterrupted, tmp_path):
    run_dir = tmp_path / "killed"
    run_dir.mkdir()
    proc = launch(run_dir)
    latest = run_dir / "gradvac" / "checkpoints" / "latest"
    deadline = time.monotonic() + 600
    while not latest.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    killed_at = latest.read_text()
    assert killed_at != f"step{STEPS}", "the kill must land before the run finished"
    assert not (run_dir / "bleu.json").exists()
    finish(launch(run_dir, "--resume"), run_dir)
    want, got = final_module(uninterrupted), final_module(run_dir)
    tensors = [name for name, value in want.items() if isinstance(value, torch.Tensor)]
    assert want.keys() == got.keys() and len(tensors) > 10
    for name in tensors:
        assert torch.equal(want[name], got[name]), f"{name} differs after resuming from {killed_at}"


def test_resuming_a_finished_run_evaluates_it_again_and_keeps_its_training_record(uninterrupted, tmp_path):
    """--resume on a finished mode trains no step: it decodes the test split again (the same scores)
    and leaves throughput.json, the timing of its training, as it was."""
    run_dir = tmp_path / "finished"
    shutil.copytree(uninterrupted, run_dir)
    record = (run_dir / "gradvac" / "throughput.json").read_text()
    assert json.loads(record)["steps"] == STEPS
    (run_dir / "bleu.json").unlink()
    finish(launch(run_dir, "--resume"), run_dir)
    assert (run_dir / "gradvac" / "throughput.json").read_text() == record
    scores = [json.loads((d / "bleu.json").read_text()) for d in (uninterrupted, run_dir)]
    assert scores[0] == scores[1]


def test_similarity_report_recovers_planted_families(uninterrupted, tmp_path):
    """The planted families (3 x 2 target languages) must come out of the gradient cosines.

    With 3 families of 2, any clustering other than the planted one has an adjusted Rand index
    of at most 4/9, so a threshold of 0.99 demands exact recovery; the margin between intra- and
    inter-family similarity (observed ~0.8 vs ~0.0) makes that a stable requirement.
    """
    from gradvac_ds.analysis.report.analyze import analyze_run

    report = analyze_run(uninterrupted / "gradvac", tmp_path, families=uninterrupted / "families.csv")
    assert report["adjusted_rand_index"] >= 0.99
    assert report["intra_family_mean_similarity"] > report["inter_family_mean_similarity"] + 0.2
    assert report["languages"] == ["qaa", "qab", "qba", "qbb", "qca", "qcb"]
    profile = report["layer_profile"]  # megatron-core names (model.encoder.layers.N) parse into stacks
    assert len(profile["encoder"]) == 2 and len(profile["decoder"]) == 2


def test_dist_timeout_bounds_a_collective_waiting_on_an_absent_rank(tmp_path):
    """training.dist_timeout_minutes = 0.05 (3 s): rank 0's all-reduce fails after about 3 s while
    rank 1 stays away for 12 s, instead of waiting DeepSpeed's default 30 minutes."""
    row = run_torchrun(
        "timeout_worker.py", 2, tmp_path / "out.jsonl", "--minutes", "0.05", "--absent-s", "12", timeout=120
    )["timeout"]
    assert row["raised"], "the all-reduce completed although rank 1 never joined it"
    assert 2.5 <= row["elapsed_s"] < 10, row
