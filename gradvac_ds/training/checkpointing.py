"""Crash-safe training checkpoints: DeepSpeed's, the GradVac state, each rank's data and RNG state.

A checkpoint ``<dir>/<tag>/`` holds DeepSpeed's files (with the GradVac state in the client state),
one ``rank<R>.pt`` per rank with that rank's data position (the data schedule differs per rank) and
random-number generator states (dropout draws from them, so an exact resume needs them), and
``checkpoint.json``: the world size, the ZeRO stage and the name and size of every file of the
checkpoint. The per-rank files hold plain tensors, numbers and strings only, so they load with
``torch.load(weights_only=True)``.

Writing (:func:`save`, collective): the weights are checked first (every rank's share, agreed by an
all-reduce), and a model with a NaN or an infinity is never written. Then every rank writes its
files; after a barrier rank 0 writes ``checkpoint.json``, then the pointer ``<dir>/latest``, each
through a temporary file and ``os.replace``. A crash at any point before leaves ``latest`` on the
previous complete checkpoint. The run directory is assumed to be one file system shared by all
ranks, as DeepSpeed's own ``latest`` file assumes.

Reading (:func:`load`): ``latest`` must name one folder inside ``<dir>``; that folder must be
complete (its ``checkpoint.json`` present, every listed file present with its saved size) and saved
by as many ranks at the same ZeRO stage. Otherwise :class:`CheckpointError` names the file at
fault and the previous complete checkpoint, if any.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import deepspeed
import torch
from deepspeed import comm as dist

from gradvac_ds.files import atomic_write, atomic_write_text
from gradvac_ds.training.errors import CheckpointError, NonFiniteModelError

LATEST = "latest"
MARKER = "checkpoint.json"


def _rank_file(tag_dir: Path, rank: int) -> Path:
    return tag_dir / f"rank{rank}.pt"


def read_rank_state(tag_dir: Path, rank: int) -> dict[str, Any]:
    """A rank's data-loader and RNG state from its file in ``tag_dir``, unpickled with
    ``weights_only=True`` (tensors, numbers, strings, lists and dicts only): a checkpoint folder
    someone else wrote cannot run code in the job that resumes from it."""
    return torch.load(_rank_file(tag_dir, rank), map_location="cpu", weights_only=True)


def _rng_state() -> dict[str, torch.Tensor]:
    return {"torch": torch.get_rng_state(), "accelerator": deepspeed.get_accelerator().get_rng_state()}


def _set_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["torch"])
    deepspeed.get_accelerator().set_rng_state(state["accelerator"])


def _local_non_finite(engine) -> str | None:
    """The name of the first parameter whose share on this rank holds a NaN or an infinity, or None.
    Under ZeRO-3 a parameter's share is its partition ``ds_tensor``; otherwise the whole tensor."""
    for name, param in engine.module.named_parameters():
        if not bool(torch.isfinite(getattr(param, "ds_tensor", param)).all()):
            return name
    return None


