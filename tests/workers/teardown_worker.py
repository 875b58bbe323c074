"""torchrun worker: how :func:`gradvac_ds.training.build.distributed` leaves the process groups.

``--end clean`` leaves the body normally, ``stopped`` raises ``Interrupted`` on every rank (a
``RunStopped``: groups destroyed), ``error`` raises a ``ValueError`` (groups left alive, then destroyed
here so that the worker exits cleanly). Each rank appends one JSON line to --out after the body:
``{"case": "<end>_rank<r>", "raised": ..., "initialized": ..., "megatron": ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
from megatron.core import parallel_state

from gradvac_ds.training.build import distributed, leave_together
from gradvac_ds.training.errors import Interrupted
from gradvac_ds.training.run_config import RunConfig

DEMO = Path(__file__).parents[2] / "configs" / "demo.yaml"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--end", choices=("clean", "stopped", "error"), required=True)
    args = parser.parse_args()
    rank = int(os.environ["RANK"])
    raised = None
    try:
        with distributed(RunConfig.load(DEMO)):
            total = torch.ones(1)
            torch.distributed.all_reduce(total)  # the groups carried traffic before the end
            if args.end == "stopped":
                raise Interrupted(15, "stopped at step 0")
            if args.end == "error":
                raise ValueError("a rank's own failure")
    except (Interrupted, ValueError) as err:
        raised = type(err).__name__
    row = {
        "case": f"{args.end}_rank{rank}",
        "raised": raised,
        "sum": total.item(),
        "initialized": torch.distributed.is_initialized(),
        "megatron": parallel_state.model_parallel_is_initialized(),
    }
    with open(args.out, "a") as f:  # one short append per rank
        f.write(json.dumps(row) + "\n")
    if torch.distributed.is_initialized():
        leave_together()


if __name__ == "__main__":
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    main()
