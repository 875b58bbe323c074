"""configs/evidence_bible*.yaml (the full-length plan and the one-session run) meet issue 14's
design: both directions, >= 10 languages of >= 4 families (by ../shared/eval-data/languages.csv
when present), >= 3 seeds of sum and gradvac. The length probe continues the session run's seed 1."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from gradvac_ds.training.run_config import RunConfig

REPO = Path(__file__).resolve().parents[2]
CONFIGS = [REPO / "configs" / f"evidence_bible{suffix}.yaml" for suffix in ("", "_session")]
LENGTH_PROBE = REPO / "configs" / "evidence_bible_length.yaml"
BETA_PROBE = REPO / "configs" / "evidence_bible_beta.yaml"
EVAL_DATA = [REPO.parent / "shared" / "eval-data", Path("/work/shared/eval-data")]


def test_the_evidence_configs_are_all_known():
    found = sorted(path.name for path in (REPO / "configs").glob("evidence_bible*.yaml"))
    assert found == sorted(path.name for path in [*CONFIGS, LENGTH_PROBE, BETA_PROBE])


def test_the_length_probe_repeats_the_session_run_longer():
    """Same data, model and DeepSpeed settings as the session run; its seed 1 and sum/gradvac; a
    validation at the session run's last step, so the first 160 steps are comparable."""
    session, probe = RunConfig.from_yaml(CONFIGS[1]), RunConfig.from_yaml(LENGTH_PROBE)
    assert probe.data == session.data and probe.model == session.model
    assert probe.evaluation == session.evaluation
    assert probe.training.seeds == session.training.seeds[:1]
    assert probe.training.modes == session.training.modes
    assert probe.training.lr == session.training.lr
    assert probe.training.warmup_steps == session.training.warmup_steps
    assert probe.training.steps > session.training.steps
    assert session.training.steps % probe.training.eval_interval == 0
    assert probe.training.steps % probe.training.eval_interval == 0
    strip = ("consistency_check_interval",)
    gradvac = {k: v for k, v in probe.deepspeed["gradvac"].items() if k not in strip}
    assert gradvac == {k: v for k, v in session.deepspeed["gradvac"].items() if k not in strip}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.stem)
def test_evidence_design(path: Path):
    config = RunConfig.from_yaml(path)
    assert config.data.direction == "both" and config.data.pivot == "en"
    assert len(config.data.languages) >= 10
    assert set(config.training.modes) == {"sum", "gradvac"} and len(config.training.seeds) >= 3
    assert config.training.steps % config.training.checkpoint_interval == 0


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.stem)
def test_evidence_languages_span_four_families(path: Path):
    table = next((d / "languages.csv" for d in EVAL_DATA if (d / "languages.csv").is_file()), None)
    if table is None:
        pytest.skip("../shared/eval-data/languages.csv is not beside this checkout")
    families = {row["code"]: row["family"] for row in csv.DictReader(table.open())}
    languages = RunConfig.from_yaml(path).data.languages
    assert set(languages) <= set(families)
    assert len({families[lang] for lang in languages}) >= 4


def test_the_beta_probe_changes_only_beta_of_the_length_probes_gradvac_run():
    length, beta = RunConfig.from_yaml(LENGTH_PROBE), RunConfig.from_yaml(BETA_PROBE)
    assert beta.training.modes == ("gradvac",) and beta.training.seeds == length.training.seeds
    assert beta.data == length.data and beta.model == length.model and beta.evaluation == length.evaluation
    assert beta.training.steps == length.training.steps and beta.training.lr == length.training.lr
    changed = {
        k
        for k in length.deepspeed["gradvac"]
        if beta.deepspeed["gradvac"][k] != length.deepspeed["gradvac"][k]
    }
    assert changed == {"beta"} and beta.deepspeed["gradvac"]["beta"] > length.deepspeed["gradvac"]["beta"]
