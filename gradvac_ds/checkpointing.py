"""Crash-safe training checkpoints: DeepSpeed's, the GradVac state, and each rank's data position.

A checkpoint ``<dir>/<tag>/`` holds DeepSpeed's files (with the GradVac state in the client state)
and one ``data_rank<R>.json`` per rank (the data schedule differs per rank). The pointer
``<dir>/latest`` is written last, by rank 0, after a barrier, through a temporary file and
``os.replace``; a crash at any point before leaves ``latest`` on the previous complete checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from deepspeed import comm as dist

LATEST = "latest"


def _data_file(directory: Path, tag: str, rank: int) -> Path:
    return directory / tag / f"data_rank{rank}.json"


def latest_tag(directory: str | Path) -> str | None:
    """The tag of the last complete checkpoint in ``directory``, or None."""
    pointer = Path(directory) / LATEST
    return pointer.read_text().strip() if pointer.is_file() else None


def save(engine, directory: str | Path, tag: str, data_state: dict[str, Any]) -> None:
    """Save on every rank (collective); ``engine`` is a GradVacEngine."""
    directory = Path(directory)
    engine.save_checkpoint(directory, tag=tag, save_latest=False)
    rank = dist.get_rank()
    path = _data_file(directory, tag, rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data_state))
    os.replace(tmp, path)
    dist.barrier()
    if rank == 0:
        tmp = directory / f"{LATEST}.tmp"
        tmp.write_text(tag)
        os.replace(tmp, directory / LATEST)
    dist.barrier()


def load(engine, directory: str | Path) -> tuple[str, dict[str, Any]] | None:
    """Load the latest complete checkpoint; returns (tag, this rank's data state) or None."""
    directory = Path(directory)
    tag = latest_tag(directory)
    if tag is None:
        return None
    path, _ = engine.load_checkpoint(directory, tag=tag)
    if path is None:
        raise FileNotFoundError(f"DeepSpeed could not load checkpoint {directory / tag}")
    data_file = _data_file(directory, tag, dist.get_rank())
    if not data_file.is_file():
        raise FileNotFoundError(
            f"{data_file} is missing: was the job restarted with another number of ranks?"
        )
    return tag, json.loads(data_file.read_text())
