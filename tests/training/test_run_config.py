"""The run configuration of launch/train.py: validation before anything starts, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gradvac_ds.config import ConfigError
from gradvac_ds.training.config_file import load_config
from gradvac_ds.training.run_config import RunConfig

DEMO = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"


def _demo() -> dict:
    return yaml.safe_load(DEMO.read_text())


def test_demo_config_loads_and_derives_the_deepspeed_config():
    config = RunConfig.load(DEMO, {"training.steps": 7, "data.batching.micro_batches_per_step": 3})
    assert config.training.steps == 7 and config.training.modes == ("sum", "pcgrad", "gradvac")
    ds = config.deepspeed_config("pcgrad", ["en-qaa", "en-qab"])
    assert ds["gradient_accumulation_steps"] == 3
    assert ds["gradvac"]["mode"] == "pcgrad" and ds["gradvac"]["tasks"] == ["en-qaa", "en-qab"]
    assert config.deepspeed["gradvac"].get("mode") is None, "deriving must not modify the run config"
    model = config.model.model_config()  # the tiny preset with the demo's overrides
    assert (model.name, model.hidden_size, model.dropout, model.attention_dropout) == ("tiny", 64, 0.0, 0.0)
    assert model.label_smoothing == 0.1


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ("model", "kind"),
            "seq2seq",
            r"model.kind = 'seq2seq' is not allowed; choose one of \['encdec', 'decoder', 'marian'\]",
        ),
        (("model", "tensor_parallel"), 0, r"model.tensor_parallel = 0 must be a positive int"),
        (("training", "modes"), ["sum", "adam"], r"training.modes.*'gradvac', 'pcgrad', 'sum'"),
        (("training", "warmup_steps"), -1, r"training.warmup_steps"),
        (
            ("training", "dist_timeout_minutes"),
            0,
            r"training.dist_timeout_minutes = 0(\.0)? must be a positive",
        ),
        (("training", "similarity_window"), 0, r"training.similarity_window = 0 must be a positive"),
        (("training", "epochs"), 3, r"unknown field\(s\) \['epochs'\] in training"),
        (("evaluation", "beam_size"), 0, r"evaluation.beam_size"),
        (("evaluation", "max_valid_sentences"), 0, r"evaluation.max_valid_sentences = 0 must be a positive"),
        (
            ("deepspeed", "gradient_accumulation_steps"),
            4,
            r"derived from data.batching.micro_batches_per_step",
        ),
        (("deepspeed", "gradvac"), {"beta": 2.0}, r"gradvac.beta = 2.0 must be a number in \[0, 1\]"),
        (("data", "direction"), "sideways", r"data.direction"),
        (("training", "lr_schedule"), "linear", r"training.lr_schedule = 'linear' is not allowed"),
        (("training", "min_lr_ratio"), 1.5, r"training.min_lr_ratio = 1.5 must be a number in \[0, 1\]"),
        (("training", "threads"), 0, r"training.threads = 0 must be a positive"),
        (("model", "overrides"), {"dropout": 1.0}, r"'dropout' must be a number in \[0, 1\)"),
        (("model", "overrides"), {"heads": 2}, r"unknown field\(s\) \['heads'\] in model config"),
    ],
)
def test_bad_fields_are_named(path, value, message):
    values = _demo()
    values[path[0]][path[1]] = value
    with pytest.raises(ValueError, match=message):
        RunConfig.from_dict(values)


def test_missing_and_unknown_top_level_fields():
    values = _demo()
    del values["run_dir"]
    with pytest.raises(ConfigError, match=r"missing required field\(s\) \['run_dir'\]"):
        RunConfig.from_dict(values)
    with pytest.raises(ConfigError, match=r"unknown field\(s\) \['optimizer'\] in the config"):
        RunConfig.from_dict({**_demo(), "optimizer": {}})
    with pytest.raises(ConfigError, match="does not exist"):
        RunConfig.load("no/such/run.yaml")


def test_extends_merges_sections_over_the_base(tmp_path):
    (tmp_path / "base.yaml").write_text(DEMO.read_text())
    (tmp_path / "child.yaml").write_text(
        "extends: base.yaml\nrun_dir: runs/child\ndeepspeed:\n  zero_optimization: {stage: 3}\n"
    )
    child, demo = RunConfig.load(tmp_path / "child.yaml"), RunConfig.load(DEMO)
    assert child.run_dir == "runs/child" and child.deepspeed["zero_optimization"]["stage"] == 3
    assert (
        child.deepspeed["zero_optimization"]["reduce_bucket_size"]
        == demo.deepspeed["zero_optimization"]["reduce_bucket_size"]
    )
    assert child.data == demo.data and child.training == demo.training
    (tmp_path / "loop.yaml").write_text("extends: loop.yaml\n")
    with pytest.raises(ConfigError, match="extends itself"):
        RunConfig.load(tmp_path / "loop.yaml")


def test_the_model_kind_is_checked_against_its_registry_entry():
    """A kind's limits come from its ModelSpec: Marian has no tensor parallelism and no LM."""
    values = _demo()
    values["model"] = {"preset": "tiny", "kind": "marian", "tensor_parallel": 2}
    with pytest.raises(
        ValueError, match=r"model.tensor_parallel = 2: model.kind 'marian' supports .* up to 1"
    ):
        RunConfig.from_dict(values)
    values["model"]["tensor_parallel"] = 1
    assert RunConfig.from_dict(values).model.kind == "marian"
    lm = load_config(DEMO.parent / "demo_lm.yaml")
    assert RunConfig.from_dict(lm).model.kind == "decoder"
    lm["model"]["kind"] = "marian"
    with pytest.raises(
        ConfigError, match=r"model.kind = 'marian': language-model pretraining .* \['decoder'\]"
    ):
        RunConfig.from_dict(lm)
