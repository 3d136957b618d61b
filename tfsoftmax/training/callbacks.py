"""The Keras callbacks every run and sweep trial trains with: whole-epoch timing, early stopping with the
best epoch kept, and the record that stops a diverged or interrupted run and writes the run's record and
checkpoint after each epoch."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import tensorflow as tf

from tfsoftmax.files import ensure_space
from tfsoftmax.rundir import checkpoint
from tfsoftmax.rundir import layout as rundir

if TYPE_CHECKING:
    from tfsoftmax.training.stopping import StopSignal


class Halted(Exception):
    """Raised at a batch end to leave `model.fit` at once: a diverged or stopped epoch gets no validation
    pass and no epoch-end logs, so TensorBoard never holds a half epoch that a resume would log again."""


class EpochStats(keras.callbacks.Callback):
    """Times each whole epoch as the user waits for it, and adds the learning rate and the training pass's
    throughput to each epoch's logs (where TensorBoard, History and the record pick them up). With
    `board_dir`, each epoch's time goes to TensorBoard as `train/epoch_time_s`.

    Keras starts an epoch only after every callback has ended the one before, so the time from one epoch's
    start to the next is the whole epoch: training, validation, record, checkpoint and every callback's
    writes. An epoch's time is provisional until the next one starts (or training ends)."""

    def __init__(self, n_train: int, board_dir: Path | None = None) -> None:
        super().__init__()
        self.n_train = n_train
        self.board_dir = board_dir
        self.times: list[float] = []
        self.open = False  # the last entry of `times` still grows
        self.writer: Any = None
        self.epoch = 0
        self.start = 0.0
        self.train_end: float | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.board_dir is not None:
            self.writer = tf.summary.create_file_writer(str(self.board_dir / "train"))

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
            logs["examples_per_second"] = self.n_train / ((self.train_end or end) - self.start)
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


class EarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' early stopping on validation accuracy, the best epoch's weights restored when training ends.
    A resumed run starts from its earlier epochs (their best value and epoch from the history, the weights
    from the checkpoint), so a resume stops and keeps the same epoch as an uninterrupted run."""

    MONITOR = "val_accuracy"

    def __init__(self, patience: int, resume: checkpoint.Resume | None) -> None:
        super().__init__(monitor=self.MONITOR, mode="max", patience=patience, restore_best_weights=True)
        self.resume = resume

    def on_train_begin(self, logs: dict | None = None) -> None:
        super().on_train_begin(logs)
        earlier = self.resume
        best = None if earlier is None or earlier.best is None else rundir.best_epoch(earlier.history, self.MONITOR)
        if best is not None:
            values = earlier.history[self.MONITOR]
            self.best, self.best_epoch, self.wait = values[best], earlier.first_epoch + best, len(values) - 1 - best
            self.best_weights = earlier.best

    @property
    def stopped_before(self) -> bool:
        """Whether the epochs before a resume had already run out of patience: the stop was decided at the
        last of them, so no epoch is left to train."""
        history = {} if self.resume is None else self.resume.history
        best = rundir.best_epoch(history, self.MONITOR)
        return best is not None and len(history[self.MONITOR]) - 1 - best >= self.patience > 0

    @property
    def kept_epoch(self) -> int | None:
        """The epoch (1-based) whose weights the run ends with."""
        return None if self.best_weights is None else self.best_epoch + 1


class RunRecord(keras.callbacks.Callback):
    """Stops at the first non-finite loss (`Halted`) or once `stop` is requested (KeyboardInterrupt); after
    every finished epoch writes the record (through `rundir`), then the checkpoint a resumed run continues
    from. The epoch times come from `stats`, which must run before it."""

    def __init__(
        self,
        run_dir: Path,
        epochs: int,
        first_epoch: int,
        resume: checkpoint.Resume | None,
        stats: EpochStats,
        stop: StopSignal | None,
        keep: EarlyStopping | None = None,
    ) -> None:
        super().__init__()
        self.run_dir, self.epochs, self.stats, self.stop, self.keep = run_dir, epochs, stats, stop, keep
        self.history: dict[str, list[float]] = dict(resume.history) if resume else {}
        self.earlier_times = list(self.history.get("time_s", []))
        self.resumed = [*resume.resumed_at, resume.epoch] if resume else []
        self.first_epoch = resume.first_epoch if resume else first_epoch  # where `history` starts
        self.status = "running"
        self.divergence: dict[str, Any] | None = None
        self.epoch = 0
        self.first_step = 0

    @property
    def epochs_completed(self) -> int:
        """Epochs in the record: those whose end was written (the history starts at `first_epoch`)."""
        return len(self.history.get("loss", []))

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch = epoch
        self.first_step = self._iterations()

    def _iterations(self) -> int:
        # The optimizer counts real steps; batch indices jump by steps_per_execution.
        return int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.stop is not None and self.stop.requested:
            raise KeyboardInterrupt
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.divergence = {
                "epoch": self.epoch + 1,
                "batch": batch + 1,
                "reason": f"training loss became {float(loss)} at epoch {self.epoch + 1}, batch {batch + 1}",
            }
            raise Halted

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        ensure_space(self.run_dir)  # before this epoch's writes, ours and the callbacks' after us
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.history.setdefault("steps", []).append(self._iterations() - self.first_step)
        self.write(status="running")
        checkpoint.save(self.model, self.run_dir, epoch + 1, None if self.keep is None else self.keep.best_weights)

    def on_train_end(self, logs: dict | None = None) -> None:
        # EpochStats (called first) has just closed the last epoch: its time now includes our writes.
        self._take_times()

    def _take_times(self) -> None:
        # Only epochs the record holds: an epoch whose end failed to write is timed but not recorded.
        if self.stats.times:
            self.history["time_s"] = (self.earlier_times + self.stats.times)[: self.epochs_completed]

    def write(
        self, status: str, test: dict[str, float] | None = None, wall_time_s: float | None = None, **extra: Any
    ) -> None:
        """The record as it stands, with `status` and whatever the end of the run adds."""
        self.status = status
        self._take_times()
        record = rundir.run_record(
            status,
            self.epochs,
            self.history,
            test=test,
            wall_time_s=wall_time_s,
            divergence=self.divergence,
            resumed=self.resumed,
            first_epoch=self.first_epoch,
            kept_epoch=None if self.keep is None else self.keep.kept_epoch,
            **extra,
        )
        rundir.write_record(self.run_dir, record)
