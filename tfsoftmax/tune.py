"""Sweeps: a keras-tuner HyperModel over the one model builder, the tuner picked by name, HParams declared
up front, resumed trials, and the results handed to `results` to rank and write.

Layout of `<root>/<experiment>/`: `tuner/` is keras-tuner's project (oracle and trial states), each
`<trial_id>/execution<N>/` is a complete run directory and a TensorBoard run, and `results.csv`,
`results.json` and `best.toml` sit at the top.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from tfsoftmax import checkpoint, hparams, results
from tfsoftmax import data as data_lib
from tfsoftmax import train
from tfsoftmax.config import Config, SpaceEntry, load_config, override, require_space
from tfsoftmax.errors import RUNTIME_ERROR, TfsoftmaxError
from tfsoftmax.files import locked
from tfsoftmax.results import TrialRow, config_for, execution_index, execution_seed, trial_epochs

if TYPE_CHECKING:
    import keras_tuner

MAX_TRIALS_EVER = 1_000_000
TUNERS = {"random": "RandomSearch", "grid": "GridSearch", "bayesian": "BayesianOptimization",
          "hyperband": "Hyperband"}


def sweep_dir(config: Config) -> Path:
    """A sweep lives in one fixed folder, so running the same command again resumes it."""
    return Path(config.logging.root) / config.logging.experiment


@contextlib.contextmanager
def exclusive(config: Config) -> Iterator[None]:
    """Keep a second sweep of the same experiment out while this one runs: two would share keras-tuner's
    oracle and trial folders. The lock sits beside the sweep folder, which `--overwrite` deletes."""
    folder = sweep_dir(config)
    with locked(folder.parent / f".{folder.name}.sweep.lock", blocking=False) as mine:
        if not mine:
            raise TfsoftmaxError(f"sweep: {folder} is in use by another sweep process; wait for it to end or "
                                 "set another logging.experiment", RUNTIME_ERROR)
        yield


def declare(hp: keras_tuner.HyperParameters, entry: SpaceEntry) -> Any:
    """Register one space entry with keras-tuner and return its current value."""
    if entry.values:
        return hp.Choice(entry.key, list(entry.values))
    if isinstance(entry.min, int):
        return hp.Int(entry.key, int(entry.min), int(entry.max), step=int(entry.step) if entry.step else None,
                      sampling=entry.sampling)
    return hp.Float(entry.key, entry.min, entry.max, step=entry.step, sampling=entry.sampling)


def make_hypermodel(config: Config, dataset: data_lib.Dataset, splits: data_lib.Splits) -> Any:
    """A HyperModel that declares every swept key in `build` (so even the first trial's HParams record
    holds them all), builds with `build_model`, and tunes the batch size in `fit` by rebatching the
    in-memory arrays."""
    import keras_tuner

    from tfsoftmax.model import build_model, graph_key, reset_to

    compiled: dict[tuple, Any] = {}

    def starting_model(trial_config: Config) -> Any:
        """A fresh model's starting state in a model this process already traced, where there is one:
        tracing each trial's model anew costs time and memory that TensorFlow never gives back."""
        train.seed_everything(trial_config.train.seed)
        fresh = build_model(dataset.image_shape, dataset.num_classes, trial_config.model, trial_config.train)
        model = compiled.setdefault(graph_key(trial_config.model, trial_config.train), fresh)
        return model if model is fresh else reset_to(model, fresh)

    class HyperModel(keras_tuner.HyperModel):
        def build(self, hp: keras_tuner.HyperParameters) -> Any:
            values = {entry.key: declare(hp, entry) for entry in config.sweep.space}
            return starting_model(config_for(config, values))

        def fit(self, hp: keras_tuner.HyperParameters, model: Any, *args: Any, callbacks: list,
                epochs: int, **kwargs: Any) -> Any:
            # keras-tuner's verbosity is `display`: epoch lines with its tables, else one line per trial.
            epoch_lines = bool(kwargs.pop("verbose", 0))
            trial_config = config_for(config, hp.values)
            if "train.epochs" in hp.values:
                epochs = trial_config.train.epochs
            board = next(c for c in callbacks if type(c).__name__ == "TensorBoard")
            run_dir = Path(board.log_dir)
            execution = execution_index(run_dir)
            if execution:  # each execution is its own seed, so averaging executions averages seeds
                trial_config = override(trial_config, {"train.seed": execution_seed(trial_config.train.seed,
                                                                                    execution)})
                if "tuner/trial_id" not in hp.values:  # Hyperband loaded a parent's weights: keep them
                    model = starting_model(trial_config)
            started = time.perf_counter()
            try:  # Ctrl-C, a full disk, a damaged record: stop the search, not just this trial
                run_dir.mkdir(parents=True, exist_ok=True)
                train.write_run_files(run_dir, dataclasses.replace(
                    trial_config, train=dataclasses.replace(trial_config.train, epochs=epochs)), dataset,
                    "the same `tfsoftmax sweep` command (the trial continues from its last finished epoch)")
                prior = checkpoint.read_record(run_dir)
                if prior is not None and prior.get("status") == "completed":
                    return history(prior["history"])  # finished before the sweep was interrupted: keep it
                resume = checkpoint.resume_point(run_dir, prior) if checkpoint.latest(run_dir) else None
                if resume is not None:
                    keep_best_epoch(callbacks, resume.history)
                record = train.fit(model, splits, trial_config, run_dir, callbacks, epochs, resume,
                                   epoch_lines=epoch_lines, **kwargs)
                train.finish_trial(model, record, run_dir, started)
            except OSError as e:  # the trial folder itself could not be made
                error = TfsoftmaxError(f"cannot write in {run_dir}: {e.strerror}", RUNTIME_ERROR)
                raise keras_tuner.errors.FatalError(str(error)) from error
            except TfsoftmaxError as e:
                if e.resumable:
                    e = TfsoftmaxError(f"{e}; run the same sweep command again to resume", e.exit_code)
                raise keras_tuner.errors.FatalError(str(e)) from e
            if record.divergence is not None:
                raise keras_tuner.errors.FailedTrialError(f"diverged: {record.divergence['reason']}")
            # The whole trial's epochs, also those before a resume, so keras-tuner scores all of them.
            return history(record.history)

    return HyperModel()


