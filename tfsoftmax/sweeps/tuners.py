"""One keras-tuner tuner per sweep algorithm, each keras-tuner's own with what a sweep adds (a stop between
trials, a clean folder for a trial cut before its first epoch, errors that end the search, one progress line
per trial, packed trials, and the chief's leases, shares and token), and `make_tuner`, which picks one from the config."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import keras_tuner

from tfsoftmax.config import Config
from tfsoftmax.display.progress import SweepProgress
from tfsoftmax.distributed import launcher, token
from tfsoftmax.distributed.lease import Leases
from tfsoftmax.errors import TfsoftmaxError
from tfsoftmax.rundir import checkpoint
from tfsoftmax.rundir import layout as rundir
from tfsoftmax.sweeps import estimate, kt_private, packing
from tfsoftmax.sweeps.hypermodel import HyperModel
from tfsoftmax.training.stopping import StopSignal

MAX_TRIALS_EVER = 1_000_000


class SearchStopped(TfsoftmaxError, keras_tuner.errors.FatalError):
    """An error that ends the search, not just its trial (Ctrl-C, a full disk, a damaged record). keras-tuner
    re-raises a FatalError from a trial as it is, so this reaches the caller as our own one-line error."""


def sweep_dir(config: Config) -> Path:
    """A sweep lives in its experiment's one fixed folder, so running the same command again resumes it."""
    return rundir.experiment_dir(config)


class SweepTunerMixin:
    """What every algorithm's tuner adds to keras-tuner's own: a stop between trials, a clean folder for a
    trial cut before its first epoch ended, errors that stop the search, and one progress line per trial."""

    def __init__(self, *, config: Config, stop: StopSignal, **kwargs: Any) -> None:
        self.sweep_config, self.stop = config, stop
        self.progress = SweepProgress(estimate.count_trials(config), config.sweep.objective)
        super().__init__(**kwargs)
        if kt_private.has_chief_oracle() and not kt_private.is_chief_oracle():
            kt_private.use_leased_client(self, config.sweep.chief_timeout_s, sweep_dir(config))

    def search(self, *args: Any, **kwargs: Any) -> None:
        if not kt_private.is_chief_oracle():
            if packing.packable(self.sweep_config) and self.hypermodel is not None:
                return packing.search(self, **kwargs)
            return super().search(*args, **kwargs)
        self.oracle.verbose = kwargs.get("verbose", 1)
        self.save()
        # keras-tuner's chief waits forever for a dead worker's trial and serves anyone who connects; this
        # one hands the trial on and serves only the holders of its token.
        leases = Leases.of(self.sweep_config.sweep, launcher.expected_workers())
        with token.published(sweep_dir(self.sweep_config)) as secret:
            kt_private.serve(
                self.oracle, leases, estimate.count_trials(self.sweep_config), secret, lambda: self.stop.requested
            )
        return None

    def on_epoch_end(self, trial: Any, model: Any, epoch: int, logs: dict | None = None) -> None:
        if isinstance(self.oracle, kt_private.LeasedClient):  # the chief's sign that this worker is alive
            self.oracle.report(trial.trial_id, epoch)
        super().on_epoch_end(trial, model, epoch, logs)

    def run_trial(self, trial: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().run_trial(trial, *args, **kwargs)
        except TfsoftmaxError as e:  # anything else is the trial's failure, and the search goes on
            raise self.search_stopped(e) from None

    @staticmethod
    def search_stopped(e: TfsoftmaxError) -> SearchStopped:
        """Our error from inside a trial (or a pack) as the one that ends the search."""
        resume = "; run the same sweep command again to resume" if e.resumable else ""
        return SearchStopped(f"{e}{resume}", e.exit_code)

    def on_trial_begin(self, trial: Any) -> None:
        if self.stop.requested:  # stopped between trials: the finished ones are saved, start no more
            raise KeyboardInterrupt
        # A trial re-run after an interruption continues from its checkpoints; one interrupted before its
        # first epoch ended starts from a clean folder, before keras-tuner opens its HParams writer there:
        # no stale events beside the new ones.
        folder = rundir.trial_dir(sweep_dir(self.sweep_config), trial.trial_id)
        if folder.exists() and not any(
            checkpoint.latest(e) or (e / rundir.MODEL).is_file() for e in rundir.execution_dirs(folder)
        ):
            shutil.rmtree(folder)
        super().on_trial_begin(trial)

    def on_trial_end(self, trial: Any) -> None:
        try:
            super().on_trial_end(trial)
        except kt_private.LeaseLost as e:  # another worker continues it; this one asks for the next
            print(f"sweep worker: {e}; asking for another trial", flush=True)
            return
        local = not kt_private.has_chief_oracle()
        # A worker's copy of the trial has no score: the chief's oracle computed it.
        self.progress.report(trial if local else self.oracle.get_trial(trial.trial_id), self.oracle, local)


class RandomTuner(SweepTunerMixin, keras_tuner.RandomSearch):
    """`sweep.algorithm = "random"`."""


class GridTuner(SweepTunerMixin, keras_tuner.Tuner):
    """`sweep.algorithm = "grid"`: keras-tuner's grid walk, a whole round of it at once for a pack, and
    resumable: the walking order keras-tuner does not save is rebuilt."""

    def __init__(
        self, *, objective: str, max_trials: int, seed: int, max_consecutive_failed_trials: int, **kwargs: Any
    ) -> None:
        oracle = kt_private.GridOracle(
            objective=objective,
            max_trials=max_trials,
            seed=seed,
            max_consecutive_failed_trials=max_consecutive_failed_trials,
        )
        super().__init__(oracle=oracle, **kwargs)
        kt_private.restore_grid_order(self.oracle)


class BayesianTuner(SweepTunerMixin, keras_tuner.BayesianOptimization):
    """`sweep.algorithm = "bayesian"`."""


class HyperbandTuner(SweepTunerMixin, keras_tuner.Hyperband):
    """`sweep.algorithm = "hyperband"`: its brackets set the trial count and each trial's epochs."""


TUNERS: dict[str, type[keras_tuner.Tuner]] = {
    "random": RandomTuner,
    "grid": GridTuner,
    "bayesian": BayesianTuner,
    "hyperband": HyperbandTuner,
}


def make_tuner(config: Config, hypermodel: HyperModel | None, stop: StopSignal) -> keras_tuner.Tuner:
    """The tuner named by `sweep.algorithm`, its project in `<sweep>/tuner`. Without a hypermodel it can only
    read the search's state, which is all that ranking the trials needs (no data, no model)."""
    sweep = config.sweep
    size = (
        {"max_epochs": config.trial_epochs, "factor": estimate.HYPERBAND_FACTOR}
        if sweep.algorithm == "hyperband"
        else {"max_trials": sweep.max_trials}
    )
    # keras-tuner's oracle reads a seed of 0 as "random" (`seed or random.randint(...)`): shift it by one.
    return TUNERS[sweep.algorithm](
        config=config,
        stop=stop,
        hypermodel=hypermodel,
        objective=sweep.objective,
        seed=sweep.seed + 1,
        executions_per_trial=sweep.executions_per_trial,
        directory=str(sweep_dir(config)),
        project_name=rundir.TUNER_PROJECT,
        overwrite=False,
        # A failed trial is recorded with its reason and the search goes on.
        max_consecutive_failed_trials=MAX_TRIALS_EVER,
        **size,
    )
