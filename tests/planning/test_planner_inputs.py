"""Bad planner inputs are refused with a message naming the field and the allowed values."""

from __future__ import annotations

import pytest

from gradvac_ds.config import FieldError
from gradvac_ds.errors import ConfigError
from gradvac_ds.planning import ActivationInputs, PlanError, plan


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"zero_stage": 4}, FieldError, r"zero_stage = 4 .*\[0, 1, 2, 3\]"),
        ({"precision": "fp8"}, FieldError, r"precision = 'fp8' .*\['fp32', 'bf16', 'fp16'\]"),
        ({"buffer_dtype": "fp16"}, FieldError, r"buffer_dtype = 'fp16' .*\['fp32', 'bf16'\]"),
        ({"optimizer": "lamb"}, FieldError, r"optimizer = 'lamb' .*\['adam', 'adamw', 'sgd'\]"),
        ({"dp": 0}, FieldError, r"dp = 0 must be a positive integer"),
        ({"tp": 2.0}, FieldError, r"tp = 2.0 must be a positive integer"),
        ({"groups": True}, FieldError, r"groups = True must be a positive integer"),
        ({"layout": ((4, 0),)}, FieldError, r"layout numel = 0 must be a positive integer"),
        ({"layout": ()}, PlanError, r"layout must hold"),
        (
            {"pipeline": 2},
            PlanError,
            r"unknown plan option\(s\) \['pipeline'\]; allowed options are \[.*'dp'",
        ),
    ],
)
def test_bad_option(options, error, message):
    """Field checks raise the shared FieldError, planner-level ones PlanError: both ConfigErrors."""
    assert issubclass(error, ConfigError)
    with pytest.raises(error, match=message):
        plan(1000, 2, **options)


def test_tp_must_divide_heads_and_lists_the_divisors():
    act = ActivationInputs(
        micro_batch_tokens=64, seq_length=8, hidden_size=48, num_attention_heads=16, num_layers=2
    )
    with pytest.raises(
        FieldError,
        match=r"tp = 3 must divide num_attention_heads = 16; allowed tp values are \[1, 2, 4, 8, 16\]",
    ):
        plan(1000, 2, tp=3, activations=act)


def test_tasks_must_be_positive():
    with pytest.raises(FieldError, match="tasks = 0 must be a positive integer"):
        plan(1000, 0)


@pytest.mark.parametrize("text", ["abc", "-5M", "0", "1.5", "1.3X", "", "nan"])
def test_bad_parameter_counts(text):
    with pytest.raises(
        PlanError, match=r"params = .* is not a parameter count; give a positive whole number"
    ):
        plan(text, 2)


def test_bad_activation_inputs():
    with pytest.raises(FieldError, match="seq_length = 0 must be a positive integer"):
        ActivationInputs(
            micro_batch_tokens=64, seq_length=0, hidden_size=48, num_attention_heads=4, num_layers=2
        )
