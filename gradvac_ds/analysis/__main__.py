"""``gradvac-analyze RUN_DIR``: figures and reports from a run's gradient-similarity log."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from gradvac_ds.analysis.report.analyze import analyze_run
from gradvac_ds.analysis.report.units import LANGUAGE, TASK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of gradvac-analyze."""
    parser = argparse.ArgumentParser(
        prog="gradvac-analyze",
        description="Analyse the GradVac gradient-similarity log of a training run: clustered heatmap, "
        "similarity over training, per-layer profile, fire rates, and agreement with language "
        "distances and families.",
    )
    parser.add_argument("run_dir", type=Path, help="run folder holding gradvac_similarity/ (or that folder)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: RUN_DIR/analysis)")
    parser.add_argument(
        "--pairs",
        default=None,
        help="pairs for the over-time plot, e.g. 'de|nl,de|ja' (default: the 3 most and 3 least similar)",
    )
    parser.add_argument(
        "--distances",
        type=Path,
        default=None,
        help="CSV of language distances: lang1,lang2,distance or code_a,code_b,<columns...>",
    )
    parser.add_argument(
        "--distance-column",
        default=None,
        help="distance column to use (default: 'distance', else the first numeric column)",
    )
    parser.add_argument(
        "--families",
        type=Path,
        default=None,
        help="CSV of language families: language,family or a table with code and family columns",
    )
    parser.add_argument(
        "--family-column",
        default=None,
        help="family column to use (default: 'family', else the second column)",
    )
    parser.add_argument(
        "--groups",
        default=None,
        help="regular expression on parameter-group names that the language similarity averages over, "
        "e.g. 'encoder' (default: all groups)",
    )
    parser.add_argument(
        "--group-by",
        choices=(LANGUAGE, TASK),
        default=LANGUAGE,
        help="analyse languages (the non-pivot side of each task) or tasks",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the analysis; print the report path. Returns 0, or 2 with a message on bad input."""
    args = build_parser().parse_args(argv)
    out = args.out if args.out is not None else args.run_dir / "analysis"
    try:
        analyze_run(
            args.run_dir,
            out,
            families=args.families,
            distances=args.distances,
            pairs=args.pairs,
            group_by=args.group_by,
            distance_column=args.distance_column,
            family_column=args.family_column,
            groups=args.groups,
        )
    except (FileNotFoundError, ValueError) as error:
        print(f"gradvac-analyze: error: {error}", file=sys.stderr)
        return 2
    print(f"gradvac-analyze: wrote {out / 'report.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
