"""What a run reports: monitor events and folders, the summary tables, sample translations, and a
whole single-process run (``python launch/train.py`` without a launcher) with the CSV monitor."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from data_helpers import prepare_run
from distributed import run_torchrun

from gradvac_ds.training.__main__ import single_process_environment
from gradvac_ds.training.monitoring import per_mode_monitors, score_events, validation_events
from gradvac_ds.training.summary import comparison_table, mode_summary, write_samples

REPO = Path(__file__).resolve().parents[2]


def _scores(bleu: float, chrf: float) -> dict:
    return {"bleu": bleu, "chrf": chrf, "bleu_signature": "nrefs:1|tok:13a", "sentences": 8}


def test_each_mode_gets_its_own_monitor_folder(tmp_path: Path) -> None:
    ds = {
        "csv_monitor": {"enabled": True},
        "tensorboard": {"enabled": True, "output_path": "/logs", "job_name": "exp1"},
        "wandb": {"enabled": False},
        "train_micro_batch_size_per_gpu": 4,
    }
    out = per_mode_monitors(ds, tmp_path, "pcgrad")
    assert out["csv_monitor"] == {
        "enabled": True,
        "output_path": str(tmp_path / "monitor"),
        "job_name": "pcgrad",
    }
    assert out["tensorboard"] == {"enabled": True, "output_path": "/logs", "job_name": "exp1/pcgrad"}
    assert out["wandb"] == {"enabled": False} and out["train_micro_batch_size_per_gpu"] == 4
    assert ds["csv_monitor"] == {"enabled": True}, "the run's own config must stay unchanged"
    assert per_mode_monitors({"csv_monitor": {"enabled": False}}, tmp_path, "sum") == {
        "csv_monitor": {"enabled": False}
    }


def test_validation_and_score_events_share_the_x_and_safe_tags() -> None:
    valid = validation_events({"en-de": 2.0, "en|fr": 4.0}, 96)
    assert valid == [
        ("Valid/Samples/loss/en-de", 2.0, 96),
        ("Valid/Samples/loss/en_fr", 4.0, 96),
        ("Valid/Samples/loss/mean", 3.0, 96),
    ]
    events = {
        tag: value for tag, value, x in score_events({"en-de": _scores(20, 50), "en-fr": _scores(30, 60)}, 96)
    }
    assert events == {
        "Test/Samples/bleu/en-de": 20.0,
        "Test/Samples/bleu/en-fr": 30.0,
        "Test/Samples/bleu/average": 25.0,
        "Test/Samples/chrf/en-de": 50.0,
        "Test/Samples/chrf/en-fr": 60.0,
        "Test/Samples/chrf/average": 55.0,
    }


def test_train_loss_is_token_weighted_over_data_parallel_ranks(tmp_path: Path) -> None:
    row = run_torchrun("reporting_worker.py", 2, tmp_path / "out.jsonl")["meter"]  # the default hang guard
    # a: (2*10 + 4*30 on rank 0, 1*60 on rank 1) / 100 tokens; rank 0 alone would give 3.5
    assert row["first"] == [
        ["Train/Samples/loss/a", pytest.approx(2.0), 64],
        ["Train/Samples/loss/b", 3.0, 64],
    ]
    assert row["second"] == []


def test_table_puts_validation_loss_next_to_bleu_and_ranks_by_both() -> None:
    results = {
        "sum": {"en-de": _scores(20, 50), "en-fr": _scores(10, 40)},
        "gradvac": {"en-de": _scores(24, 52), "en-fr": _scores(12, 41)},
    }
    concordant = comparison_table(
        results, {"sum": {"en-de": 2.5, "en-fr": 3.5}, "gradvac": {"en-de": 2.4, "en-fr": 3.4}}, "seeds: 1"
    )
    lines = concordant.splitlines()
    assert lines[1].split() == ["pair", "valid", "loss", "BLEU", "(chrF)", "valid", "loss", "BLEU", "(chrF)"]
    assert lines[2].split() == ["en-de", "2.500", "20.00", "(", "50.0)", "2.400", "24.00", "(", "52.0)"]
    assert lines[4].split()[:3] == ["average", "3.000", "15.00"]
    assert "ranking by average BLEU (higher first): gradvac 18.00 > sum 15.00" in concordant
    assert "ranking by average validation loss (lower first): gradvac 2.900 < sum 3.000" in concordant
    assert "rank the modes differently" not in concordant and lines[-1] == "seeds: 1"
    discordant = comparison_table(
        results, {"sum": {"en-de": 2.3, "en-fr": 3.3}, "gradvac": {"en-de": 2.4, "en-fr": 3.4}}
    )
    assert "validation loss (lower first): sum 2.800 < gradvac 2.900" in discordant
    assert "BLEU and validation loss rank the modes differently" in discordant
    tied = comparison_table({"a": {"x": _scores(5, 9)}, "b": {"x": _scores(5, 8)}})
    assert "ranking by average BLEU (higher first): a 5.00 = b 5.00" in tied and "valid loss" not in tied


def test_mode_summary_names_the_mode_and_step() -> None:
    text = mode_summary("pcgrad", "pcgrad (mode 2 of 3)", 360, {"en-de": _scores(20, 50)}, {"en-de": 2.5})
    assert text.startswith("pcgrad (mode 2 of 3) after 360 steps:") and "2.500" in text
    assert "ranking" not in text


def test_samples_file_holds_the_first_sentences_of_each_pair(tmp_path: Path) -> None:
    sources = [f"s{i}" for i in range(5)]
    outputs = {"en-fr": (sources, ["r0", "r1"], ["h0", "h1"]), "en-de": (sources, ["R"] * 5, ["H"] * 5)}
    text = write_samples(tmp_path / "m" / "samples.txt", outputs, 3).read_text()
    de, fr = text.split("== en-fr")
    assert de.startswith("== en-de") and de.count("SRC: ") == 3 and "SRC: s2\nREF: R\nHYP: H" in de
    assert fr.count("SRC: ") == 2 and "SRC: s1\nREF: r1\nHYP: h1" in fr and "s2" not in fr


def test_single_process_environment_only_without_a_launcher() -> None:
    env = single_process_environment({})
    assert env["RANK"] == "0" and env["WORLD_SIZE"] == "1" and env["LOCAL_RANK"] == "0"
    assert env["MASTER_ADDR"] == "127.0.0.1" and int(env["MASTER_PORT"]) > 0
    assert single_process_environment({"MASTER_PORT": "29511"})["MASTER_PORT"] == "29511"
    for launched in (
        {"RANK": "1"},
        {"LOCAL_RANK": "0"},
        {"OMPI_COMM_WORLD_SIZE": "4"},
        {"SLURM_PROCID": "3", "SLURM_NTASKS": "8"},
    ):
        assert single_process_environment(launched) == {}, launched
    assert single_process_environment({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"})["WORLD_SIZE"] == "1"


def _rows(path: Path) -> list[tuple[int, float]]:
    with path.open() as handle:
        return [(int(x), float(v)) for x, v in list(csv.reader(handle))[1:]]


def _four_steps(run_dir: Path, checkpoint_interval: int, modes: str, log_interval: int) -> list[str]:
    """Overrides of configs/demo.yaml for a 4-step run on a small corpus (validation every 2 steps)."""
    return [
        "training.steps=4", f"training.checkpoint_interval={checkpoint_interval}",
        "training.eval_interval=2", f"training.modes={modes}", "data.synthetic.train_sentences=240",
        "data.vocab.vocab_size=600", "data.batching.micro_batches_per_step=4",
        "data.synthetic.valid_sentences=8", "data.synthetic.test_sentences=8",
        "data.batching.max_sentences=16", "evaluation.max_sentences=8", "evaluation.max_length=12",
        f"deepspeed.gradvac.log_interval={log_interval}", f"run_dir={run_dir}",
    ]  # fmt: skip


def _train_single_process(overrides: list[str], *extra: str) -> str:
    """``python launch/train.py`` on configs/demo.yaml with no launcher variables; returns its log."""
    cmd = [sys.executable, "launch/train.py", "--config", "configs/demo.yaml"]
    cmd += [arg for item in overrides for arg in ("--set", item)]
    launcher = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    env = {k: v for k, v in os.environ.items() if k not in launcher}
    env.update(DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    prepare_run(cmd[2:], REPO)  # training reads only prepared data
    proc = subprocess.run([*cmd, *extra], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-5000:]
    return log


def test_single_process_run_reports_everything_on_one_axis(tmp_path: Path) -> None:
    """``python launch/train.py`` with no launcher variables: two modes of 4 steps, CSV monitor;
    then a resume from step 2 continues every CSV file without repeated rows."""
    run_dir = tmp_path / "run"
    overrides = _four_steps(run_dir, checkpoint_interval=2, modes="[sum,gradvac]", log_interval=2)
    log = _train_single_process(overrides)
    assert "one process, rank 0 of 1" in log and "mode 2 of 2" in log
    assert "checkpoint step4: done in" in log

    summary = (run_dir / "summary.txt").read_text()
    assert (
        "ranking by average validation loss (lower first)" in summary and "seeds: data.seed=1234" in summary
    )
    assert "gradvac (mode 2 of 2) after 4 steps" in (run_dir / "gradvac" / "summary.txt").read_text()
    samples = (run_dir / "gradvac" / "samples.txt").read_text()
    assert samples.count("== en-") == 6 and samples.count("HYP: ") == 18

    bleu = json.loads((run_dir / "bleu.json").read_text())
    for mode in ("sum", "gradvac"):
        monitor = run_dir / "monitor" / mode
        assert not [p.name for p in monitor.iterdir() if "|" in p.name]
        lr = [x for x, _ in _rows(monitor / "Train_Samples_lr.csv")]
        batch = lr[0]  # global samples after optimizer step 1 = train_batch_size
        assert lr == [batch * s for s in (1, 2, 3, 4)]
        # training loss at optimizer steps 0 and 2 (as GradVac's scalars) and the last one, for the
        # tasks that ran since the previous write; validation after steps 2 and 4
        train_x = set()
        for task in bleu[mode]:
            rows = _rows(monitor / f"Train_Samples_loss_{task}.csv")
            assert rows and all(0 < loss < 10 for _, loss in rows), rows
            train_x |= {x for x, _ in rows}
            assert [x for x, _ in _rows(monitor / f"Valid_Samples_loss_{task}.csv")] == [lr[1], lr[3]]
            assert _rows(monitor / f"Test_Samples_bleu_{task}.csv") == [
                (lr[3], pytest.approx(bleu[mode][task]["bleu"]))
            ]
        assert train_x == {lr[0], lr[2], lr[3]}
        assert [x for x, _ in _rows(monitor / "gradvac_cos_mean.csv")] == [lr[0], lr[2]]
        final = json.loads((run_dir / mode / "validation.json").read_text())[-1]["valid_loss"]
        assert _rows(monitor / "Valid_Samples_loss_mean.csv")[-1][1] == pytest.approx(
            sum(final.values()) / len(final)
        )
    _check_resume_continues_the_csv_files(run_dir, overrides)


def _check_resume_continues_the_csv_files(run_dir: Path, overrides: list[str]) -> None:
    """Make step 2 the latest checkpoint of both modes, as if the run had died after writing steps 3
    and 4 to the monitor, and resume: every series keeps one row per x and one header (the CSV rows
    of the redone steps are replaced, not repeated), and the test scores appear once."""
    monitors = {mode: run_dir / "monitor" / mode for mode in ("sum", "gradvac")}
    before = {mode: {p.name: _rows(p) for p in folder.glob("*.csv")} for mode, folder in monitors.items()}
    for mode in monitors:
        (run_dir / mode / "checkpoints" / "latest").write_text("step2")
    log = _train_single_process(overrides, "--resume")
    assert log.count("checkpoint step4: done in") == 2
    for mode, folder in monitors.items():
        after = {p.name: _rows(p) for p in folder.glob("*.csv")}
        assert after.keys() == before[mode].keys()
        for name, rows in after.items():
            xs, earlier = [x for x, _ in rows], [x for x, _ in before[mode][name]]
            assert xs == sorted(set(xs)), (mode, name, xs)
            if name.startswith("Train_Samples_loss_"):
                # the loss meter's sums since its last write (step 1) are not checkpointed: a task
                # that ran in step 2 only has its step-3 row in the first run, not after the resume
                assert set(xs) <= set(earlier), (mode, name, xs)
            else:
                assert xs == earlier, (mode, name, xs)
        assert len(after["Train_Samples_lr.csv"]) == 4 and len(after["Test_Samples_bleu_average.csv"]) == 1


def test_table_states_the_source_gap_of_each_mode() -> None:
    scores = {"en-de": _scores(20, 50), "en-fr": _scores(10, 40)}
    results = {"sum": scores, "gradvac": scores}
    gaps = {"sum": {"en-de": 2.0, "en-fr": 3.0}, "gradvac": {"en-de": 0.25, "en-fr": 0.25}}
    line = comparison_table(results, None, "seeds: 1", gaps).splitlines()[-2]
    assert line.startswith("source gap (validation loss with mismatched sources minus the true one")
    assert line.endswith("): sum 2.500, gradvac 0.250")
    assert "source gap" not in comparison_table(results, None, None, {"sum": None, "gradvac": None})
