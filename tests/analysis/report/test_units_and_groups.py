"""Tasks -> units (pivot detection, same-direction aggregation) and group-name parsing."""

from __future__ import annotations

import numpy as np
import pytest

from gradvac_ds.analysis.report.layers import layer_profile
from gradvac_ds.analysis.report.units import detect_pivot, group_mean, unit_mapping, unit_similarity
from gradvac_ds.grouping import stack_layer


def test_pivot_is_the_language_common_to_all_tasks():
    assert detect_pivot(["de-en", "en-fr", "ja-en"]) == "en"
    assert detect_pivot(["de-en", "en-de"]) is None
    assert detect_pivot(["de-en", "fr-es"]) is None
    assert detect_pivot(["translate", "de-en"]) is None


def test_language_units_use_same_direction_pairs():
    tasks = ["de-en", "fr-en", "en-de", "en-fr", "en-ja"]
    mapping = unit_mapping(tasks)
    assert mapping.kind == "language" and mapping.units == ["de", "fr", "ja"] and mapping.pivot == "en"
    cosine = np.full((5, 5), -0.9)
    cosine[0, 1] = cosine[1, 0] = 0.2  # de-en / fr-en
    cosine[2, 3] = cosine[3, 2] = 0.4  # en-de / en-fr
    cosine[2, 4] = cosine[4, 2] = 0.6  # en-de / en-ja
    weight = np.ones((5, 5))
    weight[2, 3] = weight[3, 2] = 3
    sim = unit_similarity(cosine, weight, mapping)
    assert sim[0, 1] == pytest.approx((0.2 + 3 * 0.4) / 4)  # cross-direction -0.9 left out
    assert sim[0, 2] == pytest.approx(0.6) and sim[1, 2] == pytest.approx(-0.9)  # only cross pairs exist
    assert np.diag(sim).tolist() == [1.0, 1.0, 1.0]


def test_tasks_are_units_without_pivot_or_when_asked():
    assert unit_mapping(["de-en", "en-de"]).kind == "task"
    mapping = unit_mapping(["de-en", "fr-en"], group_by="task")
    assert mapping.units == ["de-en", "fr-en"] and mapping.unit_language == ["de", "fr"]
    with pytest.raises(ValueError, match="group_by"):
        unit_mapping(["de-en"], group_by="family")


def test_group_mean_weights_groups_equally_and_skips_empty_ones():
    mean = np.array([[[1, 0.2], [0.2, 1]], [[1, 0.6], [0.6, 1]], [[1, np.nan], [np.nan, 1]]])
    count = np.array([[[5, 5], [5, 5]], [[1, 1], [1, 1]], [[5, 0], [0, 5]]])
    averaged, total = group_mean(mean, count)
    assert averaged[0, 1] == pytest.approx(0.4) and total[0, 1] == 6


def test_layer_parsing_for_all_granularities():
    assert stack_layer("decoder.layers.11.mlp.linear_fc1.weight") == ("decoder", 11)
    assert stack_layer("encoder.layers.2") == ("encoder", 2)
    assert stack_layer("model.decoder.layers.1") == ("decoder", 1)
    assert stack_layer("module.model.encoder.layers.0.mlp.linear_fc2.bias") == ("encoder", 0)
    assert stack_layer("model.encoder.final_layernorm") is None
    assert stack_layer("encoder.final_layernorm") is None and stack_layer("model") is None
    names = [
        "embedding",
        "encoder.layers.1.a",
        "encoder.layers.1.b",
        "encoder.layers.0",
        "decoder.layers.0",
        "output_layer",
    ]
    profile = layer_profile(names, np.array([0.1, 0.2, 0.4, 0.5, 0.7, 0.9]))
    assert profile.layers["encoder"] == ([0, 1], [0.5, pytest.approx(0.3)])
    assert profile.layers["decoder"] == ([0], [0.7])
    assert profile.other == {"embedding": 0.1, "output_layer": 0.9}
