"""Temperature sampling, rank-consistent step schedule, sharding, and exact resumption."""

import functools
import json
import math
import tempfile
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from data_helpers import write_pairs

from gradvac_ds.training.data import (
    BatchingConfig,
    DataConfigError,
    PairDataset,
    StepSchedule,
    TaskBatch,
    temperature_probabilities,
)

_DATASETS = tempfile.TemporaryDirectory(prefix="gradvac-sampling-")  # removed at interpreter exit

SIZES = {"aa-en": 4000, "bb-en": 1000, "cc-en": 400, "dd-en": 100}


def _tasks(sizes: dict[str, int] = SIZES) -> list[PairDataset]:
    """Example i of each task has source pieces [i + 10] * (1 + i % 9), so a row names its example."""
    return [_task(name, n) for name, n in sizes.items()]


@functools.cache
def _task(name: str, n: int) -> PairDataset:
    directory = Path(_DATASETS.name) / f"{name}-{n}"
    directory.mkdir()
    return write_pairs(
        directory, name, 4, [[i + 10] * (1 + i % 9) for i in range(n)], [[7] * (1 + i % 5) for i in range(n)]
    )


def _example_ids(step: dict) -> dict[str, list[int]]:
    return {task: [int(row[1]) - 10 for b in batches for row in b.src] for task, batches in step.items()}


@pytest.mark.parametrize("temperature", [1.0, 5.0, 100.0])
def test_empirical_task_frequencies_match(temperature: float) -> None:
    config = BatchingConfig(max_tokens=256, micro_batches_per_step=4, temperature=temperature)
    schedule = StepSchedule(_tasks(), config, dp_rank=0, dp_world_size=1, seed=11)
    steps = 5000
    counts: Counter = Counter()
    for step in range(steps):
        counts.update(schedule.assignment(step))
    draws = steps * config.micro_batches_per_step
    expected = temperature_probabilities(SIZES, temperature)
    for task, p in expected.items():
        # 20,000 independent draws: the binomial standard error is at most 0.0035; allow 5 of them.
        tolerance = 5 * math.sqrt(p * (1 - p) / draws)
        assert abs(counts[task] / draws - p) < tolerance, (task, counts[task] / draws, p)
    if temperature == 1.0:
        assert counts["aa-en"] / draws == pytest.approx(4000 / 5500, abs=0.02)
    if temperature == 100.0:
        assert all(abs(counts[t] / draws - 0.25) < 0.03 for t in SIZES)


def test_step_has_exactly_the_assigned_micro_batches_in_global_order() -> None:
    config = BatchingConfig(max_tokens=128, micro_batches_per_step=6, temperature=2.0)
    schedule = StepSchedule(_tasks(), config, dp_rank=0, dp_world_size=1, seed=3)
    absent = 0
    for step in range(50):
        plan = schedule.assignment(step)
        batches = schedule.next_step()
        assert {t: len(b) for t, b in batches.items()} == plan
        assert sum(plan.values()) == 6
        assert list(batches) == [t for t in schedule.task_order if t in batches]
        assert all(b.task == t for t, bs in batches.items() for b in bs)
        absent += len(SIZES) - len(batches)
    assert absent > 0, "with 6 draws over 4 skewed tasks some steps miss a task"


def test_ranks_agree_on_tasks_but_read_disjoint_sentences() -> None:
    config = BatchingConfig(max_tokens=128, micro_batches_per_step=4, temperature=5.0)
    world = 4
    schedules = [StepSchedule(_tasks(), config, dp_rank=r, dp_world_size=world, seed=5) for r in range(world)]
    seen: list[dict[str, set[int]]] = [{t: set() for t in SIZES} for _ in range(world)]
    for _ in range(20):
        steps = [s.next_step() for s in schedules]
        shapes = [{t: len(b) for t, b in step.items()} for step in steps]
        assert all(shape == shapes[0] for shape in shapes)
        for rank, step in enumerate(steps):
            for task, ids in _example_ids(step).items():
                seen[rank][task].update(ids)
    # Tasks still in their first epoch on every rank: the ranks' shards must not overlap.
    first_epoch = [t for t in SIZES if all(s.state_dict()["streams"][t]["epoch"] == 0 for s in schedules)]
    assert "aa-en" in first_epoch
    for task in first_epoch:
        for a in range(world):
            for b in range(a + 1, world):
                assert not (seen[a][task] & seen[b][task]), task
    assert all(seen[r]["aa-en"] for r in range(world))


