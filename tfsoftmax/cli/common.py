"""What several subcommands share: their config arguments, the config those give, the count type, and
TensorFlow quieted before it loads. Imports only `config` at the top, so `--help` stays instant."""

from __future__ import annotations

import argparse
import json
import os

from tfsoftmax.config import Config
from tfsoftmax.config.loader import load_config

CONFIG_HELP = "experiment TOML file, e.g. experiments/fashion_mnist.toml"
SET_HELP = "override a config key; the value is read as TOML (repeatable)"


def add_set(p: argparse.ArgumentParser) -> None:
    """--set, repeatable, as `run`, `sweep` and `bench` read it."""
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help=SET_HELP)


def add_config_args(p: argparse.ArgumentParser, nargs: str | None = None) -> None:
    """CONFIG, --set and --logdir: what `config` turns into a Config."""
    p.add_argument("config", nargs=nargs, help=CONFIG_HELP)
    add_set(p)
    p.add_argument("--logdir", metavar="DIR", help="log root instead of the config's logging.root")


def config(args: argparse.Namespace) -> Config:
    """The file's config with every --set applied, then --logdir as one more override."""
    overrides = list(args.set or [])
    if getattr(args, "logdir", None):
        overrides.append(f"logging.root={json.dumps(args.logdir)}")
    return load_config(args.config, overrides)


def positive_int(text: str) -> int:
    """An argparse type for counts such as --workers and bench's --epochs."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got '{text}'")
    return int(text)


def quiet_tensorflow(args: argparse.Namespace) -> None:
    """Called by each subcommand right before it loads TensorFlow, so --help and config errors stay instant:
    TensorFlow's start-up chatter would hide the lines users need. --verbose leaves everything as it is."""
    if args.verbose:
        return
    if args.terminal:
        from tfsoftmax.display.terminal import quiet_tensorflow as quiet

        quiet()
    else:  # an in-process caller (a test, a notebook) owns its stderr: only the log level is ours to set
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
