"""monitor_events: per-pair scalars averaged over groups."""

from __future__ import annotations

import re

import numpy as np
import pytest
from synthetic_logs import make_stats

from gradvac_ds.stats import monitor_events, pair_tag, tag_part


def test_pair_values_average_over_groups_and_skip_inactive_tasks():
    cosine = np.array(
        [[[1, 0.2, 0.5], [0.2, 1, 0.9], [0.5, 0.9, 1]], [[1, 0.4, np.nan], [0.4, 1, 0.9], [np.nan, 0.9, 1]]]
    )
    fired = np.zeros((2, 3, 3), dtype=bool)
    fired[0, 0, 1] = fired[1, 1, 0] = fired[1, 0, 1] = True
    stats = make_stats(cosine, fired, np.where(fired, 0.3, 0.0), np.array([True, True, False]))
    raw = monitor_events(stats, ["a-x", "b-x", "c-x"], ["g0", "g1"], 7)
    events = {tag: (value, step) for tag, value, step in raw}
    assert set(events) == {
        "gradvac/cos/a-x_vs_b-x",
        "gradvac/fire/a-x_vs_b-x",
        "gradvac/cos/mean",
        "gradvac/fire/rate",
    }
    assert events["gradvac/cos/a-x_vs_b-x"] == (pytest.approx(0.3), 7)
    assert events["gradvac/fire/a-x_vs_b-x"][0] == pytest.approx(3 / 4)
    assert events["gradvac/fire/rate"][0] == pytest.approx(3 / 4)


def test_wrong_shape_names_the_field():
    stats = make_stats(np.ones((2, 3, 3)), np.zeros((2, 3, 3), bool), np.zeros((2, 3, 3)), np.ones(2, bool))
    with pytest.raises(ValueError, match=r"stats\.active"):
        monitor_events(stats, ["a", "b", "c"], ["g0", "g1"], 0)


def test_tags_are_file_names_on_every_monitor():
    """The CSV monitor turns a tag into a file name (``/`` -> ``_``) and TensorBoard rewrites
    anything outside ``[-/\\w.]``: no tag may hold ``|``, ``:``, spaces or other separators."""
    assert pair_tag("de-en", "fr-en") == "de-en_vs_fr-en"
    assert tag_part("en|de: x") == "en_de__x"
    cosine = np.full((1, 2, 2), 0.5)
    stats = make_stats(cosine, np.zeros((1, 2, 2), bool), np.zeros((1, 2, 2)), np.ones(2, bool))
    for tag, _, _ in monitor_events(stats, ["en|de", "en fr"], ["g0"], 0):
        assert re.fullmatch(r"[\w./\-]+", tag), tag
