"""The README's Python API as a reader runs it in Jupyter: a real kernel, cell by cell. The cells show no
TensorFlow or keras-tuner chatter, but real errors and warnings; a run draws one figure updated in place;
results render as HTML; messages speak of the Python API."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import nbformat
import pytest
from notebooks_helpers import cells, execute, kernel_env, output_text

from sweep_helpers import sweep_file

CHATTER = ("absl::InitializeLog", "oneDNN", "cuda", "cuInit", "NodeDef", "XLA service", "retracing", "Reloading Tuner")
RAISES = 10  # the cell with a genuine TensorFlow error
A_REAL_ERROR = "E0000 00:00:1796162013.773506   29032 some_op.cc:12] a real error from C++"

INTERRUPT = """
import re, signal
from tfsoftmax.rundir import checkpoint
save = checkpoint.save
def save_then_interrupt(model, run_dir, finished, best=None):
    save(model, run_dir, finished, best)
    if finished == 1:
        os.kill(os.getpid(), signal.SIGINT)
checkpoint.save = save_then_interrupt
try:
    tfsoftmax.run(tfsoftmax.override(config, {"logging.run_name": "cut"}))
except tfsoftmax.TfsoftmaxError as e:
    stopped = e
    print(e)
checkpoint.save = save
"""


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> nbformat.NotebookNode:
    """Nine cells of the README's API on tiny data, run once for every test here."""
    from conftest import write_tiny_cache

    tmp = tmp_path_factory.mktemp("kernel")
    write_tiny_cache(tmp / "tfds")

    def write_config(text: str = "", name: str = "tiny") -> Path:
        path = tmp / f"{name}.toml"
        path.write_text(
            f'[data]\ndata_dir = "{tmp / "tfds"}"\nbatch_size = 16\n[train]\nepochs = 3\nlr = 0.5\n'
            f'[logging]\nroot = "{tmp / "logs"}"\nnum_images = 6\n{text}'
        )
        return path

    config = write_config()
    swept = sweep_file(write_config, '"train.lr" = { min = 0.01, max = 1.0, sampling = "log" }', trials=4, epochs=2)
    notebook = cells(
        [
            f"import tfsoftmax\nconfig = tfsoftmax.load_config({str(config)!r})\nr1 = tfsoftmax.run(config)",
            'r2 = tfsoftmax.run(tfsoftmax.override(config, {"train.lr": 0.3}))',
            f"sweep_config = tfsoftmax.load_config({str(swept)!r})\ns = tfsoftmax.sweep(sweep_config)",
            "s2 = tfsoftmax.sweep(sweep_config, final=True)",
            'try:\n    tfsoftmax.load_config(config_path := r1.run_dir / "config.toml", ["train.lr=-1"])\n'
            "except tfsoftmax.TfsoftmaxError as e:\n    print(e)",
            'd = tfsoftmax.run(tfsoftmax.override(config, {"train.lr": 1e36, "data.scale": False}))\nd.status',
            "r3 = tfsoftmax.run(config)\n(r3.test == r1.test, r3.status)",
            "r1",
            "s2",
            # What must still show: a real C++ error line, a TensorFlow warning (once) and a raised error.
            "import logging, os\nfrom tfsoftmax.display import notebook\nwith notebook.quiet():\n"
            f"    os.write(2, {(A_REAL_ERROR + chr(10)).encode()!r})\n"
            '    logging.getLogger("tensorflow").warning("a real TensorFlow warning")',
            "import tensorflow as tf\ntf.reshape(tf.zeros([4]), [3])",
            # Jupyter's interrupt button: SIGINT to the kernel, here right after the first epoch is saved.
            INTERRUPT,
            "tfsoftmax.resume(re.search(r'tfsoftmax.resume[(]\"(.+)\"[)]', str(stopped)).group(1)).status",
        ]
    )
    return execute(notebook, tmp, kernel_env(), allow_errors=True)


def _outputs(notebook: nbformat.NotebookNode, index: int) -> list[nbformat.NotebookNode]:
    return notebook.cells[index].outputs


def test_no_cell_shows_tensorflow_or_keras_tuner_chatter(executed: nbformat.NotebookNode) -> None:
    for i, cell in enumerate(executed.cells):
        for output in cell.outputs:
            text = output_text(output)
            assert output.output_type != "error" or i == RAISES, f"cell {i}: {text}"
            shown = [word for word in CHATTER if word.lower() in text.lower()]
            assert not shown, f"cell {i} shows {shown}: {text}"


def test_real_errors_and_warnings_still_show_once(executed: nbformat.NotebookNode) -> None:
    streams = "".join(o.text for o in _outputs(executed, 9) if o.output_type == "stream")
    assert streams.count(A_REAL_ERROR) == 1
    assert streams.count("a real TensorFlow warning") == 1
    (error,) = [o for o in _outputs(executed, RAISES) if o.output_type == "error"]
    assert error.ename == "InvalidArgumentError"


def test_a_run_draws_one_figure_updated_in_place_over_every_epoch(executed: nbformat.NotebookNode) -> None:
    from PIL import Image

    images = [o for o in _outputs(executed, 0) if "image/png" in o.get("data", {})]
    assert len(images) == 1  # each epoch's update replaced it in place: one output, the last epoch's
    assert images[0].metadata["image/png"]["epochs"] == [1, 2, 3]
    assert Image.open(io.BytesIO(base64.b64decode(images[0].data["image/png"]))).size[0] > 100
    texts = "".join(output_text(o) for o in _outputs(executed, 0))
    assert "examples_per_second" not in texts  # the figure, not Keras' epoch lines


