"""One training run: run directory, callbacks, `model.fit`, final evaluation and the record on disk."""

from __future__ import annotations

import contextlib
import math
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfsoftmax import checkpoint
from tfsoftmax import data as data_lib
from tfsoftmax.config import Config, load_config, to_toml
from tfsoftmax.errors import INTERRUPTED, RUNTIME_ERROR, TfsoftmaxError
from tfsoftmax.files import ensure_space, locked, reported_writes, write_json, write_text

if TYPE_CHECKING:
    import keras



STOP = threading.Event()
"""Set by the first Ctrl-C or SIGTERM (see `request_stop`): training stops cleanly at the next batch."""


def request_stop(signum: int, frame: object) -> None:
    """Signal handler: stop at the next batch end with the record written; a second signal stops now."""
    if STOP.is_set():
        raise KeyboardInterrupt
    STOP.set()
    print("\nstopping after this batch (press Ctrl-C again to stop at once)", file=sys.stderr, flush=True)


@dataclass
class RunResult:
    """What a finished run returns to the CLI and to notebooks."""

    run_dir: Path
    status: str
    history: dict[str, list[float]]
    test: dict[str, float]
    wall_time_s: float
    model: keras.Model
    divergence: dict[str, Any] | None


def seed_everything(seed: int) -> None:
    """Python, NumPy and TensorFlow seeds plus deterministic ops: same config, same numbers."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def make_run_dir(config: Config) -> Path:
    """A new `<root>/<experiment>/<run>` folder; a taken name gets a suffix, never reuses a folder."""
    parent = Path(config.logging.root) / config.logging.experiment
    base = config.logging.run_name or time.strftime("%Y%m%d-%H%M%S")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for n in range(1, 10_000):
            run_dir = parent / (base if n == 1 else f"{base}-{n}")
            try:
                run_dir.mkdir()  # atomic: two processes can never both get the same folder
                return run_dir
            except FileExistsError:
                continue
    except OSError as e:
        raise TfsoftmaxError(f"logging.root: cannot create a run folder in {parent}: {e.strerror}",
                             RUNTIME_ERROR) from None
    raise TfsoftmaxError(f"logging.root: {parent} holds too many runs named {base}", RUNTIME_ERROR)


def environment(dataset: data_lib.Dataset, manual_dir: str) -> dict[str, Any]:
    """Versions and data identity, so a result can be traced back."""
    import platform

    import keras
    import tensorflow as tf

    from tfsoftmax import __version__

    return {"tuner_id": os.environ.get("KERASTUNER_TUNER_ID", ""), "python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "tfsoftmax": __version__, "platform": platform.platform(),
            "dataset": {"name": dataset.name, "version": dataset.version, "sha256": dataset.checksum,
                        "manual_dir": manual_dir,
                        "train_examples": int(len(dataset.train_y)), "test_examples": int(len(dataset.test_y))}}


def epoch_stats(n_train: int, board_dir: Path | None = None) -> Any:
    """A callback that times each whole epoch as the user waits for it, and adds the learning rate and
    the training pass's throughput to each epoch's logs (where TensorBoard, History and the record pick
    them up). With `board_dir`, each epoch's time goes to TensorBoard as `train/epoch_time_s`."""
    import keras
    import tensorflow as tf

    class EpochStats(keras.callbacks.Callback):
        """Keras starts an epoch only after every callback has ended the one before, so the time from one
        epoch's start to the next is the whole epoch: training, validation, record, checkpoint and every
        callback's writes. An epoch's time is provisional until the next one starts (or training ends)."""

        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []
            self.open = False  # the last entry of `times` still grows
            self.writer: Any = None

        def on_train_begin(self, logs: dict | None = None) -> None:
            if board_dir is not None:
                self.writer = tf.summary.create_file_writer(str(board_dir / "train"))

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            now = time.perf_counter()
            self._close(now)
            self.epoch, self.start, self.train_end = epoch, now, None

        def on_test_begin(self, logs: dict | None = None) -> None:
            # Keras validates before on_epoch_end: throughput counts the training steps only.
            self.train_end = self.train_end or time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            end = time.perf_counter()
            if logs is not None:
                logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
                logs["examples_per_second"] = n_train / ((self.train_end or end) - self.start)
            self.times.append(end - self.start)
            self.open = True

        def on_train_end(self, logs: dict | None = None) -> None:
            self._close(time.perf_counter())
            if self.writer is not None:
                self.writer.close()
                self.writer = None

        def _close(self, now: float) -> None:
            if not self.open:
                return
            self.times[-1] = now - self.start
            self.open = False
            if self.writer is not None:
                with self.writer.as_default():
                    tf.summary.scalar("epoch_time_s", self.times[-1], step=self.epoch)

    return EpochStats()


