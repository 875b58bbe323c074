"""``gradvac-train`` (``python -m gradvac_ds.training``): train and compare GradVac modes.

Exit status: 0 when every mode trained to its last step; 128 + the signal's number after a SIGTERM
(143) or SIGINT (130) stopped the run at a step boundary with a final checkpoint; 1 when the run
stopped on an error it explains in one line (a checkpoint that cannot be loaded or must not be
written, too many skipped steps, a run directory holding another run); a traceback otherwise.
"""

from __future__ import annotations

import argparse
import sys

import yaml


def _overrides(pairs: list[str]) -> dict[str, object]:
    """``key.sub=value`` strings -> {"key.sub": parsed YAML value}."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects key.sub=value, got {pair!r}")
        out[key] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> int:
    """Train (and compare) GradVac modes from a run config, under deepspeed/torchrun/SLURM."""
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

    from gradvac_ds.training.run_config import RunConfig

    config = RunConfig.from_yaml(args.config, _overrides(args.set))
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
