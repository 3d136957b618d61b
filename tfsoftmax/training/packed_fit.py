"""A run trained by the packed pass (`pack.Pack`, a pack of one) instead of `model.fit`: the same batches and
arithmetic to float rounding (`tests/training/test_packed_fit.py` holds a run to `fit`'s), in a fraction
of `fit`'s epoch (docs/speed.md). The run's
Keras callbacks (the record, TensorBoard, the notebook's curves, the progress lines) are called through
Keras' own `CallbackList` once per epoch, with the logs `fit` would hand them, and the Keras model holds
the epoch's weights and optimizer state before they run: a checkpoint is a Keras model's, whichever engine
wrote it, and `--resume` may continue it with either."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tfsoftmax import data as data_lib
from tfsoftmax.config import Config
from tfsoftmax.files import reported_writes
from tfsoftmax.rundir import checkpoint
from tfsoftmax.training.callbacks import EpochStats, RunRecord
from tfsoftmax.training.compiled_packs import engine
from tfsoftmax.training.epoch import Record, recorded
from tfsoftmax.training.pack import Pack
from tfsoftmax.training.packed_trial import family, hold_state, member, state_of

if TYPE_CHECKING:
    import keras

    from tfsoftmax.training.stopping import StopSignal


def trains_packed(config: Config) -> bool:
    """Whether a run of `config` trains by the packed pass: `train.engine`, where "auto" packs the Keras
    model (the scratch model has its own `train_step`, which only `model.fit` runs)."""
    return config.train.engine == "packed" or (config.train.engine == "auto" and config.model.kind == "keras")


class PackedFit:
    """`model`, trained and scored by the packed pass: `fit` keeps `train.fit`'s contract, and `scores`
    evaluates the model's weights as they stand (the kept epoch's, after early stopping) in the same pass
    that scored validation, so the test split costs no trace of its own."""

    def __init__(self, model: keras.Model, splits: data_lib.Splits, config: Config) -> None:
        self.model, self.splits, self.config = model, splits, config
        self.pack: Pack | None = None

    def fit(
        self,
        run_dir: Path,
        callbacks: list,
        epochs: int,
        resume: checkpoint.Resume | None,
        *,
        verbose: int,
        stop: StopSignal | None,
    ) -> Record:
        """Train from `resume`'s epoch and state if given, the record and timing callbacks ahead of
        `callbacks`, and return the record. A divergence ends training with the weights from before the
        batch whose loss was not finite; a requested stop ends it after the epoch in progress, whose record
        and checkpoint are written."""
        import keras

        model, splits, config = self.model, self.splits, self.config
        stats = EpochStats(len(splits.train[1]), run_dir)
        keeper = RunRecord(run_dir, epochs, 0, resume, stats, stop, config.train.early_stopping)
        record = keeper.record
        first = 0
        if resume is not None:
            first = resume.epoch
            if resume.weights is not None:
                checkpoint.restore(model, resume.weights)
        pack = self._load()
        every = [stats, keeper, *callbacks]
        steps = data_lib.steps_per_epoch(len(splits.train[1]), config.data.batch_size)
        hooks = keras.callbacks.CallbackList(
            every, add_history=True, add_progbar=verbose != 0, model=model, verbose=verbose, epochs=epochs, steps=steps
        )
        with recorded([record], ""), reported_writes(run_dir):
            model.stop_training = False  # as `fit` starts: an earlier run of this model may have set it
            try:
                hooks.on_train_begin()
                for epoch in range(first, first if record.stopped else epochs):  # out of patience before a resume
                    hooks.on_epoch_begin(epoch)
                    result = pack.epoch(epoch)
                    hold_state(model, pack.state(0), config)
                    if result.diverged_at[0]:
                        record.diverge(epoch, int(result.diverged_at[0]), float(result.loss[0]))
                        break
                    logs = {"accuracy": float(result.accuracy[0]), "loss": float(result.loss[0])}
                    if splits.val is not None:
                        hooks.on_test_begin()
                        val = self._scores(pack, *splits.val)
                        hooks.on_test_end(val)
                        logs.update({f"val_{k}": v for k, v in val.items()})
                    hooks.on_epoch_end(epoch, logs)
                    if model.stop_training or (stop is not None and stop.requested):
                        break
                hooks.on_train_end()
            except BaseException:
                for callback in every:  # as `train.fit`: close the writers; the error that stopped training shows
                    with contextlib.suppress(Exception):
                        callback.on_train_end()
                raise
            if stop is not None and stop.requested:
                raise KeyboardInterrupt
        return record

    def scores(self, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        """The model's loss (its penalty included, as Keras' `evaluate` gives it) and accuracy on (x, y)."""
        return self._scores(self._load(), x, y)

    def _load(self) -> Pack:
        """The pack, holding the model's weights and optimizer state."""
        state = state_of(self.model, self.config)
        train, config = self.splits.train, self.config
        if self.pack is None:
            start = [(state["kernel"], state["bias"])]
            self.pack = engine(train, config.train.seed, [member(config)], family(config), start)
        self.pack.load(0, state)
        return self.pack

    @staticmethod
    def _scores(pack: Pack, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
        loss, accuracy = pack.evaluate(x, y)
        return {"accuracy": float(accuracy[0]), "loss": float(loss[0])}
