"""torchrun worker: :class:`TrainLossMeter` sums over the data-parallel ranks.

Each rank feeds different micro-batch losses and token counts (task "b" runs on rank 1 only);
rank 0 writes the events of two consecutive calls as one JSON line to --out.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import deepspeed
import torch
from deepspeed import comm as dist

from gradvac_ds.training.build import leave_together
from gradvac_ds.training.monitoring import TrainLossMeter

FEED = {0: [("a", 2.0, 10), ("a", 4.0, 30)], 1: [("a", 1.0, 60), ("b", 3.0, 5)]}
"""rank -> (task, mean per-token loss, target tokens) micro-batches."""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    deepspeed.init_distributed(dist_backend="gloo")
    meter = TrainLossMeter(["a", "b", "c"], torch.device(deepspeed.get_accelerator().current_device_name()))
    for task, loss, tokens in FEED[dist.get_rank()]:
        meter.add(task, loss, tokens)
    first = meter.events(64)
    second = meter.events(128)  # nothing was added since: no events, and the sums were reset
    if dist.get_rank() == 0:
        row = {"case": "meter", "first": first, "second": second}
        Path(args.out).write_text(json.dumps(row) + "\n")
    leave_together()


if __name__ == "__main__":
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    main()
