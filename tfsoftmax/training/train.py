"""One training run: `run(config)` and `resume(run_dir)` leave a finished run directory; `fit` and the
`finish` steps are what a sweep's trials share with them. Every file goes through `rundir`."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfsoftmax import data as data_lib
from tfsoftmax.config import Config
from tfsoftmax.display import notebook
from tfsoftmax.display.terminal import draws_in_place
from tfsoftmax.errors import INTERRUPTED, RUNTIME_ERROR, TfsoftmaxError
from tfsoftmax.files import ensure_space, locked, reported_writes
from tfsoftmax.rundir import checkpoint, environment
from tfsoftmax.rundir import layout as rundir
from tfsoftmax.training import compile_cache, packed_fit
from tfsoftmax.training.callbacks import EpochStats, Halted, RunRecord, WeightHistograms
from tfsoftmax.training.epoch import Record, recorded, resume_command, with_resume_hint
from tfsoftmax.training.result import RunResult
from tfsoftmax.training.stopping import StopSignal

if TYPE_CHECKING:
    from collections.abc import Callable

    import keras
    import numpy as np


def seed_everything(seed: int) -> None:
    """Python, NumPy and TensorFlow seeds plus deterministic ops: same config, same numbers. Also where the
    process's XLA compilation cache is set, before a model is built (Keras' `compile` reads XLA's flags)."""
    import keras
    import tensorflow as tf

    compile_cache.enable(tf.__version__)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def tensorboard_callback(log_dir: Path, config: Config, histograms: bool = True) -> keras.callbacks.Callback:
    """Keras' own TensorBoard writer: per-epoch scalars (learning rate included) and, unless `histograms` is
    off, weight histograms (keras-tuner moves this callback into each unpacked trial's folder)."""
    import keras

    return keras.callbacks.TensorBoard(
        log_dir=str(log_dir),
        histogram_freq=int(config.logging.histograms and histograms),
        write_graph=False,
        profile_batch=0,
    )


def board_callbacks(run_dir: Path, config: Config) -> list[keras.callbacks.Callback]:
    """A run's TensorBoard writers: Keras' scalars, and the weight histograms built in NumPy under Keras'
    tags (`WeightHistograms`), as a packed trial writes them: Keras' histogram ops cost more than a
    training epoch's writes (docs/speed.md)."""
    board = tensorboard_callback(run_dir, config, histograms=False)
    return [board, WeightHistograms(run_dir)] if config.logging.histograms else [board]


def write_run_files(run_dir: Path, config: Config, dataset: data_lib.Dataset, resume_with: str) -> None:
    """The exact config (re-runnable as is) and the environment, before training starts."""
    rundir.write_config(run_dir, config, resume_with)
    rundir.write_environment(run_dir, environment.capture(dataset, config.data.manual_folder))


def verbosity(epoch_lines: bool) -> int:
    """Keras' `verbose` for a run's epochs: a progress bar on a terminal, one line per epoch in a log file,
    nothing without `epoch_lines`."""
    return 0 if not epoch_lines else 1 if draws_in_place() else 2


def fit(
    model: keras.Model,
    splits: data_lib.Splits,
    config: Config,
    run_dir: Path,
    callbacks: list,
    epochs: int,
    resume: checkpoint.Resume | None = None,
    *,
    epoch_lines: bool = True,
    stop: StopSignal | None = None,
    **fit_kwargs: Any,
) -> Record:
    """`model.fit` with the record and timing callbacks ahead of `callbacks`, from `resume`'s epoch and
    weights if given (else from `initial_epoch`, as Hyperband passes it); returns the record. Keras
    prints each epoch unless `epoch_lines` is off (a sweep prints one line per trial instead). Training
    stops at the next batch end once `stop` is requested (never without one)."""
    first = fit_kwargs.pop("initial_epoch", 0)
    stats = EpochStats(len(splits.train[1]), run_dir)
    keeper = RunRecord(run_dir, epochs, first, resume, stats, stop, config.train.early_stopping)
    record = keeper.record
    if resume is not None:
        first = max(first, resume.epoch)
        if resume.weights is not None:
            checkpoint.restore(model, resume.weights)
    train_ds = data_lib.train_batches(*splits.train, config.data.batch_size, config.train.seed, first)
    val_ds = None if splits.val is None else data_lib.eval_batches(*splits.val)
    verbose = verbosity(epoch_lines)
    every = [stats, keeper, *callbacks]
    with recorded([record], ""):
        with reported_writes(run_dir):
            try:
                model.fit(
                    train_ds,
                    validation_data=val_ds,
                    epochs=first if record.stopped else epochs,  # out of patience before a resume
                    initial_epoch=first,
                    verbose=verbose,
                    shuffle=False,
                    callbacks=every,
                    **fit_kwargs,
                )
            except BaseException as e:
                for callback in every:  # what fit would have done: close TensorBoard's and HParams' writers
                    with contextlib.suppress(Exception):  # the error that stopped training is the one to show
                        callback.on_train_end()
                if not isinstance(e, Halted):
                    raise
        if stop is not None and stop.requested:
            raise KeyboardInterrupt
    return record


def train_model(
    model: keras.Model,
    splits: data_lib.Splits,
    config: Config,
    run_dir: Path,
    callbacks: list,
    epochs: int,
    resume: checkpoint.Resume | None = None,
    *,
    epoch_lines: bool = True,
    stop: StopSignal | None = None,
) -> tuple[Record, Callable[[np.ndarray, np.ndarray], dict[str, float]]]:
    """Train a run's model by the engine `train.engine` picks (`packed_fit.trains_packed`): the packed
    pass or `fit`, each keeping the same epoch contract. Returns the record and the same engine's scores of
    the trained model on a split (`finish` takes them for the test split)."""
    if packed_fit.trains_packed(config):
        packed = packed_fit.PackedFit(model, splits, config)
        record = packed.fit(run_dir, callbacks, epochs, resume, verbose=verbosity(epoch_lines), stop=stop)
        return record, packed.scores
    record = fit(model, splits, config, run_dir, callbacks, epochs, resume, epoch_lines=epoch_lines, stop=stop)
    return record, keras_scores(model)


