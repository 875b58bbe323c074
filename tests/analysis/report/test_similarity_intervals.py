"""Intervals for similarity vs distance on planted logs: structure -> "holds", none -> "not
significant"; the vocabulary control explains a similarity that only follows shared pieces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synthetic_logs import ACROSS, FAMILIES, GROUPS, WITHIN, planted_cosine

from gradvac_ds.analysis.log import SimilarityLog
from gradvac_ds.analysis.log.reader import load_similarity_log
from gradvac_ds.analysis.report.intervals import (
    EMBEDDING_OUTPUT,
    LAYERS,
    OTHER,
    group_class,
    piece_overlap,
    similarity_intervals,
)
from gradvac_ds.analysis.report.tables import load_distances

LANGUAGES = list(FAMILIES)
FAST = {"resamples": 200, "permutations": 999}


def write_log(
    folder: Path, structured: bool, seed: int, steps: int = 60, base: np.ndarray | None = None
) -> Path:
    """A log of tasks "<lang>-en": family structure, random similarity, or the given ``base`` [K, K]."""
    rng = np.random.default_rng(seed)
    families = np.array([FAMILIES[lang] for lang in LANGUAGES])
    if base is None and structured:
        base = np.where(families[:, None] == families[None, :], WITHIN, ACROSS)
    elif base is None:
        base = rng.uniform(-0.2, 0.6, (len(LANGUAGES), len(LANGUAGES)))
        base = (base + base.T) / 2
    with SimilarityLog(folder, [f"{lang}-en" for lang in LANGUAGES], GROUPS, window=10) as log:
        for step, stats in enumerate(planted_cosine(rng, LANGUAGES, base, steps)):
            log.record(step, stats)
    return folder


def random_pieces(seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Piece counts over 40 pieces, unrelated to the families."""
    return LANGUAGES, np.random.default_rng(seed).integers(0, 5, (len(LANGUAGES), 40)).astype(float)


def test_planted_structure_holds_with_intervals_and_mantel(tmp_path, planted_distances):
    logs = [load_similarity_log(write_log(tmp_path / f"s{s}", True, s)) for s in range(3)]
    result = similarity_intervals(logs, load_distances(planted_distances), random_pieces(), **FAST)
    rho = result["measures"]["rho"]
    assert rho["estimate"] < -0.5 and rho["high"] < 0 and rho["low"] < rho["estimate"]
    assert result["mantel"]["similarity_vs_distance"]["p_value"] < 0.01
    assert result["finding"] == "holds" and result["seeds"] == 3 and result["windows"] == [6, 6, 6]
    assert result["finding_given_overlap"] == "holds"  # the pieces are unrelated to the families
    within = result["measures"]["similarity[aa|ab]"]
    assert within["low"] < WITHIN < within["high"]
    assert result["measures"]["partial_rho"]["high"] < 0
    for key in ("rho[encoder.0]", "rho[decoder.1]", "rho[encoder]", "rho[decoder]", "rho[embedding]"):
        assert result["measures"][key]["estimate"] < -0.5, key
    shares = [result["measures"][f"share[{c}]"]["estimate"] for c in (EMBEDDING_OUTPUT, LAYERS, OTHER)]
    assert shares[0] == pytest.approx(2 / 6, abs=0.05) and shares[1] == pytest.approx(4 / 6, abs=0.05)
    assert shares[2] == 0.0


def test_unstructured_similarity_is_not_significant(tmp_path, planted_distances):
    logs = [load_similarity_log(write_log(tmp_path / "u", False, 5))]
    result = similarity_intervals(logs, load_distances(planted_distances), **FAST)
    assert result["finding"] == "not significant"
    assert result["mantel"]["similarity_vs_distance"]["p_value"] > 0.05
    assert "partial_rho" not in result["measures"] and "finding_given_overlap" not in result


