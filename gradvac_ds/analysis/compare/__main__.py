"""``gradvac-compare RUN_DIR [RUN_DIR ...]``: modes x seeds -> mean ± sd, paired tests, verdicts."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from gradvac_ds.analysis.compare.report import compare_runs


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of gradvac-compare."""
    parser = argparse.ArgumentParser(
        prog="gradvac-compare",
        description="Compare training modes over seeds: BLEU/chrF mean ± sd, sacreBLEU paired bootstrap "
        "and approximate randomisation against a baseline, a verdict per pair after Holm correction "
        "(better / worse / negligible / not significant), and, with --distances, intervals for "
        "similarity vs language distance.",
    )
    parser.add_argument(
        "run_dirs", nargs="+", type=Path, help="run folders (<run>/seed<s>/<mode>/ or <run>/<mode>/)"
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: FIRST_RUN/compare)")
    parser.add_argument("--baseline", default=None, help="baseline mode (default: sum, else the first mode)")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    parser.add_argument(
        "--min-effect", type=float, default=0.1,
        help="smallest BLEU/chrF difference (points) a verdict calls better or worse (default 0.1)",
    )  # fmt: skip
    parser.add_argument(
        "--min-loss-effect", type=float, default=0.001,
        help="smallest validation-loss difference (nats) a finding calls lower or higher (default 0.001)",
    )  # fmt: skip
    parser.add_argument("--bootstrap", type=int, default=1000, help="paired bootstrap resamples (1000)")
    parser.add_argument("--trials", type=int, default=10000, help="approximate randomisation trials (10000)")
    parser.add_argument("--tokenize", default="13a", help="sacreBLEU BLEU tokenizer (default 13a)")
    parser.add_argument(
        "--distances", type=Path, default=None, help="language-distance CSV (similarity part)"
    )
    parser.add_argument(
        "--distance-column", default=None, help="distance column (default: as gradvac-analyze)"
    )
    parser.add_argument("--pieces", type=Path, default=None, help="piece_counts.npz (default: FIRST_RUN's)")
    parser.add_argument("--resamples", type=int, default=1000, help="similarity bootstrap resamples (1000)")
    parser.add_argument("--permutations", type=int, default=9999, help="Mantel permutations (9999)")
    parser.add_argument(
        "--steps", type=_step_range, default=None, metavar="FIRST:STOP",
        help="similarity part: only the log windows inside GradVac steps FIRST <= step < STOP",
    )  # fmt: skip
    return parser


def _step_range(text: str) -> tuple[int, int]:
    """``FIRST:STOP`` -> (FIRST, STOP) with 0 <= FIRST < STOP; an empty side means 0 or no end."""
    first, sep, stop = text.partition(":")
    try:
        bounds = (int(first or 0), int(stop) if stop else 2**62)
    except ValueError:
        bounds = (-1, -1)
    if not sep or not 0 <= bounds[0] < bounds[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: expected FIRST:STOP with integers 0 <= FIRST < STOP")
    return bounds


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison; print the text report. Returns 0, or 2 with a message on bad input."""
    args = build_parser().parse_args(argv)
    for name in ("bootstrap", "trials", "resamples", "permutations"):
        if getattr(args, name) < 1:
            print(f"gradvac-compare: error: --{name} must be >= 1", file=sys.stderr)
            return 2
    out = args.out if args.out is not None else args.run_dirs[0] / "compare"
    try:
        compare_runs(
            args.run_dirs, out, baseline=args.baseline, alpha=args.alpha, min_effect=args.min_effect,
            min_loss_effect=args.min_loss_effect, bootstrap_samples=args.bootstrap,
            randomisation_trials=args.trials, tokenize=args.tokenize, distances=args.distances,
            distance_column=args.distance_column, pieces=args.pieces, resamples=args.resamples,
            permutations=args.permutations, steps=args.steps,
        )  # fmt: skip
    except (FileNotFoundError, ValueError) as error:
        print(f"gradvac-compare: error: {error}", file=sys.stderr)
        return 2
    print((out / "compare.txt").read_text(encoding="utf-8"), end="")
    print(f"gradvac-compare: wrote {out / 'compare.json'}, compare.txt, compare.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
