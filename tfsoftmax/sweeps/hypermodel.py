"""The sweep's keras-tuner HyperModel: `build` declares every swept key and builds with `build_model`,
`fit` trains one execution of a trial as a complete run directory through `train.fit`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import keras
import keras_tuner

from tfsoftmax import data as data_lib
from tfsoftmax.config import Config, space
from tfsoftmax.config.loader import override
from tfsoftmax.errors import RUNTIME_ERROR, TfsoftmaxError
from tfsoftmax.models.softmax import build_model, graph_key, reset_optimizer, reset_to
from tfsoftmax.rundir import checkpoint
from tfsoftmax.rundir import layout as rundir
from tfsoftmax.sweeps import kt_private
from tfsoftmax.sweeps.results import config_for, execution_seed
from tfsoftmax.training import train
from tfsoftmax.training.epoch import STEPS, TRIAL_RESUME
from tfsoftmax.training.stopping import StopSignal


def history(epochs: dict[str, list[float]]) -> keras.callbacks.History:
    """A Keras History holding a trial's per-epoch metrics, which keras-tuner reads the score from."""
    result = keras.callbacks.History()
    result.history = {k: list(v) for k, v in epochs.items() if k != STEPS}
    return result


def execution_dir(callbacks: list) -> Path:
    """The run directory of the execution being fitted: keras-tuner points the TensorBoard callback (found,
    as keras-tuner finds it, by its class name) at `<sweep>/<trial_id>/execution<N>` for each execution."""
    board = next(c for c in callbacks if type(c).__name__ == "TensorBoard")
    return Path(board.log_dir)


class HyperModel(keras_tuner.HyperModel):
    """The sweep's config, data and splits (loaded once for every trial), and the models this process has
    traced, keyed by what changes their graph: tracing each trial's model anew costs time and memory that
    TensorFlow never gives back."""

    def __init__(self, config: Config, dataset: data_lib.Dataset, splits: data_lib.Splits, stop: StopSignal) -> None:
        super().__init__()
        self.config, self.dataset, self.splits, self.stop = config, dataset, splits, stop
        self.traced: dict[tuple, keras.Model] = {}
        self.initial: dict[tuple, list] = {}

    def starting_model(self, trial_config: Config) -> keras.Model:
        """A fresh model's starting state, in a model this process already traced where there is one."""
        train.seed_everything(trial_config.train.seed)
        fresh = build_model(self.dataset.image_shape, self.dataset.num_classes, trial_config.model, trial_config.train)
        model = self.traced.setdefault(graph_key(trial_config.model, trial_config.train), fresh)
        return model if model is fresh else reset_to(model, fresh)

    def trial_config(self, hp: keras_tuner.HyperParameters, epochs: int) -> Config:
        """The trial's config with its epoch count: the swept one, else the sweep's."""
        config = config_for(self.config, hp.values)
        return override(config, {"train.epochs": epochs}) if "train.epochs" not in hp.values else config

    def open_run(self, run_dir: Path, trial_config: Config) -> tuple[dict | None, checkpoint.Resume | None]:
        """Make a trial's run directory ready, its exact config and environment written first; return its
        earlier record and where it resumes (None for a fresh start), as packed and unpacked trials share."""
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TfsoftmaxError(f"cannot write in {run_dir}: {e.strerror}", RUNTIME_ERROR) from None
        train.write_run_files(run_dir, trial_config, self.dataset, TRIAL_RESUME)
        prior = rundir.read_record(run_dir)
        return prior, checkpoint.resume_point(run_dir, prior) if checkpoint.latest(run_dir) else None

    def initial_weights(self, trial_config: Config) -> list:
        """A fresh model's weights for the trial, built once per seed and initializer (packed trials)."""
        key = (trial_config.train.seed, trial_config.model.init_stddev)
        if key not in self.initial:
            self.initial[key] = self.starting_model(trial_config).get_weights()
        return self.initial[key]

    def holding(self, trial_config: Config, weights: list) -> keras.Model:
        """A model of the trial's graph and learning rate holding `weights`, with no optimizer state: what a
        packed trial saves as its model.keras."""
        key = graph_key(trial_config.model, trial_config.train)
        if key not in self.traced:
            self.starting_model(trial_config)  # builds one and keeps it
        model = self.traced[key]
        model.set_weights(weights)
        reset_optimizer(model, trial_config.train.lr)
        return model

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        # Every swept key is declared here, so even the first trial's HParams record holds them all.
        values = {entry.key: space.declare(hp, entry) for entry in self.config.sweep.space}
        return self.starting_model(config_for(self.config, values))

    def fit(
        self,
        hp: keras_tuner.HyperParameters,
        model: keras.Model,
        *args: Any,
        callbacks: list,
        epochs: int,
        **kwargs: Any,
    ) -> keras.callbacks.History:
        # keras-tuner's verbosity is `display`: epoch lines with its tables, else one line per trial.
        epoch_lines = bool(kwargs.pop("verbose", 0))
        # Trained by `model.fit` here, and its config says so: run again, it gives the same numbers.
        trial_config = override(self.trial_config(hp, epochs), {"train.engine": "fit"})
        epochs = trial_config.train.epochs
        run_dir = execution_dir(callbacks)
        execution = rundir.execution_index(run_dir)
        if execution:  # each execution is its own seed, so averaging executions averages seeds
            trial_config = override(trial_config, {"train.seed": execution_seed(trial_config.train.seed, execution)})
            if "tuner/trial_id" not in hp.values:  # Hyperband loaded a parent's weights: keep them
                model = self.starting_model(trial_config)
        started = time.perf_counter()
        prior, resume = self.open_run(run_dir, trial_config)
        if prior is not None and prior["status"] == "completed":
            return history(prior["history"])  # finished before the sweep was interrupted: keep it
        if resume is not None:
            kt_private.keep_best_epoch(callbacks, resume.history)
        record = train.fit(
            model,
            self.splits,
            trial_config,
            run_dir,
            callbacks,
            epochs,
            resume,
            epoch_lines=epoch_lines,
            stop=self.stop,
            **kwargs,
        )
        train.finish_trial(model, record, started)
        if record.failure is not None:
            raise keras_tuner.errors.FailedTrialError(record.failure)
        # The whole trial's epochs, also those before a resume, so keras-tuner scores all of them.
        return history(record.history)