def test_results_render_as_html_with_short_text(executed: nbformat.NotebookNode) -> None:
    (run,) = [o for o in _outputs(executed, 7) if o.output_type == "execute_result"]
    assert "completed" in run.data["text/html"] and "data:image/png;base64" in run.data["text/html"]
    assert "tfsoftmax board" in run.data["text/html"]
    assert run.data["text/plain"].startswith("RunResult(") and "history" not in run.data["text/plain"]
    (swept,) = [o for o in _outputs(executed, 8) if o.output_type == "execute_result"]
    assert "<table>" in swept.data["text/html"] and "best epoch" in swept.data["text/html"]
    assert "final run" in swept.data["text/html"]
    assert swept.data["text/plain"].startswith("SweepResult(") and "TrialRow(" in swept.data["text/plain"]
    assert len(swept.data["text/plain"].splitlines()) <= 5


def test_same_run_twice_gives_the_same_test_metrics(executed: nbformat.NotebookNode) -> None:
    (result,) = [o for o in _outputs(executed, 6) if o.output_type == "execute_result"]
    assert result.data["text/plain"] == "(True, 'completed')"


def test_messages_name_the_python_api(executed: nbformat.NotebookNode) -> None:
    printed = "".join(o.text for o in _outputs(executed, 4) if o.output_type == "stream")
    assert printed.startswith("override train.lr=-1: train.lr: got -1.0; allowed: a finite number > 0")
    assert "--set" not in printed


def test_a_diverged_run_says_so_in_its_cell(executed: nbformat.NotebookNode) -> None:
    outputs = _outputs(executed, 5)
    shown = "".join(output_text(o) for o in outputs if o.output_type == "display_data")
    assert "diverged" in shown and "training loss became" in shown
    (status,) = [o for o in outputs if o.output_type == "execute_result"]
    assert status.data["text/plain"] == "'diverged'"


def test_a_sweep_shows_one_progress_display(executed: nbformat.NotebookNode) -> None:
    outputs = _outputs(executed, 2)
    shown = [o for o in outputs if o.output_type == "display_data" and "text/html" in o.data]
    assert len(shown) == 1 and "trial 4/4" in shown[0].data["text/html"]
    assert not [o for o in outputs if o.output_type == "stream" and "trial" in o.text]


def test_an_interrupted_run_says_how_to_resume_it_from_python(executed: nbformat.NotebookNode) -> None:
    outputs = _outputs(executed, 11)
    stderr = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stderr")
    stdout = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stdout")
    assert "stopping after the batch or epoch in progress (interrupt again to stop at once)" in stderr
    assert stdout.startswith("interrupted after 1 finished epoch(s) of ") and 'tfsoftmax.resume("' in stdout
    assert "Ctrl-C" not in stderr + stdout and "tfsoftmax run --resume" not in stdout
    (resumed,) = [o for o in _outputs(executed, 12) if o.output_type == "execute_result"]
    assert resumed.data["text/plain"] == "'completed'"


def test_the_verbose_switch_shows_tensorflow_again(tmp_path: Path) -> None:
    from conftest import write_tiny_cache

    write_tiny_cache(tmp_path / "tfds")
    config = tmp_path / "tiny.toml"
    config.write_text(
        f'[data]\ndata_dir = "{tmp_path / "tfds"}"\n[train]\nepochs = 1\n[logging]\nroot = "{tmp_path}"\n'
    )
    notebook = cells([f"import tfsoftmax\ntfsoftmax.run(tfsoftmax.load_config({str(config)!r})).status"])
    executed = execute(notebook, tmp_path, kernel_env(TFSOFTMAX_VERBOSE="1"))
    shown = "".join(output_text(o) for o in executed.cells[0].outputs)
    assert "oneDNN" in shown and "'completed'" in shown


@pytest.mark.slow
def test_a_first_preparation_shows_one_line_not_progress_bars(tmp_path: Path) -> None:
    from conftest import SHARED_FASHION

    if not SHARED_FASHION.is_dir():
        pytest.skip(f"no original Fashion-MNIST files in {SHARED_FASHION}")
    config = tmp_path / "fresh.toml"
    config.write_text(
        f'[data]\ndata_dir = "{tmp_path / "tfds"}"\nmanual_dir = "{SHARED_FASHION}"\n'
        f'[train]\nepochs = 1\n[logging]\nroot = "{tmp_path / "logs"}"\n'
    )
    notebook = cells([f"import tfsoftmax\ntfsoftmax.run(tfsoftmax.load_config({str(config)!r})).status"])
    outputs = execute(notebook, tmp_path, kernel_env()).cells[0].outputs
    shown = [o for o in outputs if "text/html" in o.get("data", {}) and o.output_type == "display_data"]
    assert len(shown) == 1 and "prepared fashion_mnist in" in shown[0].data["text/html"]
    streams = "".join(o.text for o in outputs if o.output_type == "stream")
    for chatter in ("\x1b[A", "%|", "IProgress", "Variant folder", "absl::InitializeLog"):
        assert chatter not in streams, streams
    (result,) = [o for o in outputs if o.output_type == "execute_result"]
    assert result.data["text/plain"] == "'completed'"