class Halted(Exception):
    """Raised at a batch end to leave `model.fit` at once: a diverged or stopped epoch gets no validation
    pass and no epoch-end logs, so TensorBoard never holds a half epoch that a resume would log again."""


def _make_callbacks(n_train: int, run_dir: Path, epochs: int, first_epoch: int,
                    resume: checkpoint.Resume | None) -> tuple[Any, Any]:
    import keras

    stats = epoch_stats(n_train, run_dir)

    class RunRecord(keras.callbacks.Callback):
        """Stops at the first non-finite loss; after every finished epoch writes metrics.json, then the
        checkpoint a resumed run continues from."""

        def __init__(self) -> None:
            super().__init__()
            self.history: dict[str, list[float]] = dict(resume.history) if resume else {}
            self.earlier_times = list(self.history.get("time_s", []))
            self.resumed = [*resume.resumed_at, resume.epoch] if resume else []
            self.first_epoch = resume.first_epoch if resume else first_epoch  # where `history` starts
            self.status = "running"
            self.divergence: dict[str, Any] | None = None
            self.epoch = 0
            self.first_step = 0

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.epoch = epoch
            self.first_step = self._iterations()

        def _iterations(self) -> int:
            # The optimizer counts real steps; batch indices jump by steps_per_execution.
            return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if STOP.is_set():
                raise KeyboardInterrupt
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(float(loss)):
                self.divergence = {"epoch": self.epoch + 1, "batch": batch + 1,
                                   "reason": f"training loss became {float(loss)} at epoch {self.epoch + 1}, "
                                             f"batch {batch + 1}"}
                raise Halted

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            ensure_space(run_dir)  # before this epoch's writes, ours and the callbacks' after us
            for key, value in (logs or {}).items():
                self.history.setdefault(key, []).append(float(value))
            self.history.setdefault("steps", []).append(self._iterations() - self.first_step)
            self.write(status="running")
            checkpoint.save(self.model, run_dir, epoch + 1)

        def on_train_end(self, logs: dict | None = None) -> None:
            # EpochStats (called first) has just closed the last epoch: its time now includes our writes.
            self._take_times()

        def _take_times(self) -> None:
            if stats.times:
                self.history["time_s"] = self.earlier_times + stats.times

        def write(self, status: str, test: dict[str, float] | None = None, wall_time_s: float | None = None,
                  **extra: Any) -> None:
            self.status = status
            self._take_times()
            record = {"status": status, "epochs_completed": len(self.history.get("loss", [])),
                      "epochs_planned": epochs, "history": self.history, "test": test,
                      "wall_time_s": wall_time_s, **extra}
            if self.divergence is not None:
                record["divergence"] = self.divergence
            if self.resumed:
                record["resumed_at_epochs"] = self.resumed
            if self.first_epoch:
                record["first_epoch"] = self.first_epoch
            write_json(run_dir / "metrics.json", record)

    return stats, RunRecord()


