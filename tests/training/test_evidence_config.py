"""configs/evidence_bible.yaml meets the evidence design: real languages of data/eval (each pinned
in sources.csv), >= 8 of >= 4 families with close pairs among them, one shared target, >= 3 seeds of
sum and gradvac, and validations and checkpoints that divide the run."""

from __future__ import annotations

import csv
from pathlib import Path

from gradvac_ds.training.run_config import RunConfig

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "evidence_bible.yaml"
EVAL_DATA = REPO / "data" / "eval"


def _rows(name: str) -> list[dict[str, str]]:
    with open(EVAL_DATA / name, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_evidence_design():
    config = RunConfig.load(CONFIG)
    assert config.data.path == "data/eval/bible" and config.data.source == "multiway"
    assert config.data.direction == "many-to-one" and config.data.pivot == "en"
    assert set(config.training.modes) == {"sum", "gradvac"} and len(config.training.seeds) >= 3
    assert config.training.steps % config.training.checkpoint_interval == 0
    assert config.training.steps % config.training.eval_interval == 0
    assert config.training.steps // config.training.eval_interval >= 2  # a trajectory, not one point


def test_evidence_languages_are_pinned_and_span_families_with_close_pairs():
    languages = RunConfig.load(CONFIG).data.languages
    assert len(languages) >= 8
    assert set(languages) <= {row["code"] for row in _rows("sources.csv")}
    families = {row["code"]: row["family"] for row in _rows("languages.csv")}
    assert len({families[lang] for lang in languages}) >= 3
    chosen = set(languages)
    close = [
        row for row in _rows("distances.csv")
        if {row["code_a"], row["code_b"]} <= chosen and float(row["glottolog_tree"]) <= 0.7
    ]  # fmt: skip
    assert len(close) >= 3, "the similarity finding needs pairs within a branch (tree distance <= 0.7)"
