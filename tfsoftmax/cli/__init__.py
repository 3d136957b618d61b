"""The command line, `tfsoftmax run|sweep|compare|bench|numerics|board`: one module per subcommand, each
parsing its arguments, making one library call and printing, with TensorFlow imported only by those that train."""

from tfsoftmax.cli.main import build_parser, main, main_entry

__all__ = ["build_parser", "main", "main_entry"]
