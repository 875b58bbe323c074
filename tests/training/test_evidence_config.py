"""configs/evidence_bible*.yaml (the full-length plan and the one-session run) meet issue 14's
design: both directions, >= 10 languages of >= 4 families (by ../shared/eval-data/languages.csv
when present), >= 3 seeds of sum and gradvac."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from gradvac_ds.training.run_config import RunConfig

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs").glob("evidence_bible*.yaml"))
EVAL_DATA = [REPO.parent / "shared" / "eval-data", Path("/work/shared/eval-data")]


def test_both_evidence_configs_exist():
    assert [path.name for path in CONFIGS] == ["evidence_bible.yaml", "evidence_bible_session.yaml"]


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
