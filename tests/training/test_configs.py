"""Every run config in configs/ loads, states what its header says, and carries current planner numbers.

Configs that read a real corpus (``data.source`` fairseq or multiway) may leave ``data.path`` to the
command line (``--set data.path=...``); they are loaded with a placeholder path. A config whose
header pastes a ``gradvac-plan`` table must agree with it: the planner's arguments match the config
(preset, vocabulary, ZeRO stage, precision, micro-batch tokens, sequence length), and running the
planner again prints the same table.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest
import yaml

from gradvac_ds.training.run_config import RunConfig

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
REAL_SOURCES = ("fairseq", "multiway", "monolingual")
PAPER_TOKENS = 500_000


def load(path: Path) -> RunConfig:
    raw = yaml.safe_load(path.read_text())
    data = raw.get("data") or {}
    overrides = {}
    if data.get("source") in REAL_SOURCES and not data.get("path"):
        overrides["data.path"] = "/path/to/corpus"
    return RunConfig.load(path, overrides)


def plan_block(path: Path) -> tuple[list[str], list[str]] | None:
    """(planner arguments, pasted table lines) from the header comment, or None."""
    lines = path.read_text().splitlines()
    for index, line in enumerate(lines):
        match = re.match(r"#\s+gradvac-plan (.*)$", line)
        if match:
            table = []
            for follow in lines[index + 1 :]:
                if not follow.startswith("#"):
                    break
                table.append(follow[1:].strip())
            while table and not table[-1]:
                table.pop()
            return shlex.split(match.group(1)), table
    return None


def planner_args(args: list[str]) -> dict[str, str]:
    return {args[i].removeprefix("--"): args[i + 1] for i in range(0, len(args) - 1, 2)}


def test_configs_found():
    names = {p.name for p in CONFIGS}
    expected = {"demo", "zero1", "zero3", "real_corpus", "paper", "paper_big_8x8", "model_1p3b_8x8"}
    assert {f"{n}.yaml" for n in expected} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads(path):
    config = load(path)
    assert config.deepspeed["gradvac"]["beta"] > 0
    ds = config.deepspeed_config(config.training.modes[0], ["de-en", "fr-en"])
    assert ds["gradient_accumulation_steps"] == config.data.batching.micro_batches_per_step


def test_real_corpus_needs_the_path_from_the_command_line():
    path = next(p for p in CONFIGS if p.stem == "real_corpus")
    with pytest.raises(Exception, match=r"data\.path"):
        RunConfig.load(path)
    config = RunConfig.load(path, {"data.path": "../shared/eval-data/bible"})
    assert config.data.source in REAL_SOURCES and config.data.path == "../shared/eval-data/bible"
    assert "--set data.path=" in path.read_text()


@pytest.mark.parametrize("stage", [1, 3])
def test_zero_variants_of_the_demo(stage):
    config = load(next(p for p in CONFIGS if p.stem == f"zero{stage}"))
    demo = load(next(p for p in CONFIGS if p.stem == "demo"))
    assert config.deepspeed["zero_optimization"]["stage"] == stage
    assert config.model == demo.model and config.data.source == "synthetic"


@pytest.mark.parametrize("name", ["paper", "paper_big_8x8", "model_1p3b_8x8"])
def test_paper_recipe(name):
    path = next(p for p in CONFIGS if p.stem == name)
    config = load(path)
    training, gradvac = config.training, config.deepspeed["gradvac"]
    assert training.betas == (0.9, 0.98) and training.warmup_steps == 30_000
    assert training.lr == (1e-3 if name.startswith("paper") else 5e-4)
    assert gradvac["beta"] == 0.01 and gradvac["granularity"] == "layer"
    assert config.deepspeed["bf16"]["enabled"] is True
    assert config.deepspeed["zero_optimization"]["stage"] in (2, 3)
    assert config.model.preset == ("1.3b" if name == "model_1p3b_8x8" else "big")
    # ~500k tokens per step = max_tokens x micro-batches per step x DP (the planner's --dp)
    block = plan_block(path)
    assert block is not None
    dp = int(planner_args(block[0])["dp"])
    assert dp == (8 if name == "paper" else 64)
    batching = config.data.batching
    tokens = batching.max_tokens * batching.micro_batches_per_step * dp
    assert abs(tokens - PAPER_TOKENS) <= 0.1 * PAPER_TOKENS
    assert f"{tokens:,}" in path.read_text()


@pytest.mark.parametrize("path", [p for p in CONFIGS if plan_block(p)], ids=lambda p: p.stem)
def test_pasted_planner_numbers_are_current(path):
    from gradvac_ds.planning.__main__ import main

    args, table = plan_block(path)
    config, given = load(path), planner_args(args)
    ds = config.deepspeed
    precision = (
        "bf16"
        if ds.get("bf16", {}).get("enabled")
        else "fp16"
        if ds.get("fp16", {}).get("enabled")
        else "fp32"
    )
    assert given["model"] == config.model.preset
    assert int(given["vocab"]) == config.data.vocab.vocab_size
    assert int(given["zero-stage"]) == ds["zero_optimization"]["stage"]
    assert given["precision"] == precision
    assert int(given["micro-batch-tokens"]) == config.data.batching.max_tokens
    assert int(given["seq-length"]) == config.data.max_positions
    zero = ds["zero_optimization"]
    assert float(given.get("reduce-bucket-size", 5e8)) == float(zero.get("reduce_bucket_size", 5e8))
    if zero["stage"] in (1, 2):
        assert ("--overlap-comm" in args) == bool(zero.get("overlap_comm", False))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(args)
    assert [line.strip() for line in out.getvalue().strip().splitlines()] == table
