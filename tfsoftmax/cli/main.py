"""`tfsoftmax`'s parser, built from one module per subcommand, and the one place a TfsoftmaxError or Ctrl-C
becomes a line on stderr and an exit code."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import sys
from collections.abc import Sequence

from tfsoftmax.cli import bench, board, compare, numerics, run, sweep
from tfsoftmax.config.tomlio import printable
from tfsoftmax.errors import INTERRUPTED, TfsoftmaxError

SUBCOMMANDS = {"run": run, "sweep": sweep, "compare": compare, "bench": bench, "numerics": numerics, "board": board}


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: --verbose, then each subcommand's own arguments and its `command`."""
    from tfsoftmax.display.terminal import VERBOSE_ENV

    parser = argparse.ArgumentParser(
        prog="tfsoftmax",
        description="D2L's softmax regression with Keras: runs and sweeps from config files, in TensorBoard.",
    )
    verbose_help = (
        "show everything TensorFlow and keras-tuner print: start-up notices, INFO lines, "
        f"keras-tuner's trial tables (also ${VERBOSE_ENV}=1); before or after COMMAND"
    )
    parser.add_argument("--verbose", action="store_true", help=verbose_help)
    # The same flag after COMMAND; SUPPRESS keeps a --verbose given before COMMAND.
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in SUBCOMMANDS.items():
        p = sub.add_parser(name, parents=[verbose], help=module.HELP)
        module.configure_parser(p)
        p.set_defaults(func=module.command)
    return parser


def main(argv: Sequence[str] | None = None, terminal: bool = False) -> int:
    """Run one subcommand; a TfsoftmaxError becomes one line on stderr and its exit code. `terminal` says
    the process is the command line itself, whose stderr it may filter; in-process callers keep theirs."""
    from tfsoftmax.display.terminal import verbose_requested

    args = build_parser().parse_args(argv)
    args.verbose = verbose_requested(args.verbose)
    args.terminal = terminal
    try:
        return args.func(args)
    except TfsoftmaxError as e:
        print(f"tfsoftmax: error: {printable(str(e))}", file=sys.stderr)  # one line, whatever it quotes
        return e.exit_code
    except KeyboardInterrupt:  # between epochs or trials: everything finished so far is already on disk
        print("tfsoftmax: error: interrupted; run the same command again to resume", file=sys.stderr)
        return INTERRUPTED


def main_entry() -> None:
    """Console-script and `python -m tfsoftmax` entry point."""
    code = main(terminal=True)
    if "tensorflow" in sys.modules and sys.getprofile() is None:  # a profiler writes its figures after we return
        exit_now(code)
    sys.exit(code)


def exit_now(code: int) -> None:
    """End a process that loaded TensorFlow without the interpreter's teardown, which then takes most of a
    second (docs/speed.md) and writes nothing of ours: every file a command writes is closed when it
    returns. The exit handlers run as at any exit (TensorFlow's, and the stderr filter's drain), after
    the standard streams are flushed."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe or stream: nothing left to deliver
            stream.flush()
    atexit._run_exitfuncs()  # what a normal exit runs first (CPython's own runner of `atexit` handlers)
    os._exit(code)
