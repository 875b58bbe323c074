"""torchrun worker: ``training.dist_timeout_minutes`` reaches the process group.

Rank 1 stays away from the collective for longer than the configured timeout; rank 0 must get an
error from its all-reduce after about the timeout, not hang. Rank 0 writes one JSON line to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from deepspeed import comm as dist

from gradvac_ds.training.build import setup_distributed
from gradvac_ds.training.run_config import RunConfig

DEMO = Path(__file__).parents[2] / "configs" / "demo.yaml"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--minutes", type=float, required=True)
    parser.add_argument("--absent-s", type=float, required=True)
    args = parser.parse_args()
    setup_distributed(RunConfig.load(DEMO, {"training.dist_timeout_minutes": args.minutes}))
    if dist.get_rank() == 1:
        time.sleep(args.absent_s)
        os._exit(0)
    began = time.monotonic()
    try:
        dist.all_reduce(torch.ones(1))
        result = {"case": "timeout", "raised": None}
    except Exception as err:  # the backend's timeout error type differs between gloo and NCCL
        result = {"case": "timeout", "raised": f"{type(err).__name__}: {err}"[:300]}
    result["elapsed_s"] = time.monotonic() - began
    with open(args.out, "w") as f:
        f.write(json.dumps(result) + "\n")
    os._exit(0)


if __name__ == "__main__":
    main()
