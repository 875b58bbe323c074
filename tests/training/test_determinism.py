"""Two runs of one config and seed on one machine are bitwise equal: the training loss of every
step and task (CSV monitor, written every step), the validation losses, BLEU and the final weights.
A third run with another seed differs. The demo's layout: the deepspeed launcher, 2 gloo ranks,
ZeRO-2, GradVac; dropout is switched on, so that its random draws are part of the check."""

from __future__ import annotations

from pathlib import Path

import torch
from data_helpers import prepare_run
from distributed import run_training

REPO = Path(__file__).resolve().parents[2]
STEPS = 8
SHRUNK = [
    f"training.steps={STEPS}", f"training.eval_interval={STEPS}", f"training.checkpoint_interval={STEPS}",
    "training.modes=[gradvac]", "data.synthetic.train_sentences=240", "data.synthetic.valid_sentences=8",
    "data.synthetic.test_sentences=8", "data.vocab.vocab_size=600", "data.batching.micro_batches_per_step=4",
    "data.batching.max_sentences=16", "evaluation.max_sentences=8", "evaluation.max_length=12",
    "deepspeed.gradvac.log_interval=1", "model.overrides.dropout=0.1",
    "model.overrides.attention_dropout=0.1",
]  # fmt: skip


def run(run_dir: Path, *extra: str) -> dict[str, object]:
    """Train the shrunk demo; return its per-step training losses (CSV text per task), validation,
    BLEU and final weights."""
    sets = [arg for item in [*SHRUNK, *extra, f"run_dir={run_dir}"] for arg in ("--set", item)]
    prepare_run(["--config", "configs/demo.yaml", *sets], REPO)
    run_training("configs/demo.yaml", sets, 2, 1, REPO)
    mode_dir, monitor = run_dir / "gradvac", run_dir / "monitor" / "gradvac"
    weights = torch.load(
        mode_dir / "checkpoints" / f"step{STEPS}" / "mp_rank_00_model_states.pt", weights_only=False
    )["module"]
    return {
        "train_loss": {p.name: p.read_text() for p in sorted(monitor.glob("Train_Samples_loss_*.csv"))},
        "validation": (mode_dir / "validation.json").read_text(),
        "bleu": (mode_dir / "bleu.json").read_text(),
        "weights": weights,
    }


def test_same_seed_is_bitwise_equal_and_another_seed_differs(tmp_path: Path) -> None:
    first, second = run(tmp_path / "a"), run(tmp_path / "b")
    steps_logged = sum(len(text.splitlines()) - 1 for text in first["train_loss"].values())
    assert len(first["train_loss"]) == 6 and steps_logged >= STEPS  # every step, each task present
    for key in ("train_loss", "validation", "bleu"):
        assert first[key] == second[key], key
    assert first["weights"].keys() == second["weights"].keys()
    tensors = [name for name, value in first["weights"].items() if isinstance(value, torch.Tensor)]
    assert len(tensors) > 10
    for name in tensors:
        assert torch.equal(first["weights"][name], second["weights"][name]), name
    other = run(tmp_path / "c", "data.seed=99")
    assert other["train_loss"] != first["train_loss"] and other["validation"] != first["validation"]
