"""The example notebook (notebooks/softmax_regression.ipynb) executes in a real kernel without an error: on
tiny generated data through its "run locally" switch, and on Fashion-MNIST (slow)."""

from __future__ import annotations

import os
import re
import shutil
import signal
from pathlib import Path

import nbformat
import pytest
from notebooks_helpers import execute, kernel_env, output_text

from conftest import ROOT, write_tiny_cache

NOTEBOOK = ROOT / "notebooks" / "softmax_regression.ipynb"
SMALL_ENV = "TFSOFTMAX_NOTEBOOK_DATA_DIR"


def _stop_tensorboards(under: Path) -> None:
    """The TensorBoard servers the notebook's board cell started on folders under `under`: TensorBoard's
    notebook support leaves them running for the next cell, and the kernel's end does not stop them."""
    from tensorboard import manager

    for info in manager.get_all():
        if str(under) in info.logdir:
            os.kill(info.pid, signal.SIGTERM)


def _run(workdir: Path, **env: str) -> nbformat.NotebookNode:
    """The notebook executed in a copy of the repository's experiments, so its logs stay in `workdir`."""
    shutil.copytree(ROOT / "experiments", workdir / "experiments")
    try:
        return execute(nbformat.read(NOTEBOOK, as_version=4), workdir, kernel_env(**env))
    finally:
        _stop_tensorboards(workdir)


def _outputs(notebook: nbformat.NotebookNode, first_line: str) -> list[nbformat.NotebookNode]:
    """The outputs of the one code cell whose first line is `first_line`."""
    (cell,) = [c for c in notebook.cells if c.cell_type == "code" and c.source.splitlines()[0] == first_line]
    return cell.outputs


def _no_errors(notebook: nbformat.NotebookNode) -> None:
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            assert output.output_type != "error", output_text(output)


def _test_accuracy(outputs: list[nbformat.NotebookNode]) -> float:
    (result,) = [o for o in outputs if o.output_type == "execute_result"]
    return float(re.search(r"test loss [\d.]+, accuracy ([\d.]+)", result.data["text/plain"]).group(1))


def test_the_example_notebook_runs_locally_on_tiny_data(tmp_path: Path) -> None:
    write_tiny_cache(tmp_path / "tfds")
    executed = _run(tmp_path, **{SMALL_ENV: str(tmp_path / "tfds")})
    _no_errors(executed)
    training = _outputs(executed, 'reference = tfsoftmax.run(experiment("fashion_mnist"))')
    assert sum("image/png" in o.get("data", {}) for o in training) == 1  # one figure, redrawn in place
    (shown,) = _outputs(executed, "reference")
    assert "text/html" in shown.data and 0 <= _test_accuracy([shown]) <= 1
    swept = _outputs(executed, 'swept = tfsoftmax.sweep(experiment("fashion_mnist_sweep"), overwrite=True, final=True)')
    assert any("best epoch" in o.data.get("text/html", "") for o in swept if o.output_type == "execute_result")
    assert not list(tmp_path.glob("logs/notebook"))  # the switch logs beside the tiny data


@pytest.mark.slow
def test_the_example_notebook_runs_on_fashion_mnist(tmp_path: Path) -> None:
    executed = _run(tmp_path)
    _no_errors(executed)
    assert _test_accuracy(_outputs(executed, "reference")) > 0.82  # D2L: about 0.83
    naive = output_text(_outputs(executed, 'naive = tfsoftmax.run(experiment("naive_softmax_overflow"))')[-1])
    assert "'diverged'" in naive and "training loss became" in naive
