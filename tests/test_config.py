"""Validation of the "gradvac" section."""

from __future__ import annotations

import json

import pytest
import torch

from gradvac_ds.config import ConfigError, GradVacConfig, split_config


def test_defaults_are_the_papers():
    cfg = GradVacConfig()
    assert (cfg.mode, cfg.beta, cfg.granularity, cfg.tasks) == ("gradvac", 0.01, "layer", "discover")
    assert cfg.buffer_torch_dtype is torch.float32


def test_round_trip_through_deepspeed_json(tmp_path):
    section = {
        "mode": "pcgrad",
        "beta": 0.5,
        "granularity": "matrix",
        "tasks": ["a", "b"],
        "buffer_dtype": "bf16",
    }
    path = tmp_path / "ds.json"
    path.write_text(json.dumps({"train_batch_size": 8, "gradvac": section}))
    ds_config, cfg = split_config(path)
    assert ds_config == {"train_batch_size": 8}
    assert cfg.tasks == ("a", "b") and cfg.buffer_torch_dtype is torch.bfloat16
    assert GradVacConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"mode": "gradvacc"},
            r"gradvac.mode = 'gradvacc' is not allowed; choose one of \['gradvac', 'pcgrad', 'sum', "
            r"'upgrad', 'mgda', 'imtl_g', 'aligned_mtl'\]",
        ),
        ({"options": {"nope": {}}}, r"gradvac.options = 'nope' is not allowed; choose one of \['gradvac'"),
        ({"options": {"mgda": 3}}, r"gradvac.options.mgda = 3 must be a mapping of option: value"),
        (
            {"options": {"mgda": {"max_iters": 0}}},
            r"gradvac.options.mgda = \{'max_iters': 0\} is not valid: max_iters = 0 must be >= 1",
        ),
        (
            {"options": {"upgrad": {"eps": 1}}},
            r"gradvac.options.upgrad = .* is not valid: \['eps'\] are not options of mode 'upgrad'; "
            r"allowed: \['reg_eps'\]",
        ),
        (
            {"options": {"aligned_mtl": {"scale_mode": 2}}},
            r"gradvac.options.aligned_mtl = .* is not valid: scale_mode = 2 must be str",
        ),
        ({"beta": 1.5}, r"gradvac.beta = 1.5 must be a number in \[0, 1\]"),
        ({"beta": "0.1"}, r"gradvac.beta"),
        ({"granularity": "layers"}, r"gradvac.granularity = 'layers'.*'model', 'enc_dec', 'layer', 'matrix'"),
        ({"tasks": []}, r"gradvac.tasks"),
        ({"tasks": ["a", "a"]}, r"duplicate"),
        ({"tasks": "all"}, r"gradvac.tasks = 'all'"),
        ({"buffer_dtype": "fp16"}, r"gradvac.buffer_dtype = 'fp16'.*\['fp32', 'bf16'\]"),
        ({"log_interval": -1}, r"gradvac.log_interval"),
        ({"seed": True}, r"gradvac.seed"),
        ({"betta": 0.1}, r"unknown field\(s\) \['betta'\] in gradvac; allowed fields are"),
    ],
)
def test_bad_fields_are_named(section, message):
    with pytest.raises(ConfigError, match=message):
        GradVacConfig.from_dict(section)


def test_missing_section():
    with pytest.raises(ConfigError, match='no "gradvac" section'):
        split_config({"train_batch_size": 1})


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"beta": float("nan")}, r"gradvac.beta = nan must be a finite number"),
        ({"beta": float("inf")}, r"gradvac.beta = inf must be a finite number"),
        ({"max_target": 1.0}, r"gradvac.max_target = 1.0 must be in \(0, 1\)"),
        ({"tasks": 3}, r"gradvac.tasks = 3 must be a list or a string"),
        ({"tasks": ["a", 3]}, r"gradvac.tasks = \['a', 3\] must be a list or a string"),
    ],
)
def test_non_finite_and_mistyped_fields_are_named(section, message):
    with pytest.raises(ConfigError, match=message):
        GradVacConfig.from_dict(section)


@pytest.mark.parametrize(
    ("ds_config", "message"),
    [
        ({"gradvac": None}, r'"gradvac" section is null'),
        ({"gradvac": [1]}, r"gradvac must be a mapping"),
        (
            {"gradvac": {}, "gradient_accumulation_steps": 0},
            r"gradient_accumulation_steps = 0 must be a positive",
        ),
        ({"gradvac": {}, "gradient_accumulation_steps": "8"}, r"gradient_accumulation_steps = '8'"),
        (
            {"gradvac": {}, "fp16": {"enabled": True}, "bf16": {"enabled": True}},
            r"fp16.enabled and bf16.enabled are both true",
        ),
    ],
)
def test_deepspeed_fields_gradvac_relies_on_are_checked_early(ds_config, message):
    with pytest.raises(ConfigError, match=message):
        split_config(ds_config)
