"""Sweeps: one keras-tuner tuner per algorithm over the sweep's HyperModel (`hypermodel`), HParams declared
up front, resumed trials, the results handed to `results` to rank and write, and `sweep`, the whole command:
the search in this process or in worker processes, then the `--final` retrain.

A sweep's folder is `<root>/<experiment>/`, laid out as `rundir` describes: keras-tuner's project in
`tuner/`, each `<trial_id>/execution<N>/` a complete run directory and TensorBoard run, and the results
files at the top.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras_tuner

from tfsoftmax import (
    checkpoint,
    distribute,
    estimate,
    fingerprint,
    hparams,
    kt_private,
    packing,
    results,
    rundir,
    train,
)
from tfsoftmax import data as data_lib
from tfsoftmax.config import Config, to_toml
from tfsoftmax.errors import CONFIG_ERROR, RUNTIME_ERROR, TfsoftmaxError
from tfsoftmax.files import locked, write_text
from tfsoftmax.hypermodel import HyperModel
from tfsoftmax.lease import Leases
from tfsoftmax.loader import load_config, override, require_space
from tfsoftmax.progress import SweepProgress
from tfsoftmax.results import TrialRow
from tfsoftmax.stopping import StopSignal

if TYPE_CHECKING:
    from tfsoftmax.train import RunResult

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
            kt_private.use_leased_client(self, config.sweep.chief_timeout_s)

    def search(self, *args: Any, **kwargs: Any) -> None:
        if not kt_private.is_chief_oracle():
            if packing.packable(self.sweep_config) and self.hypermodel is not None:
                return packing.search(self, **kwargs)
            return super().search(*args, **kwargs)
        self.oracle.verbose = kwargs.get("verbose", 1)
        self.save()
        # keras-tuner's chief waits forever for a dead worker's trial; this one hands it on.
        kt_private.serve(self.oracle, Leases.of(self.sweep_config.sweep), lambda: self.stop.requested)
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


@dataclass
class SweepResult:
    """What a finished sweep returns: its trials ranked best first, the best trial's config file, and the
    worker processes that ran it and the `--final` retrain where there were any."""

    sweep_dir: Path
    rows: list[TrialRow]
    best_config_path: Path | None
    wall_time_s: float
    workers: tuple[str, ...] = ()
    final: RunResult | None = None


@contextlib.contextmanager
def exclusive(config: Config, side: str = "sweep") -> Iterator[None]:
    """Keep a second sweep of the same experiment out while this one runs (two would share keras-tuner's
    oracle and trial folders), or, for `side` "chief", a second chief. The lock sits beside the sweep
    folder, which `--overwrite` deletes."""
    folder = sweep_dir(config)
    with locked(folder.parent / f".{folder.name}.{side}.lock", blocking=False) as mine:
        if not mine:
            raise TfsoftmaxError(
                f"{side}: {folder} is in use by another {side} process; wait for it to end or "
                "set another logging.experiment",
                RUNTIME_ERROR,
            )
        yield


def clear(config: Config) -> None:
    """Delete the whole earlier sweep: tuner state and TensorBoard runs, so no stale logs mix in."""
    if sweep_dir(config).exists():
        shutil.rmtree(sweep_dir(config))


def prepare(config: Config, overwrite: bool) -> tuple[data_lib.Dataset, data_lib.Splits]:
    """Check the space can be swept, clear an old sweep if asked, and load the data once."""
    require_space(config, "sweep")
    if overwrite:
        clear(config)
    dataset = data_lib.load_dataset(config.data)
    return dataset, data_lib.split(dataset, config.data)


def search(config: Config, overwrite: bool = False, display: bool = False) -> SweepResult | None:
    """Run (or resume) the search in this process; as a distributed worker or chief, only search. Each
    finished trial prints one progress line; `display` adds keras-tuner's own per-trial tables.

    Returns:
        SweepResult in a single process; None in a distributed chief or worker, where the launcher
        (or the user) reads the results afterwards with `collect`.
    """
    # The launcher (or the user) keeps other sweeps out; a chief keeps a second chief out.
    if kt_private.is_chief_oracle():
        with exclusive(config, "chief"), fingerprint.published(config, sweep_dir(config)):
            return _search(config, False, display)
    if kt_private.has_chief_oracle():
        fingerprint.check(config, sweep_dir(config), config.sweep.chief_timeout_s)
        return _search(config, False, display)
    with exclusive(config):
        return _search(config, overwrite, display)


def _search(config: Config, overwrite: bool, display: bool) -> SweepResult | None:
    started = time.perf_counter()
    dataset, splits = prepare(config, overwrite)
    folder = sweep_dir(config)
    folder.mkdir(parents=True, exist_ok=True)
    with StopSignal() as stop:
        tuner = make_tuner(config, HyperModel(config, dataset, splits, stop), stop)
        if not kt_private.has_chief_oracle() or kt_private.is_chief_oracle():
            hparams.write_sweep_config(config, folder)
        tuner.search(
            epochs=config.trial_epochs, callbacks=[train.tensorboard_callback(folder, config)], verbose=int(display)
        )
    if kt_private.has_chief_oracle():
        if kt_private.is_chief_oracle():
            # Without this save the oracle still lists the last trial as ongoing, and a restart re-runs it.
            tuner.oracle.save()
        return None
    tuner.oracle.save()
    return collect(config, started)


def collect(config: Config, started: float) -> SweepResult:
    """Read the sweep's trials from keras-tuner's state on disk, rank them and write the results files."""
    folder = sweep_dir(config)
    if not rundir.is_sweep(folder):
        raise TfsoftmaxError(f"sweep: no keras-tuner state in {folder / rundir.TUNER_PROJECT}", RUNTIME_ERROR)
    tuner = make_tuner(config, None, StopSignal())  # it reads, never trains: a stop nobody can request
    # The tuner reloads only its own id's state (absent after a distributed sweep): read the oracle's.
    tuner.oracle.reload()
    rows = results.rank(tuner.oracle, folder)
    best = results.write_results(config, rows, folder)
    return SweepResult(sweep_dir=folder, rows=rows, best_config_path=best, wall_time_s=time.perf_counter() - started)


def launch(config: Config, workers: int, display: bool) -> tuple[str, ...]:
    """A chief and `workers` worker processes searching `config`, which they read from a file beside the
    sweep's lock (removed once they are done); returns the workers' tuner ids."""
    folder = sweep_dir(config)
    path = folder.parent / f".{folder.name}.sweep.toml"
    write_text(path, to_toml(config, f"The config of the sweep {folder}, read by its chief and workers."))
    try:
        return tuple(distribute.launch([str(path), *(["--verbose"] if display else [])], workers))
    finally:
        path.unlink(missing_ok=True)


def sweep(
    config: Config, *, overwrite: bool = False, final: bool = False, workers: int = 0, display: bool = False
) -> SweepResult:
    """Run or resume a whole sweep; see `tfsoftmax.sweep`."""
    require_space(config, "sweep")
    started = time.perf_counter()
    if workers:
        with exclusive(config):
            if overwrite:
                clear(config)
            ran = launch(config, workers, display)
            result = dataclasses.replace(collect(config, started), workers=ran)
    elif kt_private.has_chief_oracle():
        raise TfsoftmaxError(
            f"sweep: ${distribute.ORACLE_IP} makes this process one side of a distributed sweep; "
            "unset it, or run that side with `tfsoftmax sweep --role`",
            CONFIG_ERROR,
        )
    else:
        result = search(config, overwrite=overwrite, display=display)
    if result.best_config_path is None:
        raise TfsoftmaxError(
            f"sweep: no trial completed, so there is no best configuration; each trial's "
            f"status and reason: {result.sweep_dir / rundir.RESULTS_CSV}",
            RUNTIME_ERROR,
        )
    if final:
        run = train.run(final_config(result.best_config_path)).raise_for_status("final run")
        result = dataclasses.replace(result, final=run)
    return result


def final_config(best_path: Path) -> Config:
    """The best config retrained on train+validation (D2L's split): the test split only reports."""
    return override(
        load_config(best_path),
        {"data.validation_fraction": 0.0, "logging.experiment": f"{best_path.parent.name}_final"},
    )
