"""The Keras callbacks every run and sweep trial trains with: whole-epoch timing, and the thin callback
through which `model.fit` keeps the epoch contract (`epoch.Record`: the history, early stopping with the best
epoch kept, divergence), stops a diverged or interrupted run and writes the record and checkpoint after each
epoch."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import tensorflow as tf

from tfsoftmax.board import summaries
from tfsoftmax.files import ensure_space
from tfsoftmax.rundir import checkpoint
from tfsoftmax.training.epoch import LEARNING_RATE, THROUGHPUT, TIME_TAG, TRAIN_RUN, Record, histogram_tag

if TYPE_CHECKING:
    from tfsoftmax.training.stopping import StopSignal


class WeightHistograms(keras.callbacks.Callback):
    """Each epoch's weight histograms in the train run, under the tags Keras' TensorBoard callback gives
    them (its layers' weights), built in NumPy and written as one event (`board.summaries`)."""

    def __init__(self, board_dir: Path) -> None:
        super().__init__()
        self.board_dir = board_dir
        self.writer: Any = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.writer = tf.summary.create_file_writer(str(self.board_dir / TRAIN_RUN))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        weights = [(w.path, keras.ops.convert_to_numpy(w)) for layer in self.model.layers for w in layer.weights]
        summaries.write(self.writer, epoch, [summaries.histogram(histogram_tag(path), w) for path, w in weights])
        self.writer.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class Halted(Exception):
    """Raised at a batch end to leave `model.fit` at once: a diverged or stopped epoch gets no validation
    pass and no epoch-end logs, so TensorBoard never holds a half epoch that a resume would log again."""


class EpochStats(keras.callbacks.Callback):
    """Times each whole epoch as the user waits for it, and adds the learning rate and the training pass's
    throughput to each epoch's logs (where TensorBoard, History and the record pick them up). With
    `board_dir`, each epoch's time goes to TensorBoard (`TIME_TAG` in the train run).

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
            self.writer = tf.summary.create_file_writer(str(self.board_dir / TRAIN_RUN))

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
            logs[LEARNING_RATE] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            logs[THROUGHPUT] = self.n_train / ((self.train_end or end) - self.start)
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
                tf.summary.scalar(TIME_TAG, self.times[-1], step=self.epoch)


class RunRecord(keras.callbacks.Callback):
    """`model.fit`'s side of the epoch contract (`epoch.Record`, which it holds as `record`): stops at the
    first non-finite loss (`Halted`) or once `stop` is requested (KeyboardInterrupt), hands each finished
    epoch to the record, stops training where its early stopping says so and ends with the kept epoch's
    weights; writes the record after every epoch, then the checkpoint a resumed run continues from. The
    epoch times come from `stats`, which must run before it."""

    def __init__(
        self,
        run_dir: Path,
        epochs: int,
        first_epoch: int,
        resume: checkpoint.Resume | None,
        stats: EpochStats,
        stop: StopSignal | None,
        patience: int,
    ) -> None:
        super().__init__()
        self.stats, self.stop = stats, stop
        self.record = Record(run_dir, epochs, patience, resume, first_epoch, str(run_dir))
        self.epoch = 0
        self.first_step = 0

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
            self.record.diverge(self.epoch, batch + 1, loss)
            raise Halted

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        record = self.record
        ensure_space(record.run_dir)  # before this epoch's writes, ours and the callbacks' after us
        record.end_epoch(epoch, logs or {}, self._iterations() - self.first_step, self.stats.times[-1], self._weights)
        if record.stopped:
            self.model.stop_training = True
        record.retime(self.stats.times)  # the epoch before closed at this one's start: its writes are in its time
        record.write(status="running")
        checkpoint.save(self.model, record.run_dir, epoch + 1, record.best_weights)

    def _weights(self) -> list[Any]:
        return self.model.get_weights()

    def on_train_end(self, logs: dict | None = None) -> None:
        # EpochStats (called first) has just closed the last epoch: its time now includes our writes.
        self.record.retime(self.stats.times)
        if self.record.best_weights is not None:
            self.model.set_weights(self.record.best_weights)
