"""Command line: thin subcommands over the notebook API. Only `config` and `errors` are imported here at
the top, so `--help` and config errors answer without loading TensorFlow."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from tfsoftmax.config import Config, load_config
from tfsoftmax.errors import CONFIG_ERROR, RUNTIME_ERROR, TfsoftmaxError


def _config(args: argparse.Namespace) -> Config:
    overrides = list(args.set or [])
    if getattr(args, "logdir", None):
        overrides.append(f"logging.root={json.dumps(args.logdir)}")
    return load_config(args.config, overrides)


def _quiet_tensorflow() -> None:
    # TensorFlow's C++ start-up chatter hides the lines users need; real errors still surface.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def cmd_run(args: argparse.Namespace) -> int:
    config = _config(args)
    _quiet_tensorflow()
    from tfsoftmax.train import run

    result = run(config)
    root = config.logging.root
    if result.status == "diverged":
        raise TfsoftmaxError(f"diverged: {result.divergence['reason']}; record kept in {result.run_dir}",
                             RUNTIME_ERROR)
    epochs = len(result.history.get("loss", []))
    print(f"\nrun {result.status}: test accuracy {result.test['accuracy']:.4f}, test loss "
          f"{result.test['loss']:.4f}, {epochs} epochs, {result.wall_time_s:.1f} s")
    print(f"run directory: {result.run_dir}")
    print(f"TensorBoard:   tfsoftmax board {root}")
    return 0


def cmd_board(args: argparse.Namespace) -> int:
    logdir = Path(args.logdir)
    if not logdir.is_dir():
        raise TfsoftmaxError(f"board: {logdir}: no such log directory", CONFIG_ERROR)
    _quiet_tensorflow()
    from tensorboard import program

    board = program.TensorBoard()
    board.configure(argv=[None, "--logdir", str(logdir), "--host", args.host, "--port", str(args.port)])
    url = board.launch()
    print(f"TensorBoard on {logdir} at {url} (Ctrl-C to stop)", flush=True)
    try:
        import threading

        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfsoftmax",
        description="D2L's softmax regression with Keras: runs and sweeps from config files, in TensorBoard.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_config_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("config", help="experiment TOML file, e.g. experiments/fashion_mnist.toml")
        p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                       help="override a config key; the value is read as TOML (repeatable)")
        p.add_argument("--logdir", metavar="DIR", help="log root instead of the config's logging.root")

    p = sub.add_parser("run", help="train one experiment and write its run directory")
    add_config_args(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("board", help="start TensorBoard on a log root and print its address")
    p.add_argument("logdir", nargs="?", default="logs", help="log root (default: logs)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=6006, help="port (default: 6006; 0 picks a free one)")
    p.set_defaults(func=cmd_board)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; a TfsoftmaxError becomes one line on stderr and its exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TfsoftmaxError as e:
        print(f"tfsoftmax: error: {e}", file=sys.stderr)
        return e.exit_code


def main_entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