def test_shared_pieces_can_account_for_the_correlation(tmp_path):
    """Languages at latent positions t: their piece distributions are bumps around t, distance is
    |t_a - t_b| + jitter, and similarity follows the piece overlap only. Plain Mantel: significant;
    partial Mantel given overlap: not."""
    rng = np.random.default_rng(3)
    positions = rng.uniform(0, 1, len(LANGUAGES))
    grid = np.linspace(0, 1, 200)
    counts = 100 * np.exp(-((grid[None, :] - positions[:, None]) ** 2) / 0.02)
    overlap = piece_overlap(LANGUAGES, counts, LANGUAGES)
    lines = ["lang1,lang2,distance"]
    for x, a in enumerate(LANGUAGES):
        for y in range(x + 1, len(LANGUAGES)):
            gap = abs(positions[x] - positions[y]) + rng.uniform(-0.05, 0.05)
            lines.append(f"{a},{LANGUAGES[y]},{gap:.4f}")
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    logs = [load_similarity_log(write_log(tmp_path / "s", True, 0, base=overlap))]
    result = similarity_intervals(logs, load_distances(tmp_path / "d.csv"), (LANGUAGES, counts), **FAST)
    assert result["measures"]["rho_overlap"]["low"] > 0.5
    assert result["mantel"]["similarity_vs_distance"]["p_value"] < 0.01
    assert result["mantel"]["similarity_vs_overlap"]["p_value"] < 0.01
    assert result["mantel"]["similarity_vs_distance_given_overlap"]["p_value"] > 0.05
    partial = result["measures"]["partial_rho"]
    assert partial["low"] < 0 < partial["high"]
    assert result["finding"] == "holds" and result["finding_given_overlap"] == "not significant"


def test_a_step_range_analyses_only_its_windows(tmp_path, planted_distances):
    """60 steps of random similarity, then 60 with family structure: the second half holds, the
    first does not, and a range past the log's end is refused with the covered steps named."""
    rng = np.random.default_rng(2)
    families = np.array([FAMILIES[lang] for lang in LANGUAGES])
    structured = np.where(families[:, None] == families[None, :], WITHIN, ACROSS)
    noise = rng.uniform(-0.2, 0.6, (len(LANGUAGES), len(LANGUAGES)))
    steps = planted_cosine(rng, LANGUAGES, (noise + noise.T) / 2, 60)
    steps += planted_cosine(rng, LANGUAGES, structured, 60)
    with SimilarityLog(tmp_path / "r", [f"{lang}-en" for lang in LANGUAGES], GROUPS, window=10) as log:
        for step, stats in enumerate(steps):
            log.record(step, stats)
    full = load_similarity_log(tmp_path / "r")
    late, early = full.steps_between(60, 120), full.steps_between(0, 60)
    assert [w.step_first for w in late.windows] == [60, 70, 80, 90, 100, 110]
    assert [w.step_last for w in early.windows] == [9, 19, 29, 39, 49, 59]
    assert full.steps_between(15, 45).windows == full.windows[2:4]  # only windows wholly inside
    distances = load_distances(planted_distances)
    assert similarity_intervals([late], distances, **FAST)["finding"] == "holds"
    assert similarity_intervals([early], distances, **FAST)["finding"] == "not significant"
    covered = r"inside steps 200:300 \(the log covers steps 0\.\.119 in windows of 10"
    with pytest.raises(ValueError, match=covered):
        full.steps_between(200, 300)


def test_piece_overlap_is_histogram_intersection():
    counts = np.array([[2.0, 2.0, 0.0], [0.0, 2.0, 2.0], [1.0, 1.0, 0.0]])
    overlap = piece_overlap(["x", "y", "z"], counts, ["x", "y", "z", "w"])
    assert overlap[0, 1] == pytest.approx(0.5) and overlap[0, 2] == pytest.approx(1.0)
    assert np.isnan(overlap[0, 3]) and overlap[1, 1] == pytest.approx(1.0)


def test_group_classes():
    assert group_class("model.encoder.layers.3.mlp.linear_fc1.weight") == LAYERS
    assert group_class("embedding.word_embeddings") == EMBEDDING_OUTPUT
    assert group_class("output_layer") == EMBEDDING_OUTPUT
    assert group_class("decoder.final_layernorm") == OTHER


def test_mismatched_logs_are_rejected(tmp_path, planted_distances):
    first = load_similarity_log(write_log(tmp_path / "a", True, 0))
    with SimilarityLog(tmp_path / "b", ["aa-en", "ab-en"], GROUPS, window=10) as log:
        log.record(0, planted_cosine(np.random.default_rng(0), ["aa", "ab"], np.eye(2), 1)[0])
    with pytest.raises(ValueError, match="tasks or groups differ"):
        similarity_intervals([first, load_similarity_log(tmp_path / "b")], load_distances(planted_distances))
