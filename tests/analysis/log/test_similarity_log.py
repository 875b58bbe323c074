"""SimilarityLog: window aggregation, bounded size by pairwise merging, resume, and the reader."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from synthetic_logs import make_stats, random_step

from gradvac_ds.analysis.log import SimilarityLog, load_similarity_log, merge_windows
from gradvac_ds.analysis.log.storage import LOG_DIRNAME, META_NAME
from gradvac_ds.analysis.log.window import WindowAccumulator
from gradvac_ds.stats import step_arrays

L, K = 3, 4
TASKS = ["de-en", "fr-en", "ja-en", "en-de"]
GROUPS = ["embedding", "encoder.layers.0", "decoder.layers.0"]


def direct_window(steps: list) -> dict[str, np.ndarray]:
    """Means computed straight from the per-step stats, the oracle for the logger."""
    cos = np.stack([s.cosine.numpy() for s in steps])
    active = np.stack([s.active.numpy() for s in steps])
    valid = np.isfinite(cos) & (active[:, :, None] & active[:, None, :])[:, None]
    fired = np.stack([s.fired.numpy() for s in steps]) & valid
    coef = np.abs(np.stack([s.coefficient.numpy() for s in steps]))
    with warnings.catch_warnings():  # nanmean of all-NaN entries warns and gives the NaN we expect
        warnings.simplefilter("ignore", RuntimeWarning)
        return {
            "cos_mean": np.nanmean(np.where(valid, cos, np.nan), axis=0),
            "cos_count": valid.sum(0),
            "fire_count": fired.sum(0),
            "coef_abs_mean": np.nanmean(np.where(fired, coef, np.nan), axis=0),
        }


def record_all(run_dir: Path, steps: list, **kwargs) -> None:
    with SimilarityLog(run_dir, TASKS, GROUPS, **kwargs) as log:
        for step, stats in enumerate(steps):
            log.record(step, stats)


def test_windows_equal_direct_means_excluding_nan_and_inactive(tmp_path):
    rng = np.random.default_rng(0)
    steps = [random_step(rng, L, K) for _ in range(23)]
    record_all(tmp_path, steps, window=5, metadata={"beta": 0.01})
    data = load_similarity_log(tmp_path)
    assert [(w.step_first, w.step_last, w.num_steps) for w in data.windows] == [
        (0, 4, 5),
        (5, 9, 5),
        (10, 14, 5),
        (15, 19, 5),
        (20, 22, 3),
    ]
    for k, window in enumerate(data.windows):
        expected = direct_window(steps[5 * k : 5 * k + 5])
        np.testing.assert_array_equal(window.cos_count, expected["cos_count"])
        np.testing.assert_array_equal(window.fire_count, expected["fire_count"])
        np.testing.assert_allclose(window.cos_mean, expected["cos_mean"], rtol=1e-6, equal_nan=True)
        np.testing.assert_allclose(window.coef_abs_mean, expected["coef_abs_mean"], rtol=1e-6, equal_nan=True)
    assert data.task_names == TASKS and data.group_names == GROUPS
    assert data.metadata == {"beta": 0.01} and data.num_steps == 23


def test_inactive_task_with_finite_cosine_is_not_counted():
    cosine = np.full((1, 2, 2), 0.9)
    stats = make_stats(cosine, np.ones((1, 2, 2), bool), np.ones((1, 2, 2)), np.array([True, False]))
    accumulator = WindowAccumulator(1, 2)
    accumulator.add(0, step_arrays(stats, 1, 2))
    window = accumulator.window()
    assert window.cos_count.tolist() == [[[1, 0], [0, 0]]]
    assert window.fire_count.tolist() == [[[1, 0], [0, 0]]]
    assert np.isnan(window.cos_mean[0, 0, 1]) and np.isnan(window.coef_abs_mean[0, 1, 0])


def test_merge_is_count_weighted_mean():
    rng = np.random.default_rng(1)
    steps = [random_step(rng, L, K) for _ in range(9)]
    parts = []
    for chunk in (steps[:2], steps[2:7], steps[7:]):
        accumulator = WindowAccumulator(L, K)
        for step, stats in enumerate(chunk):
            accumulator.add(step, step_arrays(stats, L, K))
        parts.append(accumulator.window())
    merged = merge_windows(parts)
    expected = direct_window(steps)
    np.testing.assert_allclose(merged.cos_mean, expected["cos_mean"], rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(merged.coef_abs_mean, expected["coef_abs_mean"], rtol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(merged.cos_count, expected["cos_count"])
    assert merged.num_steps == 9


def test_size_stays_bounded_and_merges_are_exact(tmp_path):
    rng = np.random.default_rng(2)
    steps = [random_step(rng, L, K) for _ in range(101)]
    record_all(tmp_path, steps, window=1, max_windows=6)
    data = load_similarity_log(tmp_path)
    chunk_files = sorted((tmp_path / LOG_DIRNAME).glob("*.npz"))
    assert len(data.windows) <= 6 and len(chunk_files) == len(data.windows)
    assert data.window == 1 and data.window_length > 1 and data.num_steps == 101
    firsts = [w.step_first for w in data.windows]
    lasts = [w.step_last for w in data.windows]
    assert firsts[0] == 0 and lasts[-1] == 100 and firsts[1:] == [last + 1 for last in lasts[:-1]]
    for window in data.windows:
        expected = direct_window(steps[window.step_first : window.step_last + 1])
        np.testing.assert_array_equal(window.cos_count, expected["cos_count"])
        np.testing.assert_allclose(window.cos_mean, expected["cos_mean"], rtol=1e-5, equal_nan=True)
    total = data.total()
    np.testing.assert_allclose(total.cos_mean, direct_window(steps)["cos_mean"], rtol=1e-5, equal_nan=True)


def test_meta_is_json_and_lists_only_live_chunks(tmp_path):
    rng = np.random.default_rng(3)
    record_all(tmp_path, [random_step(rng, L, K) for _ in range(12)], window=2, max_windows=3)
    directory = tmp_path / LOG_DIRNAME
    meta = json.loads((directory / META_NAME).read_text())
    assert {chunk["file"] for chunk in meta["chunks"]} == {path.name for path in directory.glob("*.npz")}
    assert not list(directory.glob(".*.tmp"))


def test_resume_drops_windows_of_redone_steps(tmp_path):
    rng = np.random.default_rng(4)
    steps = [random_step(rng, L, K) for _ in range(20)]
    record_all(tmp_path, steps[:15], window=5)
    with SimilarityLog(tmp_path, TASKS, GROUPS, window=5) as log:
        for step in range(10, 20):
            log.record(step, steps[step])
    data = load_similarity_log(tmp_path)
    assert [(w.step_first, w.step_last) for w in data.windows] == [(0, 4), (5, 9), (10, 14), (15, 19)]
    np.testing.assert_allclose(
        data.total().cos_mean, direct_window(steps)["cos_mean"], rtol=1e-5, equal_nan=True
    )


def test_other_tasks_in_existing_log_are_refused(tmp_path):
    rng = np.random.default_rng(5)
    record_all(tmp_path, [random_step(rng, L, K)])
    with pytest.raises(ValueError, match="task_names"):
        SimilarityLog(tmp_path, ["a-b", "c-b", "d-b", "e-b"], GROUPS)


def test_bad_input_is_refused_with_the_field_named(tmp_path):
    rng = np.random.default_rng(6)
    with SimilarityLog(tmp_path, TASKS, GROUPS) as log:
        wrong = random_step(rng, L + 1, K)
        with pytest.raises(ValueError, match=r"stats\.cosine"):
            log.record(0, wrong)
        log.record(3, random_step(rng, L, K))
        with pytest.raises(ValueError, match="steps must increase"):
            log.record(3, random_step(rng, L, K))
    with pytest.raises(RuntimeError):
        log.record(4, random_step(rng, L, K))
    with pytest.raises(ValueError, match="window"):
        SimilarityLog(tmp_path / "other", TASKS, GROUPS, window=0)


def test_reader_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=META_NAME):
        load_similarity_log(tmp_path)
    (tmp_path / LOG_DIRNAME).mkdir()
    (tmp_path / LOG_DIRNAME / META_NAME).write_text('{"format": "gradvac_similarity", "version": 1}')
    with pytest.raises(ValueError, match="task_names"):
        load_similarity_log(tmp_path)