@pytest.mark.parametrize("bucket_size", [4096, 16])
def test_shards_cover_the_task_each_epoch(bucket_size: int) -> None:
    """Every example exactly once per epoch over the ranks; with 16, a shard of 34 or 33 is three
    buckets, the last one partial."""
    config = BatchingConfig(max_tokens=64, micro_batches_per_step=1, bucket_size=bucket_size)
    world = 3
    ids: list[int] = []
    for rank in range(world):
        schedule = StepSchedule(_tasks({"dd-en": 100}), config, dp_rank=rank, dp_world_size=world, seed=0)
        while True:
            step = schedule.next_step()
            if schedule.state_dict()["streams"]["dd-en"]["epoch"] > 0:
                break
            ids += _example_ids(step)["dd-en"]
    assert sorted(ids) == list(range(100))


def test_resume_reproduces_uninterrupted_run() -> None:
    config = BatchingConfig(max_tokens=96, micro_batches_per_step=3, temperature=3.0, bucket_size=64)
    tasks = _tasks({"aa-en": 300, "bb-en": 60, "cc-en": 25})
    reference = StepSchedule(tasks, config, dp_rank=1, dp_world_size=2, seed=9)
    for _ in range(17):
        reference.next_step()
    state = json.loads(json.dumps(reference.state_dict()))
    expected = [_example_ids(reference.next_step()) for _ in range(60)]
    assert any(s["epoch"] > 0 for s in reference.state_dict()["streams"].values()), "window crosses an epoch"

    resumed = StepSchedule(tasks, config, dp_rank=1, dp_world_size=2, seed=9)
    resumed.load_state_dict(state)
    assert resumed.step == 17
    assert [_example_ids(resumed.next_step()) for _ in range(60)] == expected


def test_resume_rejects_another_setup() -> None:
    config = BatchingConfig(max_tokens=96)
    state = StepSchedule(_tasks(), config, dp_rank=0, dp_world_size=2, seed=1).state_dict()
    other_rank = StepSchedule(_tasks(), config, dp_rank=1, dp_world_size=2, seed=1)
    with pytest.raises(ValueError, match="dp_rank is 0 in the state, 1 here"):
        other_rank.load_state_dict(state)
    other_seed = StepSchedule(_tasks(), config, dp_rank=0, dp_world_size=2, seed=2)
    with pytest.raises(ValueError, match="seed is 1 in the state, 2 here"):
        other_seed.load_state_dict(state)


def test_schedule_argument_errors() -> None:
    config = BatchingConfig()
    with pytest.raises(ValueError, match="dp_rank < dp_world_size"):
        StepSchedule(_tasks(), config, dp_rank=2, dp_world_size=2, seed=0)
    with pytest.raises(ValueError, match="fewer training pairs than data-parallel ranks"):
        StepSchedule(_tasks({"aa-en": 3}), config, dp_rank=0, dp_world_size=4, seed=0)
    with pytest.raises(DataConfigError, match=r"batching\.temperature"):
        BatchingConfig(temperature=0.0)


def test_old_state_version_is_refused_with_the_reason() -> None:
    config = BatchingConfig(max_tokens=96)
    state = StepSchedule(_tasks(), config, dp_rank=0, dp_world_size=1, seed=1).state_dict()
    state["version"] = 1
    with pytest.raises(ValueError, match=r"version 1, expected 2: .*batch order differs"):
        StepSchedule(_tasks(), config, dp_rank=0, dp_world_size=1, seed=1).load_state_dict(state)


class _CountingTask:
    """N examples of lengths 3..32 whose batches are one column of ids; nothing stored per example."""

    def __init__(self, task: str, size: int) -> None:
        self.task, self.size = task, size

    def __len__(self) -> int:
        return self.size

    def lengths(self, indices: np.ndarray) -> np.ndarray:
        return (np.asarray(indices) % 30 + 3).astype(np.int32)

    def batch(self, indices) -> TaskBatch:
        column = torch.as_tensor(np.asarray(indices)).view(-1, 1)
        return TaskBatch(self.task, column, column, len(indices), len(indices))


def _schedule_peak_bytes(size: int) -> int:
    """Peak Python/NumPy allocation of building a 2-rank schedule over 3 tasks and running 30 steps."""
    config = BatchingConfig(max_tokens=1024, micro_batches_per_step=4)
    tracemalloc.start()
    try:
        tasks = [_CountingTask(name, size) for name in ("aa-en", "bb-en", "cc-en")]
        schedule = StepSchedule(tasks, config, dp_rank=1, dp_world_size=2, seed=4)
        for _ in range(30):
            schedule.next_step()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_rank_memory_does_not_grow_with_the_corpus() -> None:
    small, large = _schedule_peak_bytes(20_000), _schedule_peak_bytes(20_000_000)
    # One int64 permutation of 20M examples alone would be 160 MB; a bucket of 4096 is 32 KB.
    assert large < 2 * 2**20, large
    assert large < 1.5 * small, (small, large)
