"""The training side of the data: a prepared directory, checked, memory-mapped, with its schedule.

Typical use by the trainer, before any process group starts (every check raises a DataError
naming the file)::

    data = open_prepared(run_config.data)
    schedule = data.schedule(dp_rank, dp_world_size)
    for step_batches in schedule:      # {task: [micro-batch, ...]} in global task order
        ...

Nothing here reads tokens into memory: each task is a :class:`~gradvac_ds.training.data.batching.PairDataset`
or :class:`~gradvac_ds.training.data.batching.PackedLMDataset` over megatron-core's memory-mapped
``.bin``/``.idx`` files; the schedule is built from the ``.idx`` lengths as numpy arrays.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradvac_ds.training.data.batching import PackedLMDataset, PairDataset, TaskData
from gradvac_ds.training.data.config import DataConfig
from gradvac_ds.training.data.errors import DataError, VocabularyError
from gradvac_ds.training.data.indexed import open_indexed
from gradvac_ds.training.data.manifest import MANIFEST, check_settings, read_manifest
from gradvac_ds.training.data.sampling import StepSchedule
from gradvac_ds.training.data.vocabulary import SharedVocabulary

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TestSet:
    """One task's test split: the encoded pairs and the reference text, line i = example i."""

    task: str
    data: PairDataset
    references: list[str]


@dataclass
class PreparedData:
    """A checked prepared directory.

    Attributes:
        config: the run's data config (equal to the manifest's in every prepare field).
        directory: the prepared directory.
        manifest: the parsed ``manifest.json``.
        vocabulary: the shared SentencePiece vocabulary.
        train: training data per task, in the global task order.
        valid: validation data by task (tasks without a validation split are absent).
        test: test sets by task (translation only; empty without a test split).
        families: planted language -> family table (synthetic source only, else ``None``).
    """

    config: DataConfig
    directory: Path
    manifest: dict[str, Any]
    vocabulary: SharedVocabulary
    train: list[TaskData]
    valid: dict[str, TaskData]
    test: dict[str, TestSet]
    families: dict[str, str] | None

    @property
    def tasks(self) -> list[str]:
        """Task names in the global task order."""
        return [t.task for t in self.train]

    @property
    def is_lm(self) -> bool:
        """Language-model pretraining data (tasks = languages)."""
        return self.manifest["kind"] == "lm"

    def schedule(self, dp_rank: int = 0, dp_world_size: int = 1) -> StepSchedule:
        """The step schedule of one data-parallel rank (same ``config.seed`` on every rank)."""
        return StepSchedule(self.train, self.config.batching, dp_rank, dp_world_size, self.config.seed)

    def filter_report(self) -> str:
        """The per-task filter report written by ``gradvac-prepare``."""
        return "\n".join(self.manifest["filter_report"])


def _references(path: Path, count: int) -> list[str]:
    if not path.is_file():
        raise DataError(f"{path}: missing (re-run gradvac-prepare)")
    lines = path.read_text(encoding="utf-8").split("\n")[:-1]
    if len(lines) != count:
        raise DataError(f"{path}: {len(lines)} references for {count} test pairs: the file is corrupt")
    return lines


def open_prepared(config: DataConfig) -> PreparedData:
    """Check and open ``config.prepared_dir()``.

    Raises:
        DataError: missing or old-format directory, settings that differ from ``config``,
            a missing, truncated or corrupt ``.bin``/``.idx``/vocabulary file (each naming the file).
    """
    directory = config.prepared_dir()
    manifest = read_manifest(directory)
    check_settings(manifest, config, directory / MANIFEST)
    vocabulary_path = directory / manifest["vocabulary"]["file"]
    try:
        vocabulary = SharedVocabulary.load(vocabulary_path)
    except (VocabularyError, RuntimeError) as exc:
        raise DataError(f"{vocabulary_path}: not a usable SentencePiece model ({exc})") from exc
    if len(vocabulary) != manifest["vocabulary"]["size"]:
        raise DataError(
            f"{vocabulary_path}: {len(vocabulary)} pieces, the manifest says {manifest['vocabulary']['size']}"
        )
    lm = manifest["kind"] == "lm"
    splits: dict[str, dict[str, TaskData]] = {"train": {}, "valid": {}, "test": {}}
    for task in manifest["tasks"]:
        for split, entry in manifest["datasets"][task].items():
            dataset = open_indexed(directory / entry["prefix"], entry["documents"], 1 if lm else 2)
            if lm:
                splits[split][task] = PackedLMDataset(task, dataset, config.max_positions, entry["tokens"])
            else:
                tag = vocabulary.tag_id(manifest["pairs"][task][1])
                splits[split][task] = PairDataset(task, tag, dataset)
    test = {}
    for task, data in splits["test"].items():
        references = directory / f"{manifest['datasets'][task]['test']['prefix']}.ref"
        test[task] = TestSet(task, data, _references(references, len(data)))
    valid = {task: data for task, data in splits["valid"].items() if len(data)}
    return PreparedData(
        config=config,
        directory=directory,
        manifest=manifest,
        vocabulary=vocabulary,
        train=[splits["train"][task] for task in manifest["tasks"]],
        valid=valid,
        test=test,
        families=manifest.get("families"),
    )
