"""TensorBoard shown where the user is: inline in a notebook's cell through TensorBoard's own notebook
support, or served from this process elsewhere; the URL is returned either way."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tfsoftmax.board.serve import choose, dashboard_url, serve
from tfsoftmax.display.notebook import in_notebook
from tfsoftmax.errors import RUNTIME_ERROR, TfsoftmaxError


def show(path: Path) -> str:
    """TensorBoard on `path`: in a kernel started by TensorBoard's notebook support and shown in the cell;
    elsewhere served from this process. Returns the dashboard's URL either way."""
    view = choose(path)
    if not in_notebook():
        return serve(view, "127.0.0.1", 0)  # port 0: one the system picks free
    from tensorboard import manager
    from tensorboard import notebook as tb_notebook

    binary = Path(sys.executable).with_name("tensorboard")
    if binary.is_file():  # a kernel of a virtualenv may not have its bin folder on PATH, where TensorBoard looks
        os.environ.setdefault("TENSORBOARD_BINARY", str(binary))
    started = manager.start(["--logdir", str(view.logdir), "--port", "0"])
    if not isinstance(started, manager.StartLaunched | manager.StartReused):
        raise TfsoftmaxError(f"board: TensorBoard did not start on {path}: {started}", RUNTIME_ERROR)
    tb_notebook.display(port=started.info.port)
    return dashboard_url(f"http://localhost:{started.info.port}/", view)
