"""The notebook side of the Python API, outside a kernel: nothing of it loads or changes anything, results
print short and render as HTML, and messages name the Python API (tests/notebooks runs it in a kernel)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import tfsoftmax
from tfsoftmax.config.loader import load_config
from tfsoftmax.display import notebook, render
from tfsoftmax.rundir import checkpoint
from tfsoftmax.sweeps.results import SweepResult, TrialRow

from conftest import child_env

HISTORY = {"loss": [0.9, 0.6, 0.5], "accuracy": [0.7, 0.8, 0.82], "val_loss": [0.7, 0.6, 0.55]}
HISTORY["val_accuracy"] = [0.75, 0.8, 0.81]


def test_import_loads_no_tensorflow_ipython_or_matplotlib() -> None:
    code = (
        "import sys, tfsoftmax; print(sorted(m for m in ('tensorflow', 'IPython', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), check=True)
    assert out.stdout.strip() == "[]"


def test_outside_a_kernel_nothing_is_shown_or_changed() -> None:
    assert not notebook.in_notebook()
    assert notebook.run_callbacks() == []
    stderr, stdout = os.fstat(2), sys.stdout
    with notebook.quiet():
        assert os.fstat(2) == stderr and sys.stdout is stdout
    stopping = "stopping after the batch or epoch in progress (press Ctrl-C again to stop at once)"
    assert notebook.for_here(stopping) == stopping


def test_override_errors_name_the_python_override_and_the_command_line_its_flag() -> None:
    path = Path("experiments/fashion_mnist.toml").resolve()
    with pytest.raises(tfsoftmax.TfsoftmaxError) as python:
        tfsoftmax.load_config(path, ["train.lr=-1"])
    assert str(python.value) == "override train.lr=-1: train.lr: got -1.0; allowed: a finite number > 0"
    with pytest.raises(tfsoftmax.TfsoftmaxError) as cli:
        load_config(path, ["train.lr=-1"])
    assert str(cli.value).startswith("--set train.lr=-1: train.lr:")
    with pytest.raises(tfsoftmax.TfsoftmaxError, match="^override train.lr=-1: "):
        tfsoftmax.override(tfsoftmax.load_config(path), ["train.lr=-1"])


@pytest.mark.parametrize(
    "cli,python",
    [
        (
            "interrupted after 2 finished epoch(s) of logs/a/b; resume with: tfsoftmax run --resume logs/a/b",
            'interrupted after 2 finished epoch(s) of logs/a/b; resume with: tfsoftmax.resume("logs/a/b")',
        ),
        ("--resume logs/a/b: another process is training this run", "tfsoftmax.resume(logs/a/b): another process"),
        ("full; run the same sweep command again to resume", "full; run the same tfsoftmax.sweep(config) to resume"),
        ("stopped by Ctrl-C", "stopped by an interrupt"),
        (
            "stopping after the batch or epoch in progress (press Ctrl-C again to stop at once)",
            "stopping after the batch or epoch in progress (interrupt again",
        ),
    ],
)
def test_command_line_words_become_the_python_apis(cli: str, python: str) -> None:
    assert notebook.python_words(cli).startswith(python)


def test_an_interrupted_run_names_tfsoftmax_resume_which_finishes_it(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    save = checkpoint.save

    def save_then_interrupt(model: object, run_dir: Path, finished: int, best: object = None) -> None:
        save(model, run_dir, finished, best)
        if finished == 1:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(checkpoint, "save", save_then_interrupt)
    with pytest.raises(tfsoftmax.TfsoftmaxError, match=r'resume with: tfsoftmax\.resume\("(.+)"\)$') as info:
        tfsoftmax.run(tfsoftmax.load_config(write_config("[train]\nepochs = 3")))
    assert info.value.exit_code == 130 and "tfsoftmax run" not in str(info.value)
    monkeypatch.undo()
    run_dir = str(info.value).rsplit('tfsoftmax.resume("', 1)[1][:-2]
    assert tfsoftmax.resume(run_dir).status == "completed"


class _Result:
    """A RunResult's shape, without training."""

    run_dir = Path("logs/tiny/20261204-120000")
    status = "completed"
    history = HISTORY
    test = {"loss": 0.5, "accuracy": 0.8125}
    wall_time_s = 3.25
    divergence = None


def test_a_run_prints_one_short_line_and_renders_its_curves_as_html() -> None:
    text = render.run_text(_Result())
    assert text == f"RunResult({_Result.run_dir}: completed, test loss 0.5000, accuracy 0.8125, 3 epoch(s), 3.2 s)"
    page = render.run_html(_Result())
    for shown in ("completed", "accuracy 0.8125", "3.2 s", str(_Result.run_dir), "tfsoftmax board", "image/png"):
        assert shown in page


def test_curves_are_a_png_of_both_panels() -> None:
    from PIL import Image

    image = Image.open(io.BytesIO(render.curves_png(HISTORY, epochs=10)))
    assert image.format == "PNG" and image.size[0] > 2 * image.size[1]


def test_a_sweep_prints_its_best_trial_and_renders_its_ranked_table() -> None:
    rows = [
        TrialRow("01", "completed", 0.84, {"train.lr": 0.31, "data.batch_size": 64}, 9, ""),
        TrialRow("00", "diverged", None, {"train.lr": 0.9, "data.batch_size": 32}, None, "training loss became nan"),
    ]
    result = SweepResult(Path("logs/sweep"), rows, Path("logs/sweep/best.toml"), 12.0)
    text = repr(result)
    assert text.splitlines()[1] == "  best: TrialRow(01 completed 0.8400 (epoch 9) train.lr=0.31 data.batch_size=64)"
    assert repr(rows[1]).endswith("[training loss became nan])")
    page = result._repr_html_()
    for shown in ("<table>", "best epoch", "train.lr", "diverged", "best: trial 01", "best.toml", "hparams", "0.84"):
        assert shown in page.lower() if shown == "hparams" else shown in page


def test_no_subpackage_shadows_the_notebook_api() -> None:
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(tfsoftmax.__path__):
        if module.ispkg:
            importlib.import_module(f"tfsoftmax.{module.name}")
    for name in ("load_config", "override", "run", "resume", "sweep", "tensorboard"):
        assert callable(getattr(tfsoftmax, name)) and not isinstance(getattr(tfsoftmax, name), type(tfsoftmax)), name


def test_a_comparison_renders_its_table_and_its_figures() -> None:
    png = render.curves_png(HISTORY)
    page = render.comparison_html(["run", "train.lr", "test_accuracy"], [["a", "0.1", "0.8312"]], {"val_accuracy": png})
    assert page.count("<tr>") == 2 and "0.8312" in page and page.count("data:image/png;base64,") == 1


def test_a_kernels_shell_command_gets_epoch_lines_not_a_progress_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    from tfsoftmax.display.terminal import draws_in_place

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdout", Terminal())
    monkeypatch.delenv("JPY_PARENT_PID", raising=False)
    assert draws_in_place()
    monkeypatch.setenv("JPY_PARENT_PID", "1234")
    assert not draws_in_place()
