"""The command line, `tfsoftmax run|sweep|compare|bench|numerics|board`: one module per subcommand, each
parsing its arguments, making one library call and printing; TensorFlow is imported only inside the
subcommands that need it, so `--help` and config errors answer at once."""

from tfsoftmax.cli.main import build_parser, main, main_entry

__all__ = ["build_parser", "main", "main_entry"]
