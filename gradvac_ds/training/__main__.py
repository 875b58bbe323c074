"""``gradvac-train`` (``python -m gradvac_ds.training``): train and compare GradVac modes."""

from __future__ import annotations

import argparse
import sys

import yaml


def parse_overrides(pairs: list[str]) -> dict[str, object]:
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
    parser.add_argument("--resume", action="store_true", help="continue from each mode's latest checkpoint")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field"
    )
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    from gradvac_ds.training.run_config import RunConfig

    config = RunConfig.from_yaml(args.config, parse_overrides(args.set))
    from gradvac_ds.training.trainer import run

    run(config, modes=args.mode, resume=args.resume)
    return 0


if __name__ == "__main__":
    sys.exit(main())