def finish(
    model: keras.Model,
    record: Record,
    splits: data_lib.Splits,
    dataset: data_lib.Dataset,
    config: Config,
    run_dir: Path,
    started: float,
    scores: Callable[[np.ndarray, np.ndarray], dict[str, float]],
) -> RunResult:
    """Evaluate on test with `scores` (unless diverged), write the TensorBoard report, the model and the
    record."""
    from tfsoftmax.board import hparams, report

    test: dict[str, float] = {}
    status = record.outcome
    if status == "completed":
        scored = scores(*splits.test)
        test = {"loss": scored["loss"], "accuracy": scored["accuracy"]}
    try:
        ensure_space(run_dir)
        with reported_writes(run_dir):
            step = record.epochs_completed
            calibrated = report.write_report(run_dir, model, splits, dataset.class_names, config, test, step=step)
            hparams.write_run_session(run_dir, config, record.history, step)
            rundir.save_model(model, run_dir)
    except TfsoftmaxError as e:
        with contextlib.suppress(TfsoftmaxError):
            record.write(status="failed", error=str(e))
        raise
    wall = time.perf_counter() - started
    extra = {} if calibrated is None else {"calibration": calibrated.to_json()}
    record.write(status=status, test=test or None, wall_time_s=wall, **extra)
    checkpoint.remove(run_dir)
    return RunResult(
        run_dir=run_dir,
        status=status,
        history=record.history,
        test=test,
        wall_time_s=wall,
        model=model,
        divergence=record.divergence,
    )


def keras_scores(model: keras.Model) -> Callable[[np.ndarray, np.ndarray], dict[str, float]]:
    """`finish`'s test scores by Keras' `evaluate`, for a model `fit` trained."""

    def scores(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        found = model.evaluate(data_lib.eval_batches(x, y), verbose=0, return_dict=True)
        return {"loss": float(found["loss"]), "accuracy": float(found["accuracy"])}

    return scores


def finish_trial(model: keras.Model, record: Record, started: float) -> None:
    """A sweep trial's record: model and metrics, but no test evaluation (the test split never chooses);
    `best` is its best epoch by validation accuracy."""
    ensure_space(record.run_dir)
    with reported_writes(record.run_dir):
        rundir.save_model(model, record.run_dir)
    record.write(status=record.outcome, wall_time_s=time.perf_counter() - started, best=record.trial_best())
    checkpoint.remove(record.run_dir)


def run(config: Config) -> RunResult:
    """Train one experiment end to end and leave its run directory.

    Args:
        config: a validated Config (see `load_config`).

    Returns:
        RunResult with the run directory, status ("completed" or "diverged"), per-epoch history, test
        metrics and the model.

    Raises:
        TfsoftmaxError: missing data, an unwritable log root, or Ctrl-C (after the record is written).
    """
    started = time.perf_counter()
    dataset = data_lib.load_dataset(config.data)
    run_dir = rundir.create(config)
    with locked(run_dir / rundir.LOCK):
        write_run_files(run_dir, config, dataset, resume_command(run_dir))
        return _train(config, dataset, run_dir, None, started)


def resume(run_dir: Path) -> RunResult:
    """Continue an interrupted run in its own directory from its last finished epoch, with its own
    config; the result equals an uninterrupted run's (same batches, same weights, same optimizer state).

    Raises:
        TfsoftmaxError: not a run directory, a run that completed or diverged, or one that another
            process is training.
    """
    started = time.perf_counter()
    run_dir = Path(run_dir)
    checkpoint.resumable(run_dir)
    config = rundir.read_config(run_dir)
    with locked(run_dir / rundir.LOCK, blocking=False) as mine:
        if not mine:
            raise TfsoftmaxError(f"--resume {run_dir}: another process is training this run", RUNTIME_ERROR)
        record = checkpoint.resumable(run_dir)  # again, now that no one else can change it
        dataset = data_lib.load_dataset(config.data)
        return _train(config, dataset, run_dir, checkpoint.resume_point(run_dir, record), started)


def _train(
    config: Config, dataset: data_lib.Dataset, run_dir: Path, resume_from: checkpoint.Resume | None, started: float
) -> RunResult:
    """Build, fit (from `resume_from` if given) and finish a run in `run_dir`, Ctrl-C stopping it cleanly; a
    failure that leaves the run resumable says how to resume it."""
    from tfsoftmax.models.softmax import build_model

    splits = data_lib.split(dataset, config.data)
    seed_everything(config.train.seed)
    model = build_model(dataset.image_shape, dataset.num_classes, config.model, config.train)
    try:
        with StopSignal() as stop:
            record, scores = train_model(
                model,
                splits,
                config,
                run_dir,
                [*board_callbacks(run_dir, config), *notebook.run_callbacks()],
                config.train.epochs,
                resume_from,
                epoch_lines=not notebook.in_notebook(),
                stop=stop,
            )
            return finish(model, record, splits, dataset, config, run_dir, started, scores)
    except KeyboardInterrupt:  # a second Ctrl-C outside training: the last checkpoint is still there
        raise TfsoftmaxError(with_resume_hint("interrupted", run_dir), INTERRUPTED) from None
    except TfsoftmaxError as e:
        if e.resumable:
            raise TfsoftmaxError(with_resume_hint(str(e), run_dir), e.exit_code) from None
        raise
