"""One trial of a pack (`packing`) as a run directory: its record, shaped as `callbacks.RunRecord`'s, its early
stopping, which follows Keras' `EarlyStopping` exactly, and each epoch's TensorBoard, record and checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tfsoftmax.board import summaries
from tfsoftmax.config import Config
from tfsoftmax.files import ensure_space, reported_writes
from tfsoftmax.rundir import checkpoint
from tfsoftmax.rundir import layout as rundir
from tfsoftmax.training.callbacks import EarlyStopping
from tfsoftmax.training.pack import Member, Pack

MONITOR = EarlyStopping.MONITOR


class PackedTrial:
    """One trial of a pack: its run directory, its record (shaped as `callbacks.RunRecord`, which
    `train.finish_trial` reads) and its early stopping, which follows Keras' `EarlyStopping` exactly."""

    def __init__(
        self,
        trial: Any,
        config: Config,
        run_dir: Path,
        resume: checkpoint.Resume | None,
        state: dict[str, np.ndarray] | None,
    ) -> None:
        self.trial, self.config, self.run_dir = trial, config, run_dir
        self.epochs, self.patience = config.train.epochs, config.train.early_stopping
        self.history: dict[str, list[float]] = dict(resume.history) if resume else {}
        self.resumed = [*resume.resumed_at, resume.epoch] if resume else []
        self.state = state  # the packed checkpoint it resumes from
        self.divergence: dict[str, Any] | None = None
        self.finished_before = False
        self.ended = False  # its final record is written and the oracle told
        self.lost = False  # a distributed chief handed it to another worker
        self.packed: dict[str, Any] = {}
        self.best, self.best_epoch, self.wait, self.stopped = -np.inf, 0, 0, False
        self.best_weights = resume.best if resume else None
        earlier = rundir.best_epoch(self.history, MONITOR)
        if self.patience and earlier is not None:
            values = self.history[MONITOR]
            self.best, self.best_epoch, self.wait = values[earlier], earlier, len(values) - 1 - earlier
            self.stopped = self.wait >= self.patience
        self.writers: dict[str, Any] = {}

    @property
    def epochs_completed(self) -> int:
        return len(self.history.get("loss", []))

    @property
    def done(self) -> bool:
        """Nothing left to train: its epochs, early stopping, divergence, or another worker took it."""
        return self.stopped or self.lost or self.divergence is not None or self.epochs_completed >= self.epochs

    def write(
        self, status: str, test: dict[str, float] | None = None, wall_time_s: float | None = None, **extra: Any
    ) -> None:
        """The record as it stands (see `callbacks.RunRecord.write`), saying it was trained packed."""
        kept = self.best_epoch + 1 if self.patience and self.best_weights is not None else None
        record = rundir.run_record(
            status,
            self.epochs,
            self.history,
            test=test,
            wall_time_s=wall_time_s,
            divergence=self.divergence,
            resumed=self.resumed,
            kept_epoch=kept,
            packed=self.packed,
            **extra,
        )
        rundir.write_record(self.run_dir, record)

    def end_epoch(self, epoch: int, logs: dict[str, float], weights: list[np.ndarray]) -> None:
        """Add an epoch's logs; early stopping as Keras decides it (strictly better resets the wait)."""
        for key, value in logs.items():
            self.history.setdefault(key, []).append(float(value))
        if not self.patience:
            return
        if self.best_weights is None:
            self.best_weights, self.best_epoch = weights, epoch
        self.wait += 1
        if logs[MONITOR] > self.best:
            self.best, self.best_epoch, self.best_weights, self.wait = logs[MONITOR], epoch, weights, 0
        elif self.wait >= self.patience and epoch > 0:
            self.stopped = True

    def board(self, name: str) -> Any:
        """The trial's TensorBoard writer for `name` ("train", "validation"), opened once."""
        if name not in self.writers:
            self.writers[name] = tf.summary.create_file_writer(str(self.run_dir / name))
        return self.writers[name]

    def close(self) -> None:
        """Flush and close the trial's writers: an ended trial's event files are complete."""
        for writer in self.writers.values():
            writer.close()
        self.writers = {}


def member(config: Config) -> Member:
    """What a trial's config sets in its pack."""
    momentum = config.train.momentum if config.train.optimizer == "momentum" else 0.0
    return Member(config.train.lr, config.data.batch_size, momentum, config.train.weight_decay)


def log_epoch(
    pack: Pack, i: int, t: PackedTrial, epoch: int, logs: dict[str, float], steps: int, paths: list[str]
) -> None:
    """A trial's epoch in TensorBoard, under the tags Keras' TensorBoard callback writes (`paths`: the Keras
    model's weight paths, which name its histograms). Its history changes only in `save_epoch`, all keys
    at once: a record written in between (the pack stopped by an error) must stay whole."""
    ensure_space(t.run_dir)
    kernel, bias = pack.weights(i)
    with reported_writes(t.run_dir):
        scalars = [
            summaries.scalar(f"epoch_{n}", logs[n])
            for n in ("loss", "accuracy", "learning_rate", "examples_per_second")
        ]
        if t.config.logging.histograms:
            scalars += [
                summaries.histogram(f"{path}/histogram", w) for path, w in zip(paths, (kernel, bias), strict=True)
            ]
        summaries.write(t.board("train"), epoch, scalars)
        if "val_loss" in logs:
            validation = [
                summaries.scalar("epoch_loss", logs["val_loss"]),
                summaries.scalar("epoch_accuracy", logs["val_accuracy"]),
            ]
            summaries.write(t.board("validation"), epoch, validation)


def save_epoch(
    pack: Pack, i: int, t: PackedTrial, epoch: int, logs: dict[str, float], steps: int, elapsed: float
) -> None:
    """The epoch in the history (early stopping decided), its time, then the record and the checkpoint a
    resumed sweep continues from."""
    state = pack.state(i)  # fetched once: the kept weights and the checkpoint both come from it
    t.end_epoch(epoch, logs, [state["kernel"], state["bias"]])
    t.history.setdefault("steps", []).append(steps)
    t.history.setdefault("time_s", []).append(elapsed)
    with reported_writes(t.run_dir):
        summaries.write(t.board("train"), epoch, [summaries.scalar("epoch_time_s", elapsed)])
        t.write(status="running")
        checkpoint.save_arrays(
            t.run_dir,
            epoch + 1,
            {f"{checkpoint.PACKED}{k}": v for k, v in state.items()},
            t.best_weights if t.patience else None,
        )
