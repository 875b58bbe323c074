"""Sanity tasks any sequence-to-sequence trainer must pass, through the real training path:
``gradvac-prepare`` on configs/sanity.yaml, ``launch/train.py`` under the deepspeed launcher
(1 rank x 2 threads), greedy decoding of the test split, exact match read from the hypotheses.

* the tiny encoder-decoder copies (600 steps), and reverses (1200 steps), 5-20 random symbols
  (trained on 5-22; one run per task): >= 95% of the test sentences exactly right;
* the GPT, fed source-then-target packed rows, copies them (2000 steps): >= 95% exactly right.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from data_helpers import prepare_run
from distributed import run_training

REPO = Path(__file__).resolve().parents[2]
EXACT = 0.95


def trained_for(steps: int) -> tuple[str, ...]:
    """Overrides that train ``steps`` steps and validate and checkpoint once, at the end."""
    return tuple(f"training.{key}={steps}" for key in ("steps", "eval_interval", "checkpoint_interval"))


def train_sanity(run_dir: Path, *overrides: str) -> dict[str, float]:
    """Train configs/sanity.yaml with ``overrides``; return the test exact match per task, computed
    from ``translations/<task>.hyp`` and ``.ref`` (and checked against ``bleu.json``'s)."""
    sets = [arg for item in [*overrides, f"run_dir={run_dir}"] for arg in ("--set", item)]
    prepare_run(["--config", "configs/sanity.yaml", *sets], REPO)
    run_training("configs/sanity.yaml", sets, 1, 2, REPO)
    mode_dir = run_dir / "sum"
    scores = json.loads((mode_dir / "bleu.json").read_text())
    exact = {}
    for task, reported in scores.items():
        hypotheses = (mode_dir / "translations" / f"{task}.hyp").read_text().splitlines()
        references = (mode_dir / "translations" / f"{task}.ref").read_text().splitlines()
        assert len(hypotheses) == len(references) == reported["sentences"] == 200
        exact[task] = sum(h == r for h, r in zip(hypotheses, references, strict=True)) / len(references)
        assert exact[task] == pytest.approx(reported["exact_match"])
    # a model that reads its source loses nats when scored against another sentence's source
    gaps = json.loads((mode_dir / "source_gap.json").read_text())
    assert sorted(gaps) == sorted(scores) and min(gaps.values()) > 1.0, gaps
    return exact


@pytest.mark.parametrize(("task", "steps"), [("copy", 600), ("reverse", 1200)])
def test_encoder_decoder_copies_and_reverses_random_strings(tmp_path: Path, task: str, steps: int) -> None:
    exact = train_sanity(
        tmp_path / task, f"data.sanity.tasks=[{task}]", "data.vocab.vocab_size=127", *trained_for(steps)
    )
    assert min(exact.values()) >= EXACT, exact


def test_gpt_copies_its_packed_source(tmp_path: Path) -> None:
    exact = train_sanity(
        tmp_path / "gpt", "model.kind=decoder", "data.sanity.tasks=[copy]", "data.vocab.vocab_size=127",
        *trained_for(2000),
    )  # fmt: skip
    assert exact["zxx-cpy"] >= EXACT, exact
