"""`tfsoftmax compare`: finished runs side by side, as a printed table and the files `analysis.compare`
writes."""

from __future__ import annotations

import argparse

from tfsoftmax.config import OBJECTIVES

HELP = "tables and PNG figures comparing finished runs, experiments or sweeps"


def configure_parser(p: argparse.ArgumentParser) -> None:
    """The `compare` subcommand's arguments."""
    from tfsoftmax.analysis.compare import DEFAULT_METRIC

    p.add_argument(
        "runs",
        nargs="+",
        metavar="RUN_OR_DIR",
        help="run directories, experiment or sweep folders holding them, or glob patterns",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="where the tables and figures go (default: compare/ in the deepest folder holding all the runs)",
    )
    p.add_argument(
        "--metric",
        choices=OBJECTIVES,
        default=DEFAULT_METRIC,
        help=f"metric of the best and final columns (default: {DEFAULT_METRIC}); "
        "accuracy also draws train_accuracy.png",
    )


def command(args: argparse.Namespace) -> int:
    """Compare, print the table and say where the files went; 0 on success."""
    from tfsoftmax.analysis.compare import compare, format_table
    from tfsoftmax.analysis.runs import shown

    result = compare(args.runs, args.out, args.metric)
    files = ["compare.md", "compare.csv", *(f"{stem}.png" for stem in result.figures)]
    skipped = f", {len(result.skipped)} path(s) skipped" if result.skipped else ""
    print(format_table(result.rows))
    print(f"\n{len(result.runs)} run(s) compared{skipped}; wrote {', '.join(files)} in {shown(result.out)}")
    return 0
