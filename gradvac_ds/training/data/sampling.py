"""Temperature sampling over tasks and the per-step micro-batch schedule of one data-parallel rank.

**Temperature.** With n_k training pairs in task k, task k is drawn with probability
p_k = q_k^(1/T) / sum_j q_j^(1/T), q_k = n_k / sum_j n_j. T = 1 samples in proportion to data,
T -> inf uniformly; the default T = 5 up-weights low-resource pairs.

**A step.** Each optimizer step, each rank runs ``micro_batches_per_step`` micro-batches. Their
tasks are ``micro_batches_per_step`` i.i.d. draws from p; a task drawn c times gets c micro-batches,
tasks never drawn are absent from the step. The draws come from a NumPy generator seeded with
``(seed, step)`` only, so every rank computes the same assignment for the same step (GradVac needs
every rank to agree on the tasks of a step). The step's mapping lists tasks in the fixed global
task order.

**Sentences.** Per task and epoch, a permutation pi of the task's N examples seeded by
``(seed, task, epoch)`` (equal on all ranks, :class:`~gradvac_ds.training.data.permutation.KeyedPermutation`)
is sharded: rank r reads positions ``r, r + W, r + 2W, ...`` of pi (W = ``dp_world_size``). The
rank's shard is cut into buckets of ``bucket_size`` consecutive shard positions; a bucket is packed
by :func:`~gradvac_ds.training.data.batching.pack_batches` (sorted by length) when the stream
reaches it, and its batches are served in an order shuffled with ``(seed, task, epoch, rank,
bucket)``. Ranks therefore see disjoint sentences, each rank moves through its own shard and starts
the next epoch when it runs out, and a rank holds one bucket's indices per task: its memory does
not grow with the corpus (lengths are read from the memory-mapped index for the bucket only).

**Resuming.** All randomness is a function of ``seed``, the step index, and each stream's epoch,
so the state is ``step`` plus ``(epoch, bucket, cursor)`` per task; :meth:`StepSchedule.state_dict` stores
those with a fingerprint of the setup, and :meth:`StepSchedule.load_state_dict` refuses a state
from a different setup.
"""

import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict

import numpy as np

from gradvac_ds.training.data.batching import LMBatch, TaskBatch, TaskData, pack_batches
from gradvac_ds.training.data.config import BatchingConfig
from gradvac_ds.training.data.permutation import KeyedPermutation
from gradvac_ds.training.data.temperature import temperature_probabilities

_STATE_VERSION = 2
_ASSIGNMENT_STREAM = 0x6D6978  # separates the task-assignment generator from the sentence ones


def _task_seed(task: str) -> int:
    return zlib.crc32(task.encode("utf-8"))


