"""tfsoftmax: D2L's softmax regression with Keras, from config files to TensorBoard.

The notebook API; importing it loads no TensorFlow:

    import tfsoftmax
    config = tfsoftmax.load_config("experiments/fashion_mnist.toml", ["train.lr=0.3"])
    result = tfsoftmax.run(config)
    result.test["accuracy"], result.run_dir, result.history, result.model
    tfsoftmax.resume("logs/fashion_mnist/20261123-221502")   # an interrupted run, from its last epoch
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tfsoftmax.config import Config, load_config, override
from tfsoftmax.errors import TfsoftmaxError

if TYPE_CHECKING:
    from tfsoftmax.train import RunResult

__version__ = "0.1.0"
__all__ = ["Config", "TfsoftmaxError", "load_config", "override", "resume", "run"]


def run(config: Config) -> RunResult:
    """Train one experiment; see `tfsoftmax.train.run`."""
    from tfsoftmax.train import run as run_experiment

    return run_experiment(config)


def resume(run_dir: str | Path) -> RunResult:
    """Continue an interrupted run from its last finished epoch; see `tfsoftmax.train.resume`."""
    from tfsoftmax.train import resume as resume_run

    return resume_run(Path(run_dir))
