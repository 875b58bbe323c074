"""``gradvac-analyze RUN_DIR/<mode>``: figures and reports from a mode's gradient-similarity log.

Without ``--families`` the run's ``families.csv`` is used when it lies in the mode folder or one
folder up (where the trainer writes it). Given a run folder (which has no log of its own), the
error names its mode folders.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from gradvac_ds.analysis.report.analyze import analyze_run
from gradvac_ds.analysis.report.discovery import find_families, logged_subfolders, mode_dir
from gradvac_ds.analysis.report.units import LANGUAGE, TASK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of gradvac-analyze."""
    parser = argparse.ArgumentParser(
        prog="gradvac-analyze",
        description="Analyse the GradVac gradient-similarity log of a training run: clustered heatmap, "
        "similarity over training, per-layer profile, fire rates, and agreement with language "
        "distances and families.",
    )
    parser.add_argument(
        "run_dir",
        type=Path,
        help="mode folder holding gradvac_similarity/ (or that folder), e.g. runs/demo/gradvac",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default: the mode folder's analysis/)"
    )
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
        help="CSV of language families: language,family or a table with code and family columns "
        "(default: families.csv in the mode folder or one folder up, if there is one)",
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
    out = args.out if args.out is not None else mode_dir(args.run_dir) / "analysis"
    families = args.families if args.families is not None else find_families(args.run_dir)
    replacing = (out / "report.txt").is_file()
    try:
        analyze_run(
            args.run_dir,
            out,
            families=families,
            distances=args.distances,
            pairs=args.pairs,
            group_by=args.group_by,
            distance_column=args.distance_column,
            family_column=args.family_column,
            groups=args.groups,
        )
    except (FileNotFoundError, ValueError) as error:
        print(f"gradvac-analyze: error: {error}{_mode_hint(args.run_dir)}", file=sys.stderr)
        return 2
    if args.families is None and families is not None:
        print(f"gradvac-analyze: families from {families} (found next to the run; --families to change)")
    print(
        f"gradvac-analyze: wrote {out / 'report.txt'}"
        + (" (replacing the previous report)" if replacing else "")
    )
    return 0


def _mode_hint(path: Path) -> str:
    """For a run folder: which of its subfolders have a log, and the command for one of them."""
    modes = logged_subfolders(path)
    if not modes:
        return ""
    example = next((m for m in modes if m.name == "gradvac"), modes[0])
    names = ", ".join(str(m) for m in modes)
    return f"\n{path} is a run folder; its modes have logs: {names}\nanalyse one: gradvac-analyze {example}"


if __name__ == "__main__":
    sys.exit(main())
