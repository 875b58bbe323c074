"""The trainer trains a model kind of the registry that megatron-core does not build: the Hugging
Face MarianMT (random init, TP=1) under the deepspeed launcher with GradVac at ZeRO-2, through
validation, checkpoints, beam-free decoding and sacreBLEU."""

from __future__ import annotations

import json
from pathlib import Path

from data_helpers import prepare_run
from distributed import run_training

REPO = Path(__file__).resolve().parents[2]


def test_the_trainer_trains_the_hugging_face_kind(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    overrides = [
        "model.kind=marian", "training.steps=16", "training.eval_interval=8",
        "training.checkpoint_interval=8", "training.modes=[gradvac]", "data.synthetic.train_sentences=240",
        "data.vocab.vocab_size=600", "data.batching.micro_batches_per_step=4",
        "data.synthetic.valid_sentences=16", "data.synthetic.test_sentences=8",
        "data.batching.max_sentences=16", "evaluation.max_sentences=8", "evaluation.max_length=12",
        f"run_dir={run_dir}",
    ]  # fmt: skip
    sets = [arg for item in overrides for arg in ("--set", item)]
    prepare_run(["--config", "configs/demo.yaml", *sets], REPO)
    port = run_training("configs/demo.yaml", sets, 2, 1, REPO)
    # the deepspeed launcher set LOCAL_SIZE, so DeepSpeed's CPU shm all-reduce made one buffer per
    # rank in /dev/shm; the trainer removed their names once both ranks had mapped them
    assert not list(Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_*_127.0.0.1_{port}_*"))
    mode_dir = run_dir / "gradvac"
    assert (mode_dir / "summary.txt").read_text().startswith("gradvac (mode 1 of 1)")
    history = json.loads((mode_dir / "validation.json").read_text())
    assert [row["step"] for row in history] == [8, 16]
    first, last = (sum(row["valid_loss"].values()) for row in history)
    assert last < first, "the validation loss must fall"
    scores = json.loads((mode_dir / "bleu.json").read_text())
    assert scores and all("bleu" in pair for pair in scores.values())
    assert (mode_dir / "checkpoints" / "step16").is_dir()
    groups = json.loads((mode_dir / "gradvac_similarity" / "meta.json").read_text())["group_names"]
    assert groups[0] == "model.model.shared" and "model.model.decoder.layers.1" in groups
