"""Run-config files: extends chains, dotted overrides, and the errors of both."""

from __future__ import annotations

from pathlib import Path

import pytest

from gradvac_ds.errors import ConfigError
from gradvac_ds.training.config_file import load_config, parse_overrides, read_config


def test_extends_merges_mappings_and_overrides_set_dotted_keys(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text("data: {pivot: en, vocab: {vocab_size: 100}}\ntraining: {steps: 5}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "run.yaml").write_text("extends: ../base.yaml\ndata: {vocab: {temperature: 2}}\n")
    assert read_config(tmp_path / "sub" / "run.yaml") == {
        "data": {"pivot": "en", "vocab": {"vocab_size": 100, "temperature": 2}}, "training": {"steps": 5}
    }  # fmt: skip
    values = load_config(
        tmp_path / "sub" / "run.yaml", parse_overrides(["training.steps=7", "model.kind=decoder"])
    )
    assert values["training"] == {"steps": 7} and values["model"] == {"kind": "decoder"}


def test_cycles_missing_files_and_bad_overrides_are_named(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="extends itself"):
        read_config(tmp_path / "a.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        read_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"--set expects key\.sub=value, got 'steps'"):
        parse_overrides(["steps"])
