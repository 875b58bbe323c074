"""Checkpoint faults under torchrun (gloo, DS_ACCELERATOR=cpu): gradvac_ds.training.checkpointing on
the real DeepSpeed engine (ZeRO-2, fp32) of tests/workers/engine_cases.py; one JSON line per case.

    torchrun --nproc_per_node 2 tests/workers/checkpoint_cases.py --out r.jsonl --dir D --phase save
    torchrun --nproc_per_node 1 tests/workers/checkpoint_cases.py --out r.jsonl --dir D --phase load

``save`` (2 ranks) writes step1 and step2, then probes a non-finite model at checkpoint time and
every broken ``latest``/file on load, restoring the checkpoint after each probe. ``load`` (1 rank)
resumes the 2-rank checkpoint. A probe's row holds what ``load``/``save`` raised on each rank.
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import deepspeed
import torch
from deepspeed import comm as dist
from engine_cases import FULL, build, run_steps
from harness import run_cases

from gradvac_ds.training import checkpointing
from gradvac_ds.training.build import leave_together


def _data(step: int) -> dict:
    return {"step": step, "fingerprint": {"dp_rank": dist.get_rank(), "note": "plain values only"}}


def _outcome(call: Callable[[], object]) -> dict:
    """What ``call`` raised on each rank (``None`` where it returned): {"errors": [[type, message]]}."""
    try:
        call()
        mine = None
    except Exception as err:  # the probe reports whatever was raised, fixed or not
        mine = [type(err).__name__, str(err)[:600]]
    gathered: list = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, mine)
    return {"errors": gathered}


def _latest(directory: Path) -> str:
    return (directory / "latest").read_text()


def _probe(directory: Path, engine, mutate: Callable[[], None]) -> dict:
    """Back the checkpoint folder up, let rank 0 break it, load on every rank, restore it."""
    backup = directory.parent / "backup"
    if dist.get_rank() == 0:
        shutil.copytree(directory, backup)
        mutate()
    dist.barrier()
    row = _outcome(lambda: checkpointing.load(engine, directory))
    dist.barrier()
    if dist.get_rank() == 0:
        shutil.rmtree(directory)
        backup.rename(directory)
    dist.barrier()
    return row


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def cases(directory: Path) -> dict[str, Callable[[], dict]]:
    engine, _ = build(2, "fp32", "gradvac")

    def save() -> dict:
        for step in (1, 2):
            run_steps(engine, "fp32", [FULL], first_step=step - 1)
            checkpointing.save(engine, directory, f"step{step}", _data(step))
        mine = torch.load(directory / "step2" / f"rank{dist.get_rank()}.pt", weights_only=True)
        files = sorted(os.listdir(directory / "step2"))
        return {"latest": _latest(directory), "data": mine["data"], "files": files}

    def non_finite() -> dict:
        param = next(engine.module.parameters())
        kept = param.data[0].clone()
        if dist.get_rank() == 1:
            param.data[0] = float("nan")
        row = _outcome(lambda: checkpointing.save(engine, directory, "step3", _data(3)))
        param.data[0] = kept
        return {**row, "latest": _latest(directory), "step3_written": (directory / "step3").exists()}

    def probe(mutate: Callable[[], None]) -> Callable[[], dict]:
        return lambda: _probe(directory, engine, mutate)

    def other_stage(stage: int) -> Callable[[], dict]:
        return lambda: _outcome(lambda: checkpointing.load(build(stage, "fp32", "gradvac")[0], directory))

    def latest_dir() -> Path:
        return directory / _latest(directory)

    return {
        "save": save,
        "non_finite": non_finite,
        "empty_latest": probe(lambda: (directory / "latest").write_text("")),
        "latest_outside": probe(lambda: (directory / "latest").write_text("../../outside")),
        "missing_tag": probe(lambda: (directory / "latest").write_text("step9")),
        "truncated_rank_file": probe(lambda: _truncate(latest_dir() / "rank1.pt")),
        "zero_byte_model_file": probe(lambda: (latest_dir() / "mp_rank_00_model_states.pt").write_bytes(b"")),
        "healthy": lambda: _outcome(lambda: checkpointing.load(engine, directory)),
        "zero_stage_0": other_stage(0),
        "zero_stage_3": other_stage(3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--phase", choices=("save", "load"), required=True)
    args = parser.parse_args()
    deepspeed.init_distributed(dist_backend="gloo")
    if args.phase == "save":
        run_cases(cases(args.dir), args.out)
    else:
        engine, _ = build(2, "fp32", "gradvac")
        run_cases({"world_size_1": lambda: _outcome(lambda: checkpointing.load(engine, args.dir))}, args.out)
    leave_together()


if __name__ == "__main__":
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    main()