def fit(model: keras.Model, splits: data_lib.Splits, config: Config, run_dir: Path,
        callbacks: list, epochs: int, resume: checkpoint.Resume | None = None, epoch_lines: bool = True,
        **fit_kwargs: Any) -> Any:
    """`model.fit` with the record and timing callbacks ahead of `callbacks`, from `resume`'s epoch and
    weights if given (else from `initial_epoch`, as Hyperband passes it); returns the record. Keras
    prints each epoch unless `epoch_lines` is off (a sweep prints one line per trial instead)."""
    n_train = len(splits.train[1])
    first = fit_kwargs.pop("initial_epoch", 0)
    stats, record = _make_callbacks(n_train, run_dir, epochs, first, resume)
    if resume is not None:
        first = max(first, resume.epoch)
        if resume.weights is not None:
            checkpoint.restore(model, resume.weights)
    train_ds = data_lib.train_batches(*splits.train, config.data.batch_size, config.train.seed, first)
    val_ds = None if splits.val is None else data_lib.eval_batches(*splits.val)
    # A progress bar on a terminal, one line per epoch in a log file.
    verbose = 0 if not epoch_lines else 1 if sys.stdout.isatty() else 2
    every = [stats, record, *callbacks]
    try:
        with reported_writes(run_dir):
            try:
                model.fit(train_ds, validation_data=val_ds, epochs=epochs, initial_epoch=first, verbose=verbose,
                          shuffle=False, callbacks=every, **fit_kwargs)
            except BaseException as e:
                for callback in every:  # what fit would have done: close TensorBoard's and HParams' writers
                    with contextlib.suppress(Exception):  # the error that stopped training is the one to show
                        callback.on_train_end()
                if not isinstance(e, Halted):
                    raise
        if STOP.is_set():
            raise KeyboardInterrupt
    except TfsoftmaxError as e:  # a full disk: keep the last good record if this one cannot be written
        with contextlib.suppress(TfsoftmaxError):
            record.write(status="failed", error=str(e))
        raise
    except Exception:
        record.write(status="failed")  # a bug: the record says so, the traceback says where
        raise
    except KeyboardInterrupt:
        record.write(status="interrupted")
        raise TfsoftmaxError(f"interrupted after {len(record.history.get('loss', []))} finished epoch(s) of "
                             f"{run_dir}", INTERRUPTED) from None
    return record


def tensorboard_callback(log_dir: Path, config: Config) -> keras.callbacks.Callback:
    """Keras' own TensorBoard writer: per-epoch scalars (learning rate included) and weight histograms."""
    import keras

    return keras.callbacks.TensorBoard(log_dir=str(log_dir), histogram_freq=int(config.logging.histograms),
                                       write_graph=False, profile_batch=0)


def save_model(model: keras.Model, run_dir: Path) -> None:
    """Save beside, then rename: a crash never leaves a half-written model.keras."""
    tmp = run_dir / ".model.tmp.keras"
    try:
        model.save(tmp)
        os.replace(tmp, run_dir / "model.keras")
    finally:
        tmp.unlink(missing_ok=True)


def finish(model: keras.Model, record: Any, splits: data_lib.Splits, dataset: data_lib.Dataset,
           config: Config, run_dir: Path, started: float) -> RunResult:
    """Evaluate on test (unless diverged), write the TensorBoard report, the model and metrics.json."""
    from tfsoftmax import hparams, report

    test: dict[str, float] = {}
    status = "diverged" if record.divergence is not None else "completed"
    if status == "completed":
        scores = model.evaluate(data_lib.eval_batches(*splits.test), verbose=0, return_dict=True)
        test = {"loss": float(scores["loss"]), "accuracy": float(scores["accuracy"])}
    try:
        ensure_space(run_dir)
        with reported_writes(run_dir):
            step = len(record.history.get("loss", []))
            report.write_report(run_dir, model, splits.test, dataset.class_names, config, test, step=step)
            hparams.write_run_session(run_dir, config, record.history, step)
            save_model(model, run_dir)
    except TfsoftmaxError as e:
        with contextlib.suppress(TfsoftmaxError):
            record.write(status="failed", error=str(e))
        raise
    wall = time.perf_counter() - started
    record.write(status=status, test=test or None, wall_time_s=wall)
    checkpoint.remove(run_dir)
    return RunResult(run_dir=run_dir, status=status, history=record.history, test=test, wall_time_s=wall,
                     model=model, divergence=record.divergence)


