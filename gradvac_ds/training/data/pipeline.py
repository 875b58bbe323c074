"""What the two preparation pipelines share: encoding chunks, segment gathering, the manifest.

The translation pipeline is :mod:`~gradvac_ds.training.data.translation_pipeline`, the language-model
one :mod:`~gradvac_ds.training.data.lm_pipeline`; ``gradvac-prepare``
(:mod:`~gradvac_ds.training.data.prepare`) runs one of them into a ``.partial`` directory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from gradvac_ds.training.data.config import DataConfig, prepare_settings
from gradvac_ds.training.data.corpus import FilterStats
from gradvac_ds.training.data.errors import DataError
from gradvac_ds.training.data.manifest import FORMAT, FORMAT_VERSION, VOCABULARY_FILE
from gradvac_ds.training.data.vocabulary import SharedVocabulary

CHUNK = 2048
"""Lines (pairs or documents) per encoding task."""


def chunks(items: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def gather_segments(flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concat(flat[starts[i] : starts[i] + lengths[i]] for i)`` without a Python loop."""
    out_starts = np.cumsum(lengths) - lengths
    return flat[np.arange(int(lengths.sum())) + np.repeat(starts - out_starts, lengths)]


def build_manifest(
    config: DataConfig,
    kind: str,
    vocabulary: SharedVocabulary,
    tasks: list[str],
    datasets: dict[str, dict[str, Any]],
    stats: FilterStats,
    skipped: list[str],
    families: dict[str, str] | None,
    pairs: dict[str, list[str]] | None,
) -> dict[str, Any]:
    """The manifest of a prepared directory (:mod:`~gradvac_ds.training.data.manifest`) before its
    content hash; DataError when a task kept no training example after filtering."""
    for task in tasks:
        if "train" not in datasets[task]:
            raise DataError(f"task {task}: no training pair left after filtering\n{stats.report()}")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "data": prepare_settings(config),
        "vocabulary": {"file": VOCABULARY_FILE, "size": len(vocabulary), "languages": vocabulary.languages},
        "tasks": tasks,
        "pairs": pairs,
        "datasets": datasets,
        "filters": stats.as_dict(),
        "filter_report": stats.report().splitlines(),
        "skipped_files": skipped,
        "families": families,
    }
