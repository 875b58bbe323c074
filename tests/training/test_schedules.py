"""Learning-rate multipliers: warm-up, then inverse square root, cosine to the floor, or constant."""

import math

import pytest

from gradvac_ds.training.schedules import lr_multiplier


def test_every_schedule_warms_up_linearly_to_the_peak() -> None:
    for name in ("inverse_sqrt", "cosine", "constant", "wsd"):
        factor = lr_multiplier(name, warmup_steps=10, total_steps=100)
        assert [factor(s) for s in (0, 4, 8)] == pytest.approx([0.1, 0.5, 0.9])
        assert factor(9) == pytest.approx(1.0)


def test_shapes_after_warm_up() -> None:
    inverse = lr_multiplier("inverse_sqrt", 10, 100)
    assert inverse(39) == pytest.approx(math.sqrt(10 / 40))
    cosine = lr_multiplier("cosine", 10, 110, min_lr_ratio=0.1)
    assert cosine(59) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way through the decay
    assert cosine(109) == pytest.approx(0.1) and cosine(500) == pytest.approx(0.1)
    assert lr_multiplier("constant", 0, 100)(77) == 1.0
    wsd = lr_multiplier("wsd", 10, 100, min_lr_ratio=0.2, decay_fraction=0.3)  # decays over steps 71-100
    assert wsd(69) == 1.0 and wsd(70) == pytest.approx(1 - 0.8 / 30)
    assert wsd(84) == pytest.approx(1 - 0.8 * 15 / 30) and wsd(99) == pytest.approx(0.2)
    assert lr_multiplier("cosine", 0, 100)(0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 100)))


def test_unknown_schedule_lists_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="allowed: \\['inverse_sqrt', 'cosine', 'constant', 'wsd'\\]"):
        lr_multiplier("linear", 10, 100)
