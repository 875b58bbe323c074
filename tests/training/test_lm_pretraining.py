"""Multilingual LM pretraining end to end: synthetic monolingual text -> gradvac-prepare -> the GPT
(megatron-core, kind decoder) under the real deepspeed launcher on 2 CPU processes with GradVac.

An uninterrupted run of 6 steps is compared with a run stopped after its step-3 checkpoint and
resumed with ``--resume``: the final weights must be equal exactly (data position over the packed
samples, GradVac state, optimizer and RNG states all come back). The log has per-language
validation loss and perplexity, and the similarity log has the languages as its tasks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from data_helpers import prepare_run
from distributed import free_port

from gradvac_ds.training.data import SyntheticConfig, generate_synthetic, write_monolingual_dir

REPO = Path(__file__).resolve().parents[2]
CONFIG = "configs/demo_lm.yaml"
LANGUAGES = ["qaa", "qab", "qba", "qbb"]
STEPS = 6


def _overrides(root: Path) -> list[str]:
    values = [
        f"data.path={root / 'corpus'}", f"data.prepared={root / 'prepared'}", "data.valid_lines=20",
        "data.vocab.vocab_size=300", "data.encode_workers=1", "data.max_positions=32",
        "data.batching.max_tokens=264", "data.batching.max_sentences=8", "evaluation.batch_tokens=264",
        "training.checkpoint_interval=3", "training.eval_interval=3", "training.warmup_steps=2",
        "training.modes=[gradvac]", "deepspeed.train_micro_batch_size_per_gpu=8",
    ]  # fmt: skip
    return [arg for value in values for arg in ("--set", value)]


def _launch(root: Path, run_dir: Path, steps: int, *extra: str) -> None:
    cmd = [
        sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", "2", "--master_port",
        str(free_port()), "launch/train.py", "--config", CONFIG, *_overrides(root),
        "--set", f"run_dir={run_dir}", "--set", f"training.steps={steps}", *extra,
    ]  # fmt: skip
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    log = run_dir.parent / f"{run_dir.name}-{steps}.log"
    with log.open("w") as handle:
        rc = subprocess.run(
            cmd, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT, timeout=600
        ).returncode
    if rc:
        pytest.fail(f"training exited {rc}:\n{log.read_text()[-5000:]}")


def _final(run_dir: Path) -> dict[str, torch.Tensor]:
    path = run_dir / "gradvac" / "checkpoints" / f"step{STEPS}" / "mp_rank_00_model_states.pt"
    return torch.load(path, map_location="cpu", weights_only=False)["module"]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lm")
    synthetic = SyntheticConfig(
        num_families=2, languages_per_family=2, train_sentences=200, valid_sentences=20, test_sentences=0,
        lexicon_size=100, seed=7,
    )  # fmt: skip
    write_monolingual_dir(generate_synthetic(synthetic).corpus, root / "corpus", "en")
    prepare_run(["--config", CONFIG, *_overrides(root)], REPO)
    return root


@pytest.fixture(scope="module")
def uninterrupted(root: Path) -> Path:
    run_dir = root / "straight"
    _launch(root, run_dir, STEPS)
    return run_dir


def test_lm_run_logs_per_language_loss_perplexity_and_similarity(uninterrupted: Path) -> None:
    mode_dir = uninterrupted / "gradvac"
    history = json.loads((mode_dir / "validation.json").read_text())
    assert [h["step"] for h in history] == [3, 6]
    for entry in history:
        assert sorted(entry["valid_loss"]) == LANGUAGES
        for lang, loss in entry["valid_loss"].items():
            assert entry["valid_ppl"][lang] == pytest.approx(torch.tensor(loss).exp().item(), rel=1e-6)
    assert all(history[1]["valid_loss"][t] < history[0]["valid_loss"][t] for t in LANGUAGES)
    meta = json.loads((mode_dir / "gradvac_similarity" / "meta.json").read_text())
    assert meta["task_names"] == LANGUAGES
    assert not (mode_dir / "bleu.json").exists() and not (uninterrupted / "bleu.json").exists()


def test_lm_checkpoint_and_resume_equal_the_uninterrupted_run(root: Path, uninterrupted: Path) -> None:
    run_dir = root / "resumed"
    _launch(root, run_dir, 3)
    assert (run_dir / "gradvac" / "checkpoints" / "latest").read_text() == "step3"
    _launch(root, run_dir, STEPS, "--resume")
    want, got = _final(uninterrupted), _final(run_dir)
    tensors = [name for name, value in want.items() if isinstance(value, torch.Tensor)]
    assert want.keys() == got.keys() and len(tensors) > 10
    for name in tensors:
        assert torch.equal(want[name], got[name]), f"{name} differs after resuming from step 3"