def history(epochs: dict[str, list[float]]) -> Any:
    """A Keras History holding a trial's per-epoch metrics, which keras-tuner reads the score from."""
    import keras

    result = keras.callbacks.History()
    result.history = {k: list(v) for k, v in epochs.items() if k != "steps"}
    return result


def keep_best_epoch(callbacks: list, earlier: dict[str, list[float]]) -> None:
    """keras-tuner's SaveBestEpoch starts each fit from scratch: tell it the best score of the epochs
    before a resume, so a worse later epoch does not overwrite the best checkpoint."""
    for callback in callbacks:
        values = earlier.get(getattr(getattr(callback, "objective", None), "name", ""), [])
        if type(callback).__name__ == "SaveBestEpoch" and values:
            best = max(values) if callback.objective.direction == "max" else min(values)
            if callback.objective.better_than(best, callback.best_value):
                callback.best_value = best


def make_tuner(config: Config, hypermodel: Any) -> Any:
    """The keras-tuner tuner named by `sweep.algorithm`, its project in `<sweep>/tuner`."""
    import keras_tuner

    sweep = config.sweep
    # keras-tuner's oracle reads a seed of 0 as "random" (`seed or random.randint(...)`): shift it by one.
    common = dict(hypermodel=hypermodel, objective=sweep.objective, seed=sweep.seed + 1,
                  executions_per_trial=sweep.executions_per_trial, directory=str(sweep_dir(config)),
                  project_name="tuner", overwrite=False,
                  # A failed trial is recorded with its reason and the search goes on, however many fail.
                  max_consecutive_failed_trials=MAX_TRIALS_EVER)
    base = getattr(keras_tuner, TUNERS[sweep.algorithm])

    from keras_tuner.src.distribute import utils as dist_utils

    from tfsoftmax.progress import SweepProgress

    progress = SweepProgress(count_trials(config), sweep.objective)

    class Tuner(base):  # type: ignore[misc, valid-type]
        def on_trial_end(self, trial: Any) -> None:
            super().on_trial_end(trial)
            local = not dist_utils.has_chief_oracle()
            # A worker's copy of the trial has no score: the chief's oracle computed it.
            progress.report(trial if local else self.oracle.get_trial(trial.trial_id), self.oracle, local)

        def on_trial_begin(self, trial: Any) -> None:
            if train.STOP.is_set():  # stopped between trials: the finished ones are saved, start no more
                raise KeyboardInterrupt
            # A trial re-run after an interruption continues from its checkpoints; one interrupted before
            # its first epoch ended starts from a clean folder, before keras-tuner opens its HParams
            # writer there: no stale events beside the new ones.
            folder = sweep_dir(config) / trial.trial_id
            executions = list(folder.glob("execution*"))
            if folder.exists() and not any(checkpoint.latest(e) or (e / "model.keras").is_file() for e in executions):
                shutil.rmtree(folder)
            super().on_trial_begin(trial)

    if sweep.algorithm == "hyperband":
        return Tuner(max_epochs=trial_epochs(config), factor=3, **common)
    tuner = Tuner(max_trials=sweep.max_trials, **common)
    if isinstance(tuner.oracle, keras_tuner.oracles.GridSearchOracle):
        restore_grid_order(tuner.oracle)
    return tuner