class _TaskStream:
    """Endless micro-batches of one task for one rank, epoch after epoch, one bucket at a time."""

    def __init__(self, data: TaskData, config: BatchingConfig, seed: int, rank: int, world: int) -> None:
        self.data = data
        self._config = config
        self._seed = seed
        self._key = _task_seed(data.task)
        self._rank = rank
        self._world = world
        self._shard_size = len(range(rank, len(data), world))
        self._buckets = -(-self._shard_size // config.bucket_size)
        self._permutation = KeyedPermutation(len(data), (seed, self._key, 0))
        self.epoch = self.bucket = self.cursor = 0
        self._plan = self._bucket_plan()

    def _bucket_plan(self) -> list[np.ndarray]:
        """The batches of bucket ``self.bucket`` of epoch ``self.epoch``, in serving order."""
        size = self._config.bucket_size
        first = self.bucket * size
        positions = np.arange(first, min(first + size, self._shard_size), dtype=np.int64) * self._world
        examples = self._permutation(positions + self._rank)
        cfg = self._config
        plan = pack_batches(examples, self.data.lengths(examples), cfg.max_tokens, cfg.max_sentences, size)
        order = np.random.default_rng([self._seed, self._key, self.epoch, self._rank, self.bucket])
        return [plan[i] for i in order.permutation(len(plan))]

    def seek(self, epoch: int, bucket: int, cursor: int) -> None:
        """Position the stream at batch ``cursor`` of ``bucket`` of ``epoch``."""
        if not 0 <= bucket < self._buckets:
            raise ValueError(
                f"task {self.data.task}: bucket {bucket} outside epoch of {self._buckets} buckets"
            )
        if epoch != self.epoch:
            self._permutation = KeyedPermutation(len(self.data), (self._seed, self._key, epoch))
        self.epoch, self.bucket = epoch, bucket
        self._plan = self._bucket_plan()
        if not 0 <= cursor <= len(self._plan):
            raise ValueError(
                f"task {self.data.task}: cursor {cursor} outside bucket {bucket} of {len(self._plan)} batches"
            )
        self.cursor = cursor

    def next_batch(self) -> TaskBatch | LMBatch:
        """The next micro-batch, rolling over to the next bucket, then to the next epoch."""
        if self.cursor >= len(self._plan):
            last = self.bucket + 1 == self._buckets
            self.seek(self.epoch + 1 if last else self.epoch, 0 if last else self.bucket + 1, 0)
        batch = self.data.batch(self._plan[self.cursor])
        self.cursor += 1
        return batch


class StepSchedule:
    """Per optimizer step, the ordered ``task -> [micro-batch, ...]`` of one data-parallel rank.

    Args:
        tasks: training data per task (memory-mapped datasets); their order is the global task
            order and must be the same on every rank.
        config: batching and sampling configuration.
        dp_rank / dp_world_size: this rank and the data-parallel world size.
        seed: identical on every rank.

    Iterating yields steps forever; :meth:`next_step` yields one.
    """

    def __init__(
        self,
        tasks: Sequence[TaskData],
        config: BatchingConfig,
        dp_rank: int,
        dp_world_size: int,
        seed: int,
    ) -> None:
        if dp_world_size < 1 or not 0 <= dp_rank < dp_world_size:
            raise ValueError(
                f"need 0 <= dp_rank < dp_world_size, got dp_rank={dp_rank}, dp_world_size={dp_world_size}"
            )
        names = [t.task for t in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate task names: {names}")
        small = {t.task: len(t) for t in tasks if len(t) < dp_world_size}
        if small:
            raise ValueError(
                f"tasks with fewer training pairs than data-parallel ranks ({dp_world_size}): {small}"
            )
        self.task_order: tuple[str, ...] = tuple(names)
        self.probabilities = temperature_probabilities({t.task: len(t) for t in tasks}, config.temperature)
        self._p = np.array([self.probabilities[name] for name in self.task_order])
        self._config = config
        self._seed = seed
        self._rank = dp_rank
        self._world = dp_world_size
        self._streams = {t.task: _TaskStream(t, config, seed, dp_rank, dp_world_size) for t in tasks}
        self.step = 0

    def assignment(self, step: int) -> dict[str, int]:
        """Micro-batches per task at ``step`` (tasks with zero omitted), in global task order.

        A pure function of ``(seed, step)``: equal on every rank.
        """
        rng = np.random.default_rng([self._seed, _ASSIGNMENT_STREAM, step])
        draws = rng.choice(len(self.task_order), size=self._config.micro_batches_per_step, p=self._p)
        counts = np.bincount(draws, minlength=len(self.task_order))
        return {name: int(c) for name, c in zip(self.task_order, counts, strict=True) if c}

    def next_step(self) -> dict[str, list[TaskBatch | LMBatch]]:
        """The micro-batches of the current step for this rank; advances the step."""
        plan = self.assignment(self.step)
        self.step += 1
        return {
            task: [self._streams[task].next_batch() for _ in range(count)] for task, count in plan.items()
        }

    def __iter__(self) -> Iterator[dict[str, list[TaskBatch | LMBatch]]]:
        while True:
            yield self.next_step()

    def _fingerprint(self) -> dict:
        return {
            "seed": self._seed,
            "dp_rank": self._rank,
            "dp_world_size": self._world,
            "tasks": {name: len(self._streams[name].data) for name in self.task_order},
            "config": asdict(self._config),
        }

    def state_dict(self) -> dict:
        """Position of the schedule: step, per-task (epoch, bucket, cursor), and the setup fingerprint."""
        return {
            "version": _STATE_VERSION,
            "step": self.step,
            "streams": {
                name: {"epoch": s.epoch, "bucket": s.bucket, "cursor": s.cursor}
                for name, s in self._streams.items()
            },
            "fingerprint": self._fingerprint(),
        }

    def load_state_dict(self, state: Mapping) -> None:
        """Resume from :meth:`state_dict`; later steps equal those of an uninterrupted run.

        Raises:
            ValueError: if the state is of another version or another setup (names the field).
        """
        if state.get("version") != _STATE_VERSION:
            raise ValueError(
                f"schedule state version {state.get('version')!r}, expected {_STATE_VERSION}: the state "
                "was written by another gradvac_ds, whose batch order differs; resume it with that version"
            )
        mine = self._fingerprint()
        for field_name, value in mine.items():
            if state["fingerprint"].get(field_name) != value:
                raise ValueError(
                    f"schedule state does not match this setup: {field_name} is "
                    f"{state['fingerprint'].get(field_name)!r} in the state, {value!r} here"
                )
        for name, position in state["streams"].items():
            self._streams[name].seek(int(position["epoch"]), int(position["bucket"]), int(position["cursor"]))
        self.step = int(state["step"])