def _non_finite_parameter(engine) -> str | None:
    """:func:`_local_non_finite` agreed by all ranks (one all-reduce): None on every rank when all
    weights are finite, else a description of the first bad parameter seen here."""
    local = _local_non_finite(engine)
    device = torch.device(deepspeed.get_accelerator().current_device_name())
    flag = torch.tensor([0 if local is None else 1], dtype=torch.int32, device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    if int(flag.item()) == 0:
        return None
    return f"parameter {local} on rank {dist.get_rank()}" if local else "a parameter on another rank"


def _read_marker(tag_dir: Path) -> dict[str, Any]:
    """The checkpoint's ``checkpoint.json``; raises CheckpointError naming what is wrong with it."""
    marker = tag_dir / MARKER
    if not marker.is_file():
        raise CheckpointError(f"{tag_dir} is not a complete checkpoint: it has no {MARKER}")
    try:
        meta = json.loads(marker.read_text())
        sizes = {str(name): int(size) for name, size in meta["files"].items()}
        return {"world_size": int(meta["world_size"]), "zero_stage": int(meta["zero_stage"]), "files": sizes}
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise CheckpointError(f"{marker} is unreadable ({type(err).__name__}: {err})") from err


def _verify(tag_dir: Path) -> dict[str, Any]:
    """The marker of a complete checkpoint: every file it lists exists with its saved size."""
    meta = _read_marker(tag_dir)
    for name, size in sorted(meta["files"].items()):
        path = tag_dir / name
        if not path.is_file():
            raise CheckpointError(f"{path} is missing")
        actual = path.stat().st_size
        if actual != size:
            state = "empty (0 bytes)" if actual == 0 else f"truncated or altered ({actual} bytes)"
            raise CheckpointError(f"{path} is {state}; it was saved with {size} bytes")
    return meta


def complete_tags(directory: str | Path) -> list[str]:
    """Tags of the complete checkpoints in ``directory``, oldest first (by when they completed)."""
    directory = Path(directory)
    found = []
    for tag_dir in directory.iterdir() if directory.is_dir() else ():
        try:
            _verify(tag_dir)
        except CheckpointError:
            continue
        found.append(((tag_dir / MARKER).stat().st_mtime_ns, tag_dir.name))
    return [tag for _, tag in sorted(found)]


def _offer(directory: Path, exclude: str | None = None) -> str:
    """What to do instead: the newest complete checkpoint other than ``exclude``, or none."""
    tags = [tag for tag in complete_tags(directory) if tag != exclude]
    if not tags:
        return f"{directory} holds no other complete checkpoint; start the run again with --overwrite"
    return (
        f"the previous complete checkpoint is {directory / tags[-1]}; to resume from it, run "
        f"`echo {tags[-1]} > {directory / LATEST}` and --resume again"
    )


def _resolved_latest(directory: Path) -> str | None:
    """The tag ``<dir>/latest`` names, checked to be one existing folder inside ``directory``; None when
    there is neither ``latest`` nor any complete checkpoint (nothing to resume)."""
    pointer = directory / LATEST
    if not pointer.exists():
        if complete_tags(directory):
            raise CheckpointError(
                f"{pointer} is missing although {directory} holds checkpoints; {_offer(directory)}"
            )
        return None
    tag = pointer.read_text().strip() if pointer.is_file() else ""
    if not tag:
        raise CheckpointError(f"{pointer} is empty; {_offer(directory)}")
    inside = tag not in (".", "..") and Path(tag).name == tag and "\\" not in tag
    if not inside or (directory / tag).resolve().parent != directory.resolve():
        raise CheckpointError(
            f"{pointer} names {tag!r}, which is not a checkpoint folder inside {directory} "
            f"(latest holds one folder name); {_offer(directory)}"
        )
    if not (directory / tag).is_dir():
        raise CheckpointError(
            f"{pointer} names {tag!r}, but {directory / tag} does not exist; {_offer(directory, tag)}"
        )
    return tag


def _check_layout(tag_dir: Path, meta: dict[str, Any], engine) -> None:
    world, stage = dist.get_world_size(), engine.zero_optimization_stage()
    if (meta["world_size"], meta["zero_stage"]) != (world, stage):
        raise CheckpointError(
            f"{tag_dir} was saved by {meta['world_size']} ranks at ZeRO stage {meta['zero_stage']}, "
            f"but this run has {world} ranks at ZeRO stage {stage}. A DeepSpeed ZeRO checkpoint resumes "
            "only with the same world size and stage: resume with those, or start a new run (--overwrite)"
        )


def save(engine, directory: str | Path, tag: str, data_state: dict[str, Any]) -> None:
    """Save on every rank (collective); ``engine`` is a GradVacEngine.

    Raises:
        NonFiniteModelError: on every rank, before anything is written, when any rank's share of
            the weights holds a NaN or an infinity (``latest`` keeps its previous checkpoint).
    """
    directory = Path(directory)
    tag_dir = directory / tag
    rank = dist.get_rank()
    if rank == 0:  # a folder being rewritten is not complete until its new marker is written
        (tag_dir / MARKER).unlink(missing_ok=True)
    bad = _non_finite_parameter(engine)  # collective: also orders the unlink before any rank writes
    if bad is not None:
        pointer = directory / LATEST
        kept = pointer.read_text().strip() if pointer.is_file() else "no checkpoint"
        raise NonFiniteModelError(
            f"checkpoint {tag_dir} not written: the model's weights are not finite ({bad}); "
            f"{pointer} stays at {kept!r}"
        )
    engine.save_checkpoint(directory, tag=tag, save_latest=False)
    path = _rank_file(tag_dir, rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"data": data_state, "rng": _rng_state()}
    atomic_write(path, lambda handle: torch.save(state, handle))
    dist.barrier()
    if rank == 0:
        files = {
            p.name: p.stat().st_size for p in sorted(tag_dir.iterdir()) if p.is_file() and p.name != MARKER
        }
        meta = {
            "world_size": dist.get_world_size(),
            "zero_stage": engine.zero_optimization_stage(),
            "files": files,
        }
        atomic_write_text(tag_dir / MARKER, json.dumps(meta, indent=1))
        atomic_write_text(directory / LATEST, tag)
    dist.barrier()


def load(engine, directory: str | Path) -> tuple[str, dict[str, Any]] | None:
    """Load the latest complete checkpoint and this rank's RNG state; returns (tag, this rank's
    data state), or None when there is no checkpoint.

    Raises:
        CheckpointError: ``latest`` is empty, names something outside ``directory`` or a missing
            folder; a file of the checkpoint is missing, empty or truncated; the checkpoint was
            saved with another world size or ZeRO stage; or DeepSpeed fails to read it. The
            message names the file and the previous complete checkpoint.
    """
    directory = Path(directory)
    tag = _resolved_latest(directory)
    if tag is None:
        return None
    tag_dir = directory / tag
    try:
        meta = _verify(tag_dir)
    except CheckpointError as err:
        raise CheckpointError(f"{err}; {_offer(directory, tag)}") from None
    _check_layout(tag_dir, meta, engine)
    try:
        path, _ = engine.load_checkpoint(directory, tag=tag)
    except Exception as err:  # DeepSpeed raises AssertionError, EOFError, RuntimeError, KeyError, ...
        raise CheckpointError(
            f"DeepSpeed could not load {tag_dir} ({type(err).__name__}: {err}); {_offer(directory, tag)}"
        ) from err
    if path is None:
        raise CheckpointError(f"DeepSpeed could not load {tag_dir}; {_offer(directory, tag)}")
    state = read_rank_state(tag_dir, dist.get_rank())
    _set_rng_state(state["rng"])
    return tag, state["data"]
