"""Helpers of the data and training tests: the vocabulary step of gradvac-prepare on in-memory text,
real megatron-core indexed datasets written from given piece ids, and gradvac-prepare before a run."""

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

from gradvac_ds.training.data import (
    IndexedWriter,
    PairDataset,
    SharedVocabulary,
    VocabularyOptions,
    VocabularySampler,
    open_indexed,
    train_vocabulary,
)


def vocabulary_from_text(
    text: Mapping[str, Sequence[str]], options: VocabularyOptions, cache_dir: Path
) -> SharedVocabulary:
    """What gradvac-prepare does with each language's training sentences: count, sample, train."""
    sampler = VocabularySampler(Counter({lang: len(lines) for lang, lines in text.items()}), options)
    for lang, lines in text.items():
        for line in lines:
            sampler.offer(lang, line)
    return train_vocabulary(sampler.text(), list(text), options, cache_dir)


def write_pairs(
    directory: Path, task: str, tag_id: int, src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]]
) -> PairDataset:
    """A real indexed dataset of the given pairs (one document of two sequences each), memory-mapped."""
    writer = IndexedWriter(directory / f"train.{task}", np.int32)
    for s, t in zip(src, tgt, strict=True):
        writer.add_many(np.array([*s, *t], dtype=np.int32), np.array([len(s), len(t)]), 2)
    writer.finish()
    return PairDataset(task, tag_id, open_indexed(directory / f"train.{task}", len(src), 2))


def prepare_run(args: Sequence[str], cwd: Path) -> None:
    """``gradvac-prepare`` on run-config arguments (``--config``, ``--set``...), as the demo runs it
    before training; a directory already prepared with the same settings is reused."""
    cmd = [sys.executable, "-m", "gradvac_ds.training.data.prepare", "--quiet", *map(str, args)]
    env = dict(os.environ, DS_ACCELERATOR="cpu", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode:
        pytest.fail(
            f"gradvac-prepare failed (rc={proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
