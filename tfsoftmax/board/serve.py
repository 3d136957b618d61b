"""What `tfsoftmax board` serves: the folder it is given, opened on the dashboard that fits what it holds.

A run directory, an experiment folder and a log root open on the scalars; a sweep folder opens on the
HParams dashboard, which lists every trial with its values and metrics. Telling them apart reads only the
folder and its immediate subfolders, so the answer (and an error for a wrong path) comes at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tfsoftmax.errors import CONFIG_ERROR, TfsoftmaxError
from tfsoftmax.rundir import layout as rundir


@dataclass(frozen=True)
class View:
    """A folder for TensorBoard to serve and the dashboard to open on it."""

    logdir: Path
    kind: str  # "run", "experiment", "sweep" or "log root", as the command line says it
    dashboard: str  # TensorBoard's plugin name, which is the URL's fragment


def choose(path: Path) -> View:
    """The view for `path`: HParams for a sweep, scalars for a run, an experiment or a log root.

    Raises:
        TfsoftmaxError: exit code 2, if `path` is not a directory.
    """
    if not path.exists():
        raise TfsoftmaxError(f"board: {path}: no such log directory", CONFIG_ERROR)
    if not path.is_dir():
        raise TfsoftmaxError(
            f"board: {path}: not a directory; allowed: a run directory, an experiment or sweep folder, or a log root",
            CONFIG_ERROR,
        )
    if rundir.is_sweep(path):
        return View(path, "sweep", "hparams")
    if rundir.is_run(path):
        return View(path, "run", "scalars")
    if any(child.is_dir() and rundir.is_run(child) for child in path.iterdir()):
        return View(path, "experiment", "scalars")
    return View(path, "log root", "scalars")


def dashboard_url(base: str, view: View) -> str:
    """TensorBoard's address (as `launch` returns it) opened on the view's dashboard."""
    return f"{base.rstrip('/')}/#{view.dashboard}"


def serve(view: View, host: str, port: int) -> str:
    """Start TensorBoard on the view's folder in this process; returns the dashboard's URL."""
    from tensorboard import program

    board = program.TensorBoard()
    board.configure(argv=[None, "--logdir", str(view.logdir), "--host", host, "--port", str(port)])
    return dashboard_url(board.launch(), view)
