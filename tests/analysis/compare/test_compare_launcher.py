"""End to end under the real deepspeed launcher: 2 CPU ranks train 2 modes x 2 seeds of the shrunk
demo config (training.seeds), the trainer writes translations and the comparison, and
``python -m gradvac_ds.analysis.compare`` adds the similarity intervals from the runs' logs."""

from __future__ import annotations

import csv
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from data_helpers import prepare_run
from distributed import free_port

REPO = Path(__file__).resolve().parents[3]
SEEDS = (3, 4)
SHRUNK = [
    "training.steps=4",
    "training.checkpoint_interval=4",
    "training.eval_interval=4",
    "training.modes=[sum,gradvac]",
    f"training.seeds=[{','.join(map(str, SEEDS))}]",
    "data.synthetic.train_sentences=120",
    "data.vocab.vocab_size=400",
    "data.batching.micro_batches_per_step=4",
    "data.synthetic.valid_sentences=8",
    "data.synthetic.test_sentences=8",
    "data.batching.max_sentences=16",
    "evaluation.max_sentences=8",
    "evaluation.max_length=12",
    "deepspeed.gradvac.log_interval=1",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("compare_e2e") / "run"
    overrides = [arg for item in [*SHRUNK, f"run_dir={run_dir}"] for arg in ("--set", item)]
    cmd = [
        sys.executable, "-m", "deepspeed.launcher.runner", "--num_gpus", "2",
        "--master_port", str(free_port()), "launch/train.py", "--config", "configs/demo.yaml", *overrides,
    ]  # fmt: skip
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    prepare_run(["--config", "configs/demo.yaml", *overrides], REPO)  # training reads only prepared data
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:
        pytest.fail(f"training exited {done.returncode}:\n{(done.stdout + done.stderr)[-5000:]}")
    return run_dir


def test_seeds_layout_translations_and_piece_counts(run_dir):
    bleu = json.loads((run_dir / "bleu.json").read_text())
    assert sorted(bleu) == [f"seed{s}" for s in SEEDS]
    for seed, mode in itertools.product(SEEDS, ("sum", "gradvac")):
        folder = run_dir / f"seed{seed}" / mode
        assert (folder / "checkpoints" / "latest").read_text() == "step4"
        pairs = sorted(bleu[f"seed{seed}"][mode])
        assert len(pairs) == 6
        for pair in pairs:
            hyp = (folder / "translations" / f"{pair}.hyp").read_text().splitlines()
            ref = (folder / "translations" / f"{pair}.ref").read_text().splitlines()
            assert len(hyp) == len(ref) == 8
    with np.load(run_dir / "piece_counts.npz") as pieces:
        assert len(pieces["languages"]) == 6 and (pieces["counts"].sum(1) > 0).all()


def test_seeds_change_the_model_but_not_the_references(run_dir):
    first, second = (run_dir / f"seed{s}" / "gradvac" / "translations" for s in SEEDS)
    refs = sorted(p.name for p in first.glob("*.ref"))
    assert all((first / r).read_text() == (second / r).read_text() for r in refs)
    weights = [
        torch_state(run_dir / f"seed{s}" / "gradvac" / "checkpoints" / "step4" / "mp_rank_00_model_states.pt")
        for s in SEEDS
    ]
    assert any(not np.array_equal(weights[0][k], weights[1][k]) for k in weights[0])


def torch_state(path: Path) -> dict[str, np.ndarray]:
    import torch

    module = torch.load(path, map_location="cpu", weights_only=False)["module"]
    return {k: v.float().numpy() for k, v in module.items() if hasattr(v, "float")}


def test_trainer_wrote_the_comparison(run_dir):
    results = json.loads((run_dir / "compare" / "compare.json").read_text())
    assert results["modes"] == ["sum", "gradvac"] and results["seeds"] == [f"seed{s}" for s in SEEDS]
    verdicts = {row["BLEU"]["verdict"] for row in results["comparisons"]["gradvac"].values()}
    assert verdicts <= {"better", "worse", "not significant"}
    assert "of 6 pairs" in (run_dir / "compare" / "compare.txt").read_text()


def test_compare_command_adds_similarity_intervals(run_dir, tmp_path):
    families = dict(csv.reader((run_dir / "families.csv").read_text().splitlines()[1:]))
    rows = ["lang1,lang2,distance"]
    for a, b in itertools.combinations(sorted(families), 2):
        rows.append(f"{a},{b},{0.2 if families[a] == families[b] else 0.9}")
    (tmp_path / "distances.csv").write_text("\n".join(rows) + "\n")
    cmd = [
        sys.executable, "-m", "gradvac_ds.analysis.compare", str(run_dir), "--out", str(tmp_path / "out"),
        "--distances", str(tmp_path / "distances.csv"), "--bootstrap", "200", "--trials", "500",
        "--resamples", "100", "--permutations", "199",
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    similarity = json.loads((tmp_path / "out" / "compare.json").read_text())["similarity"]
    assert "gradvac" in similarity
    gradvac = similarity["gradvac"]
    assert gradvac["seeds"] == 2 and gradvac["finding"] in {"holds", "reversed", "not significant"}
    assert gradvac["measures"]["rho"]["estimate"] is not None
    assert (
        "rho_overlap" in gradvac["measures"] and "similarity_vs_distance_given_overlap" in gradvac["mantel"]
    )
    assert "gradient similarity vs language distance" in done.stdout
