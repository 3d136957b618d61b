"""`tfsoftmax run`: train one experiment, or continue an interrupted run, and say where it went."""

from __future__ import annotations

import argparse
from pathlib import Path

from tfsoftmax.cli import common
from tfsoftmax.errors import CONFIG_ERROR, TfsoftmaxError

HELP = "train one experiment and write its run directory"


def configure_parser(p: argparse.ArgumentParser) -> None:
    """The `run` subcommand's arguments."""
    common.add_config_args(p, nargs="?")
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue an interrupted run from its last finished epoch, in its own directory",
    )


def command(args: argparse.Namespace) -> int:
    """Train (or resume), print the result, the run directory and how to open it; 0 on success."""
    if args.resume and (args.config or args.set or args.logdir):
        raise TfsoftmaxError(
            "run: --resume RUN_DIR continues a run with the config saved in it; give either "
            "CONFIG (with --set/--logdir) or --resume RUN_DIR",
            CONFIG_ERROR,
        )
    if not args.resume and not args.config:
        raise TfsoftmaxError(
            "run: give an experiment file (e.g. experiments/fashion_mnist.toml) or --resume RUN_DIR", CONFIG_ERROR
        )
    if args.resume:
        from tfsoftmax.rundir.checkpoint import resumable

        resumable(Path(args.resume))  # a wrong folder is reported before TensorFlow loads
    config = None if args.resume else common.config(args)
    common.quiet_tensorflow(args)
    from tfsoftmax.training import train

    result = (train.resume(Path(args.resume)) if args.resume else train.run(config)).raise_for_status()
    root = result.run_dir.parent.parent
    epochs = len(result.history.get("loss", []))
    print(
        f"\nrun {result.status}: test accuracy {result.test['accuracy']:.4f}, test loss "
        f"{result.test['loss']:.4f}, {epochs} epochs, {result.wall_time_s:.1f} s"
    )
    print(f"run directory: {result.run_dir}")
    print(f"TensorBoard:   tfsoftmax board {root}")
    return 0
