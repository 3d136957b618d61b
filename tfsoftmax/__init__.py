"""tfsoftmax: D2L's softmax regression with Keras, from config files to TensorBoard.

The notebook API; importing it loads no TensorFlow:

    import tfsoftmax
    config = tfsoftmax.load_config("experiments/fashion_mnist.toml", ["train.lr=0.3"])
    result = tfsoftmax.run(config)
    result.test["accuracy"], result.run_dir, result.history, result.model
    tfsoftmax.resume("logs/fashion_mnist/20261123-221502")   # an interrupted run, from its last epoch
    swept = tfsoftmax.sweep(tfsoftmax.load_config("experiments/fashion_mnist_sweep.toml"), final=True)
    swept.rows[0], swept.best_config_path, swept.final.test["accuracy"]
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tfsoftmax.config import Config
from tfsoftmax.config.loader import load_config, override
from tfsoftmax.errors import TfsoftmaxError

if TYPE_CHECKING:
    from tfsoftmax.sweeps.results import SweepResult
    from tfsoftmax.training.result import RunResult

__version__ = "0.1.0"
__all__ = ["Config", "TfsoftmaxError", "load_config", "override", "resume", "run", "sweep"]


def run(config: Config) -> RunResult:
    """Train one experiment; see `tfsoftmax.training.train.run`."""
    from tfsoftmax.training.train import run as run_experiment

    return run_experiment(config)


def resume(run_dir: str | Path) -> RunResult:
    """Continue an interrupted run from its last finished epoch; see `tfsoftmax.training.train.resume`."""
    from tfsoftmax.training.train import resume as resume_run

    return resume_run(Path(run_dir))


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
    from tfsoftmax.sweeps.tune import sweep as run_sweep

    return run_sweep(config, overwrite=overwrite, final=final, workers=workers, display=display)
