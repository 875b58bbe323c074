"""``gradvac-train`` (``python -m gradvac_ds.training``): train and compare GradVac modes.

Exit status: 0 when every mode trained to its last step; 128 + the signal's number after a SIGTERM
(143) or SIGINT (130) stopped the run at a step boundary with a final checkpoint; 1 when the run
stopped on an error it explains in one line (a checkpoint that cannot be loaded or must not be
written, too many skipped steps, a run directory holding another run); a traceback otherwise.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Mapping

LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK")
"""Set by the deepspeed launcher, torchrun or an MPI launcher; any of them means "launched"."""


def single_process_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables that make a process started without a launcher rank 0 of a world of one
    (a free local port), or {} when a launcher set any of :data:`LAUNCHER_VARIABLES` or srun
    started several tasks. Without them DeepSpeed falls back to MPI discovery (needs mpi4py)."""
    tasks = environ.get("SLURM_NTASKS", "1")
    if any(name in environ for name in LAUNCHER_VARIABLES) or (
        "SLURM_PROCID" in environ and tasks.isdigit() and int(tasks) > 1
    ):
        return {}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    return {
        "RANK": "0",
        "WORLD_SIZE": "1",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": environ.get("MASTER_ADDR", "127.0.0.1"),
        "MASTER_PORT": environ.get("MASTER_PORT", port),
    }


def main(argv: list[str] | None = None) -> int:
    """Train (and compare) GradVac modes from a run config, under deepspeed/torchrun/SLURM, or as one
    process when started without a launcher."""
    parser = argparse.ArgumentParser(prog="gradvac-train", description=main.__doc__)
    parser.add_argument("--config", required=True, help="run config YAML (see configs/)")
    parser.add_argument("--mode", action="append", help="train only this mode (repeatable)")
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("--resume", action="store_true", help="continue from each mode's latest checkpoint")
    existing.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the modes' earlier outputs in run_dir and start again",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field"
    )
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if single := single_process_environment(os.environ):
        os.environ.update(single)
        print(
            "gradvac-train: no launcher environment (RANK, WORLD_SIZE, ...): one process, rank 0 of 1",
            file=sys.stderr,
        )

    from gradvac_ds.training.reproducibility import set_library_environment

    set_library_environment()  # before torch loads MKL
    from gradvac_ds.training.config_file import parse_overrides
    from gradvac_ds.training.run_config import RunConfig

    config = RunConfig.load(args.config, parse_overrides(args.set))
    from gradvac_ds.training.errors import RunStopped
    from gradvac_ds.training.trainer import run

    try:
        run(config, modes=args.mode, resume=args.resume, overwrite=args.overwrite)
    except RunStopped as err:
        print(f"gradvac-train: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        return err.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
