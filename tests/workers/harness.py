"""The loop every torchrun test worker shares: run named cases, one JSON line per case on rank 0."""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable

from deepspeed import comm as dist


def record(out: str, result: dict) -> None:
    """Append one case result to ``out`` (rank 0 writes; every rank calls)."""
    if dist.get_rank() == 0:
        with open(out, "a") as f:
            f.write(json.dumps(result) + "\n")


def run_cases(cases: dict[str, Callable[[], dict]], out: str) -> None:
    """Run each case on every rank; an exception becomes the case's ``error`` (and a traceback on
    the rank that raised), so one failing case does not hide the others."""
    world = dist.get_world_size()
    for name, case in cases.items():
        try:
            result = {"case": name, "world": world, **case()}
        except Exception as err:
            result = {"case": name, "world": world, "error": f"{type(err).__name__}: {err}"}
            traceback.print_exc()
        record(out, result)
        dist.barrier()
