"""tfsoftmax: D2L's softmax regression with Keras, from config files to TensorBoard.

The notebook API; importing it loads no TensorFlow:

    import tfsoftmax
    config = tfsoftmax.load_config("experiments/fashion_mnist.toml", ["train.lr=0.3"])
    result = tfsoftmax.run(config)
    result.test["accuracy"], result.run_dir, result.history, result.model
    tfsoftmax.resume("logs/fashion_mnist/20261123-221502")   # an interrupted run, from its last epoch
    swept = tfsoftmax.sweep(tfsoftmax.load_config("experiments/fashion_mnist_sweep.toml"), final=True)
    swept.rows[0], swept.best_config_path, swept.final.test["accuracy"]
    tfsoftmax.tensorboard(swept.sweep_dir)   # TensorBoard in the cell (its URL outside a notebook)

In a Jupyter kernel a run draws its curves in its cell as it trains, a sweep shows its progress in
place, TensorFlow's start-up chatter is left out as on the command line ($TFSOFTMAX_VERBOSE=1 shows
it), and results render as HTML.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfsoftmax.config import Config, loader
from tfsoftmax.display import notebook
from tfsoftmax.errors import TfsoftmaxError

if TYPE_CHECKING:
    from tfsoftmax.sweeps.results import SweepResult
    from tfsoftmax.training.result import RunResult

__version__ = "0.1.0"
__all__ = ["Config", "TfsoftmaxError", "load_config", "override", "resume", "run", "sweep", "tensorboard"]
OVERRIDE = "override"  # how a config error names an override given from Python


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Read and validate an experiment file with `section.key=value` overrides (values read as TOML); a
    mistake raises TfsoftmaxError naming the file, or the override, the key, the value and what is allowed."""
    return loader.load_config(path, overrides, OVERRIDE)


def override(config: Config, overrides: Mapping[str, Any] | Sequence[str]) -> Config:
    """A new Config with `{"train.lr": 0.3}` (or `["train.lr=0.3"]`) set, checked as a file's values are."""
    return loader.override(config, overrides, OVERRIDE)


def run(config: Config) -> RunResult:
    """Train one experiment; see `tfsoftmax.training.train.run`. In a notebook its curves are drawn in the
    cell as it trains, and a diverged run says so there."""
    with notebook.quiet(), notebook.python_errors():
        from tfsoftmax.training.train import run as run_experiment

        result = run_experiment(config)
    notebook.announce(result)
    return result


def resume(run_dir: str | Path) -> RunResult:
    """Continue an interrupted run from its last finished epoch; see `tfsoftmax.training.train.resume`."""
    with notebook.quiet(), notebook.python_errors():
        from tfsoftmax.training.train import resume as resume_run

        result = resume_run(Path(run_dir))
    notebook.announce(result)
    return result


def sweep(
    config: Config, *, overwrite: bool = False, final: bool = False, workers: int = 0, display: bool = False
) -> SweepResult:
    """Run a keras-tuner search over the config's [sweep.space], or resume it: running the same sweep
    again keeps its finished trials and continues the interrupted one.

    Args:
        config: a validated Config with a [sweep.space] and a validation split.
        overwrite: delete the earlier sweep of this experiment first.
        final: retrain the best trial's config on train+validation and evaluate it on test, once.
        workers: search with a chief oracle and this many worker processes on this machine (0: here).
        display: keras-tuner's own per-trial tables and Keras' per-epoch lines, beside the progress lines.

    Returns:
        SweepResult: the trials ranked best first, the best trial's config file (`best.toml`), the
        workers that ran and the final run, where there were any.

    Raises:
        TfsoftmaxError: a config that cannot be swept (exit code 2); no trial completed, the final run
            diverged, a process failed, a full disk or Ctrl-C (exit code 1 or 130; what finished is kept).
    """
    with notebook.quiet(), notebook.python_errors():
        from tfsoftmax.sweeps.tune import sweep as run_sweep

        return run_sweep(config, overwrite=overwrite, final=final, workers=workers, display=display)


def tensorboard(path: str | Path) -> str:
    """TensorBoard on a run directory, a sweep folder (opened on HParams) or a log root.

    Args:
        path: the folder to show.

    Returns:
        The dashboard's URL. In a notebook TensorBoard is also shown in the cell (TensorBoard's own
        notebook support, one server per folder, reused); elsewhere it is served from this process.

    Raises:
        TfsoftmaxError: exit code 2, if `path` is not a directory.
    """
    from tfsoftmax.board import inline

    return inline.show(Path(path))