def restore_grid_order(oracle: Any) -> None:
    """keras-tuner's grid oracle does not save the order in which it walks the grid, so a resumed grid
    search fails; rebuild that order from the trials on disk, sorted by the oracle's own comparison."""
    import functools

    if not oracle.trials or oracle._populate_next:
        return
    order = sorted(oracle.trials, key=functools.cmp_to_key(lambda a, b: oracle._compare(
        oracle.trials[a].hyperparameters.values, oracle.trials[b].hyperparameters.values)))
    for trial_id in order:
        oracle._ordered_ids.insert(trial_id)
    oracle._populate_next.extend(order)


@dataclass
class SweepResult:
    """What a finished sweep returns."""

    sweep_dir: Path
    rows: list[TrialRow]
    best_config_path: Path | None
    wall_time_s: float


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
    """Run (or resume) the sweep in this process; as a distributed worker or chief, only search. Each
    finished trial prints one progress line; `display` adds keras-tuner's own per-trial tables.

    Returns:
        SweepResult in a single process; None in a distributed chief or worker, where the launcher
        (or the user) reads the results afterwards with `collect`.
    """
    from keras_tuner.src.distribute import utils as dist_utils

    if dist_utils.has_chief_oracle():  # the launcher (or the user) keeps other sweeps out
        return _search(config, overwrite, display)
    with exclusive(config):
        return _search(config, overwrite, display)


def _search(config: Config, overwrite: bool, display: bool) -> SweepResult | None:
    from keras_tuner.src.distribute import utils as dist_utils

    started = time.perf_counter()
    train.STOP.clear()
    dataset, splits = prepare(config, overwrite and not dist_utils.has_chief_oracle())
    sweep_dir(config).mkdir(parents=True, exist_ok=True)
    tuner = make_tuner(config, make_hypermodel(config, dataset, splits))
    if not dist_utils.has_chief_oracle() or dist_utils.is_chief_oracle():
        hparams.write_sweep_config(config, sweep_dir(config))
    board = train.tensorboard_callback(sweep_dir(config), config)
    try:
        tuner.search(epochs=trial_epochs(config), callbacks=[board], verbose=int(display))
    except Exception as e:  # keras-tuner wraps a fatal error; ours must still reach the user as one line
        cause = e.__cause__ or e.__context__
        if isinstance(cause, TfsoftmaxError):
            raise cause from None
        raise
    if dist_utils.has_chief_oracle():
        if dist_utils.is_chief_oracle():
            # Without this save the oracle still lists the last trial as ongoing, and a restart re-runs it.
            tuner.oracle.save()
        return None
    tuner.oracle.save()
    return collect(config, started, tuner.hypermodel)


def collect(config: Config, started: float, hypermodel: Any = None) -> SweepResult:
    """Read the sweep's trials from disk, rank them and write the results files; `hypermodel` is the
    searching one where there is one (a second would split the data again, ~200 MB for Fashion-MNIST)."""
    tuner_dir = sweep_dir(config) / "tuner"
    if not (tuner_dir / "oracle.json").is_file():
        raise TfsoftmaxError(f"sweep: no keras-tuner state in {tuner_dir}", RUNTIME_ERROR)
    if hypermodel is None:
        dataset = data_lib.load_dataset(config.data)
        hypermodel = make_hypermodel(config, dataset, data_lib.split(dataset, config.data))
    tuner = make_tuner(config, hypermodel)
    # The tuner reloads only its own id's state (absent after a distributed sweep): read the oracle's.
    tuner.oracle.reload()
    rows = results.rank(tuner, sweep_dir(config))
    best = results.write_results(config, rows, sweep_dir(config))
    return SweepResult(sweep_dir=sweep_dir(config), rows=rows, best_config_path=best,
                       wall_time_s=time.perf_counter() - started)


def count_trials(config: Config) -> int:
    """How many trials the sweep will run: max_trials, or fewer for a small grid; Hyperband's own count."""
    sweep = config.sweep
    if sweep.algorithm == "hyperband":  # keras-tuner's HyperbandOracle: every round's trials are new trials
        max_epochs, factor = trial_epochs(config), 3
        brackets = 1 + int(math.log(max_epochs, factor) + 1e-9)
        end_size = math.ceil(1 + math.log(max_epochs, factor))
        return sum(math.ceil(end_size / (b + 1) * factor ** (b - r)) for b in range(brackets) for r in range(b + 1))
    if sweep.algorithm == "grid" and all(e.values or e.step for e in sweep.space):
        size = 1
        for e in sweep.space:
            size *= len(e.values) if e.values else int((e.max - e.min) // e.step) + 1
        return min(size, sweep.max_trials)
    return sweep.max_trials


def final_config(best_path: Path) -> Config:
    """The best config retrained on train+validation (D2L's split): the test split only reports."""
    return override(load_config(best_path), {"data.validation_fraction": 0.0,
                                             "logging.experiment": f"{best_path.parent.name}_final"})
