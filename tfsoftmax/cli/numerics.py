"""`tfsoftmax numerics`: where exp and the naive softmax break in each float format."""

from __future__ import annotations

import argparse

from tfsoftmax.cli import common

HELP = "where exp and the naive softmax break in float64/32, bfloat16, float16"


def configure_parser(p: argparse.ArgumentParser) -> None:
    """The `numerics` subcommand's arguments."""
    p.add_argument("--dtype", default="float32", help="format for the softmax([100, 0]) check (default: float32)")


def command(args: argparse.Namespace) -> int:
    """Print the report; 0 on success."""
    common.quiet_tensorflow(args)
    from tfsoftmax.lessons.numerics import report  # checks the format name before it loads TensorFlow

    print(report(args.dtype))
    return 0
