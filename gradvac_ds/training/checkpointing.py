"""Crash-safe training checkpoints: DeepSpeed's, the GradVac state, each rank's data and RNG state.

A checkpoint ``<dir>/<tag>/`` holds DeepSpeed's files (with the GradVac state in the client state)
and one ``rank<R>.pt`` per rank with that rank's data position (the data schedule differs per
rank) and random-number generator states (dropout draws from them, so an exact resume needs
them). The pointer
``<dir>/latest`` is written last, by rank 0, after a barrier, through a temporary file and
``os.replace``; a crash at any point before leaves ``latest`` on the previous complete checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import deepspeed
import torch
from deepspeed import comm as dist

LATEST = "latest"


def _rank_file(directory: Path, tag: str, rank: int) -> Path:
    return directory / tag / f"rank{rank}.pt"


def _rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "accelerator": deepspeed.get_accelerator().get_rng_state()}


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    deepspeed.get_accelerator().set_rng_state(state["accelerator"])


def latest_tag(directory: str | Path) -> str | None:
    """The tag of the last complete checkpoint in ``directory``, or None."""
    pointer = Path(directory) / LATEST
    return pointer.read_text().strip() if pointer.is_file() else None


def save(engine, directory: str | Path, tag: str, data_state: dict[str, Any]) -> None:
    """Save on every rank (collective); ``engine`` is a GradVacEngine."""
    directory = Path(directory)
    engine.save_checkpoint(directory, tag=tag, save_latest=False)
    rank = dist.get_rank()
    path = _rank_file(directory, tag, rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"data": data_state, "rng": _rng_state()}, tmp)
    os.replace(tmp, path)
    dist.barrier()
    if rank == 0:
        tmp = directory / f"{LATEST}.tmp"
        tmp.write_text(tag)
        os.replace(tmp, directory / LATEST)
    dist.barrier()


def load(engine, directory: str | Path) -> tuple[str, dict[str, Any]] | None:
    """Load the latest complete checkpoint and this rank's RNG state; returns (tag, this rank's
    data state), or None when there is no checkpoint."""
    directory = Path(directory)
    tag = latest_tag(directory)
    if tag is None:
        return None
    path, _ = engine.load_checkpoint(directory, tag=tag)
    if path is None:
        raise FileNotFoundError(f"DeepSpeed could not load checkpoint {directory / tag}")
    rank_file = _rank_file(directory, tag, dist.get_rank())
    if not rank_file.is_file():
        raise FileNotFoundError(f"{rank_file} is missing: was the job restarted with other ranks?")
    state = torch.load(rank_file, weights_only=False)
    _set_rng_state(state["rng"])
    return tag, state["data"]