def finish_trial(model: keras.Model, record: Any, run_dir: Path, started: float) -> None:
    """A sweep trial's record: model and metrics, but no test evaluation (the test split never chooses)."""
    ensure_space(run_dir)
    with reported_writes(run_dir):
        save_model(model, run_dir)
    status = "diverged" if record.divergence is not None else "completed"
    val = record.history.get("val_accuracy", [])
    best = {"epoch": val.index(max(val)) + 1, "val_accuracy": max(val),
            "val_loss": record.history["val_loss"][val.index(max(val))]} if val else None
    record.write(status=status, wall_time_s=time.perf_counter() - started, best=best)
    checkpoint.remove(run_dir)


def write_run_files(run_dir: Path, config: Config, dataset: data_lib.Dataset, resume_with: str) -> None:
    """The exact config (re-runnable as is) and the environment, before training starts."""
    header = (f"Resolved config of run {run_dir}.\nRe-run with: tfsoftmax run {run_dir / 'config.toml'}\n"
              f"If interrupted, continue with: {resume_with}")
    write_text(run_dir / "config.toml", to_toml(config, header))
    write_json(run_dir / "environment.json", environment(dataset, data_lib.manual_dir(config.data)))


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
    STOP.clear()
    dataset = data_lib.load_dataset(config.data)
    run_dir = make_run_dir(config)
    with locked(run_dir / ".lock"):
        write_run_files(run_dir, config, dataset, f"tfsoftmax run --resume {run_dir}")
        return _train(config, dataset, run_dir, None, started)


def resume(run_dir: Path) -> RunResult:
    """Continue an interrupted run in its own directory from its last finished epoch, with its own
    config; the result equals an uninterrupted run's (same batches, same weights, same optimizer state).

    Raises:
        TfsoftmaxError: not a run directory, a run that completed or diverged, or one that another
        process is training.
    """
    started = time.perf_counter()
    STOP.clear()
    run_dir = Path(run_dir)
    checkpoint.resumable(run_dir)
    config = load_config(run_dir / "config.toml")
    with locked(run_dir / ".lock", blocking=False) as mine:
        if not mine:
            raise TfsoftmaxError(f"--resume {run_dir}: another process is training this run", RUNTIME_ERROR)
        record = checkpoint.resumable(run_dir)  # again, now that no one else can change it
        dataset = data_lib.load_dataset(config.data)
        return _train(config, dataset, run_dir, checkpoint.resume_point(run_dir, record), started)


def _train(config: Config, dataset: data_lib.Dataset, run_dir: Path, resume_from: checkpoint.Resume | None,
           started: float) -> RunResult:
    """Build, fit (from `resume_from` if given) and finish a run in `run_dir`; a failure that leaves the run
    resumable says how to resume it."""
    splits = data_lib.split(dataset, config.data)
    seed_everything(config.train.seed)
    from tfsoftmax.model import build_model

    model = build_model(dataset.image_shape, dataset.num_classes, config.model, config.train)
    try:
        record = fit(model, splits, config, run_dir, [tensorboard_callback(run_dir, config)],
                     config.train.epochs, resume_from)
        return finish(model, record, splits, dataset, config, run_dir, started)
    except KeyboardInterrupt:  # a second Ctrl-C outside training: the last checkpoint is still there
        raise TfsoftmaxError(f"interrupted; resume with: tfsoftmax run --resume {run_dir}", INTERRUPTED) from None
    except TfsoftmaxError as e:
        if e.resumable:
            raise TfsoftmaxError(f"{e}; resume with: tfsoftmax run --resume {run_dir}", e.exit_code) from None
        raise
