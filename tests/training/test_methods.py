"""The training application trains every Gramian method of gradvac_ds.weighting under the deepspeed
launcher (2 gloo ranks, ZeRO-2, a few steps of the demo config), and gradvac-compare compares them
with sum like any other mode."""

from __future__ import annotations

import json
from pathlib import Path

from data_helpers import prepare_run
from distributed import run_training

from gradvac_ds.analysis.__main__ import main as analyze
from gradvac_ds.analysis.compare import compare_runs

REPO = Path(__file__).resolve().parents[2]
METHODS = ["upgrad", "mgda", "imtl_g", "aligned_mtl"]


def test_the_trainer_runs_the_gramian_methods_and_compare_reads_them(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    overrides = [
        "training.steps=3", "training.eval_interval=3", "training.checkpoint_interval=3",
        f"training.modes=[sum,{','.join(METHODS)}]", "data.synthetic.train_sentences=240",
        "data.vocab.vocab_size=600", "data.batching.micro_batches_per_step=4",
        "data.synthetic.valid_sentences=8", "data.synthetic.test_sentences=8",
        "data.batching.max_sentences=16", "evaluation.max_sentences=8", "evaluation.max_length=12",
        "deepspeed.gradvac.options={mgda: {max_iters: 250}}", f"run_dir={run_dir}",
    ]  # fmt: skip
    sets = [arg for item in overrides for arg in ("--set", item)]
    prepare_run(["--config", "configs/demo.yaml", *sets], REPO)
    run_training("configs/demo.yaml", sets, 2, 1, REPO)
    for mode in ["sum", *METHODS]:
        assert (run_dir / mode / "summary.txt").read_text().startswith(f"{mode} (mode ")
        metadata = json.loads((run_dir / mode / "gradvac_similarity" / "meta.json").read_text())["metadata"]
        assert metadata["mode"] == mode
    assert metadata["options"] == {"scale_mode": "min"}  # aligned_mtl's defaults
    assert json.loads((run_dir / "mgda" / "gradvac_similarity" / "meta.json").read_text())["metadata"][
        "options"
    ] == {"epsilon": 1e-3, "max_iters": 250}
    results = compare_runs([run_dir], tmp_path / "compare", bootstrap_samples=50, randomisation_trials=50)
    assert results["baseline"] == "sum" and sorted(results["comparisons"]) == sorted(METHODS)
    text = (tmp_path / "compare" / "compare.txt").read_text()
    assert all(f"BLEU: {m} vs sum" in text for m in METHODS)
    assert analyze([str(run_dir / "upgrad")]) == 0  # gradvac-analyze reads a Gramian method's log
    report = json.loads((run_dir / "upgrad" / "analysis" / "report.json").read_text())
    assert report["tasks"] == sorted(json.loads((run_dir / "bleu.json").read_text())["upgrad"])
