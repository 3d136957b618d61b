"""`tfsoftmax board`: TensorBoard on a run, experiment, sweep or log root, until Ctrl-C."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from tfsoftmax.cli import common
from tfsoftmax.config import LoggingConfig

HELP = "start TensorBoard on a run, experiment, sweep or log root; print the dashboard's URL"


def configure_parser(p: argparse.ArgumentParser) -> None:
    """The `board` subcommand's arguments."""
    root = LoggingConfig().root  # the config's default log root, not a second copy of it
    p.add_argument(
        "path",
        nargs="?",
        default=root,
        help="a run directory or an experiment folder (opens on the scalars), a sweep folder (on "
        f"HParams) or a log root (default: {root})",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=6006, help="port (default: 6006; 0 picks a free one)")


def command(args: argparse.Namespace) -> int:
    """Serve the folder's dashboard and print its URL; 0 once Ctrl-C stops it."""
    from tfsoftmax.board import serve as board

    view = board.choose(Path(args.path))
    common.quiet_tensorflow(args)
    url = board.serve(view, args.host, args.port)
    print(f"TensorBoard on {view.kind} {view.logdir}: {url} (Ctrl-C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    return 0
