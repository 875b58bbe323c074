"""``gradvac-plan``: table and JSON agree, presets are read off the model, bad flags exit with the
field named."""

from __future__ import annotations

import json

import pytest

from gradvac_ds.planning import PlanError, model_layout
from gradvac_ds.planning.__main__ import main
from gradvac_ds.planning.table import APPROACHES, SECTIONS
from gradvac_ds.training.modeling.config import PRESET_DIR

_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_DECIMAL = ("FLOP", "KFLOP", "MFLOP", "GFLOP", "TFLOP", "PFLOP", "EFLOP")
_LABEL, _CELL = 36, 28


def _run(capsys, *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def _value(text: str) -> float | None:
    """A table cell back to a number: ``n/a``, ``1,234`` or ``1.50 GiB`` / ``3.20 GFLOP``."""
    if text == "n/a":
        return None
    if " " not in text:
        return int(text.replace(",", ""))
    number, unit = text.split()
    base, units = (1024, _BINARY) if unit in _BINARY else (1000, _DECIMAL)
    return float(number) * base ** units.index(unit)


@pytest.mark.parametrize(
    "argv",
    [
        (
            "--params",
            "1.3B",
            "--tasks",
            "8",
            "--dp",
            "16",
            "--layers",
            "24",
            "--hidden",
            "2048",
            "--heads",
            "16",
            "--groups",
            "26",
        ),
        ("--params", "1e6", "--tasks", "4", "--dp", "2", "--tp", "2", "--zero-stage", "3", "--groups", "3"),
        ("--model", "tiny", "--vocab", "8000", "--tasks", "4", "--dp", "2", "--tp", "2"),
    ],
)
def test_json_parses_and_matches_the_table(capsys, argv):
    figures = json.loads(_run(capsys, *argv, "--json"))
    lines = _run(capsys, *argv).splitlines()
    checked = 0
    for _, section, rows in SECTIONS:
        for label, key, _ in rows:
            (line,) = [x for x in lines if x[2:_LABEL].strip() == label.strip() and x.startswith("  ")]
            for column, (approach, _) in enumerate(APPROACHES):
                shown = _value(line[_LABEL + column * _CELL : _LABEL + (column + 1) * _CELL].strip())
                exact = figures[approach][section][key]
                assert (shown is None) == (exact is None), (label, approach)
                if exact is not None:
                    assert shown == pytest.approx(exact, rel=5e-3, abs=0.5), (label, approach)
                checked += 1
    assert checked == 2 * sum(len(rows) for _, _, rows in SECTIONS)


def test_preset_drives_the_plan(capsys):
    """tiny (vocabulary 8000): P = 761 920, Ψ at T = 2 = 386 144, L = 4 layers + 5 other groups."""
    figures = json.loads(
        _run(capsys, "--model", "tiny", "--vocab", "8000", "--tasks", "4", "--tp", "2", "--json")
    )
    assert figures["inputs"]["params"] == 761_920
    assert figures["params_per_tp_rank"] == 386_144
    assert figures["inputs"]["layout"] == [list(model_layout("tiny", 8000, "encdec", 2).optimizer_groups[0])]
    assert figures["inputs"]["groups"] == 4 + 5  # layers + embeddings, final norms, output bias
    assert figures["inputs"]["activations"]["seq_length"] == 128
    assert figures["gradvac_ds"]["communication"]["gram_allreduce_ranks"] == 2
    decoder = json.loads(
        _run(capsys, "--model", "tiny", "--vocab", "8000", "--kind", "decoder", "--tasks", "2", "--json")
    )
    assert decoder["inputs"]["params"] == 720_256
    assert decoder["inputs"]["groups"] == 4 + 3
    matrix = json.loads(
        _run(capsys, "--model", "tiny", "--vocab", "8000", "--kind", "decoder", "--tasks", "2",
             "--granularity", "matrix", "--json")
    )  # fmt: skip
    assert matrix["inputs"]["groups"] == len(decoder["inputs"]["layout"][0])


def test_preset_by_path(capsys):
    path = PRESET_DIR / "tiny.yaml"
    figures = json.loads(_run(capsys, "--model", str(path), "--vocab", "8000", "--tasks", "2", "--json"))
    assert figures["inputs"]["params"] == 761_920


def test_unknown_preset_and_kind():
    with pytest.raises(PlanError, match=r"model = 'huge': .*known presets.*'tiny'"):
        model_layout("huge", 8000, "encdec", 1)
    with pytest.raises(
        PlanError, match=r"kind = 'mlm' is not allowed; choose one of \['encdec', 'decoder', 'marian'\]"
    ):
        model_layout("tiny", 8000, "mlm", 1)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--params", "1M", "--tasks", "2", "--zero-stage", "4", "--groups", "1"), "zero_stage = 4"),
        (
            ("--params", "1M", "--tasks", "2", "--precision", "fp64", "--groups", "1"),
            "['fp32', 'bf16', 'fp16']",
        ),
        (("--params", "1M", "--tasks", "2"), "granularity = 'layer': L depends on the model"),
        (("--params", "1M", "--tasks", "2", "--granularity", "block"), "granularity = 'block' is not"),
        (("--tasks", "2", "--groups", "1"), "params: give --params"),
        (("--params", "lots", "--tasks", "2", "--groups", "1"), "--params = 'lots'"),
        (("--model", "tiny", "--tasks", "2", "--groups", "3"), "--groups: --model tiny gives them"),
    ],
)
def test_cli_errors_name_the_field(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_tp_must_divide_preset_heads(capsys):
    with pytest.raises(SystemExit):
        main(["--model", "tiny", "--vocab", "8000", "--tasks", "2", "--tp", "3"])
    assert (
        "tensor-parallel size 3 must divide model config field 'num_attention_heads'"
        in capsys.readouterr().err
    )
