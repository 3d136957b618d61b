"""The command line, `tfsoftmax run|sweep|compare|board|numerics|bench`: argparse and one library call per
subcommand, with TensorFlow imported only by the subcommands that train."""

from tfsoftmax.cli.main import build_parser, main, main_entry

__all__ = ["build_parser", "main", "main_entry"]
