"""One trial of a pack (`sweeps.packing`) as a run directory: which config keys a pack member takes and how a
Keras model's optimizer state maps to its slots (the one place they are mapped), and the packed pass's side
of the epoch contract (`epoch.Record`): each epoch's TensorBoard scalars and histograms under the tags
Keras' callbacks write, its record and its checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tfsoftmax.board import summaries
from tfsoftmax.config import Config
from tfsoftmax.files import ensure_space, reported_writes
from tfsoftmax.rundir import checkpoint
from tfsoftmax.training.epoch import TIME_TAG, TRAIN_RUN, Record, histogram_tag, scalars
from tfsoftmax.training.pack import Member, Pack


def member(config: Config) -> Member:
    """What a trial's config sets in its pack: learning rate, batch size, momentum (0 for plain SGD) and
    weight decay."""
    momentum = config.train.momentum if config.train.optimizer == "momentum" else 0.0
    return Member(config.train.lr, config.data.batch_size, momentum, config.train.weight_decay)


def family(config: Config) -> str:
    """The pack a trial's optimizer can share: SGD with momentum is SGD with momentum 0."""
    return "adam" if config.train.optimizer == "adam" else "sgd"


# A Keras optimizer variable's kind (the end of its name) -> the pack's slot for it, per family.
SLOTS = {"adam": {"momentum": "m", "velocity": "v"}, "sgd": {"momentum": "v"}}


def _slot(name: str, config: Config) -> str | None:
    """The pack slot (`Pack.state`'s key) of the Keras optimizer variable `name`, e.g. "m/kernel" for Adam's
    kernel momentum; None for its step count and learning rate."""
    for part in ("kernel", "bias"):
        for kind, slot in SLOTS[family(config)].items():
            if name.endswith(f"_{part}_{kind}"):
                return f"{slot}/{part}"
    return None


def state_of(model: Any, config: Config) -> dict[str, np.ndarray]:
    """A Keras model's weights and optimizer state as a pack holds a trial's (`Pack.state`), so a trial can
    continue a Keras model (Hyperband's parent); a slot Keras does not keep (plain SGD's velocity) is 0."""
    import keras

    kernel, bias = model.get_weights()
    names = SLOTS[family(config)].values()
    state = {f"{n}/{part}": np.zeros_like(w) for n in names for part, w in (("kernel", kernel), ("bias", bias))}
    for variable in model.optimizer.variables:
        if slot := _slot(variable.name, config):
            state[slot] = keras.ops.convert_to_numpy(variable)
    steps = keras.ops.convert_to_numpy(model.optimizer.iterations)
    return {**state, "kernel": kernel, "bias": bias, "steps": np.asarray(steps, np.int64)}


def hold_state(model: Any, state: dict[str, np.ndarray], config: Config) -> Any:
    """`model` holding a pack trial's `state`: weights, optimizer slots and step count, as keras-tuner's
    best-epoch checkpoint saves a model trained by `fit`."""
    model.set_weights([state["kernel"], state["bias"]])
    for variable in model.optimizer.variables:
        if slot := _slot(variable.name, config):
            variable.assign(state[slot])
    model.optimizer.iterations.assign(int(state["steps"]))
    return model


class PackedTrial:
    """One trial of a pack: its keras-tuner trial, config and run directory, its `record` (the same
    `epoch.Record` a run trained by `model.fit` keeps, named by the trial's id), and its TensorBoard writers."""

    def __init__(
        self,
        trial: Any,
        config: Config,
        run_dir: Path,
        resume: checkpoint.Resume | None,
        state: dict[str, np.ndarray] | None,
        first_epoch: int,
    ) -> None:
        self.trial, self.config, self.run_dir = trial, config, run_dir
        train = config.train
        self.record = Record(
            run_dir, train.epochs, train.early_stopping, resume, first_epoch, trial.trial_id, packed={}
        )
        self.member = member(config)
        self.state = state  # where it starts: its packed checkpoint, or a Hyperband parent's best epoch
        self.saver: Any = None  # keras-tuner's best-epoch checkpoint, where Hyperband continues it from
        self.best: dict[str, np.ndarray] | None = None  # the best epoch's state since the checkpoint was written
        self.finished_before = False  # completed before the sweep was interrupted
        self.lost = False  # a distributed chief handed it to another worker
        self.writers: dict[str, Any] = {}

    @property
    def done(self) -> bool:
        """Nothing left to train: its record is finished, it was before an interruption, or another worker
        took it."""
        return self.finished_before or self.lost or self.record.finished

    def board(self, name: str) -> Any:
        """The trial's TensorBoard writer for run `name`, opened once."""
        if name not in self.writers:
            self.writers[name] = tf.summary.create_file_writer(str(self.run_dir / name))
        return self.writers[name]

    def close(self) -> None:
        """Flush and close the trial's writers: an ended trial's event files are complete."""
        for writer in self.writers.values():
            writer.close()
        self.writers = {}


def log_epoch(pack: Pack, i: int, t: PackedTrial, epoch: int, logs: dict[str, float], paths: list[str]) -> None:
    """A trial's epoch in TensorBoard, under the tags Keras' TensorBoard callback writes (`paths`: the Keras
    model's weight paths, which name its histograms). Its history changes only in `save_epoch`, all keys
    at once: a record written in between (the pack stopped by an error) must stay whole."""
    ensure_space(t.run_dir)
    with reported_writes(t.run_dir):
        for run, tags in scalars(logs).items():
            written = [summaries.scalar(tag, value) for tag, value in tags.items()]
            if run == TRAIN_RUN and t.config.logging.histograms:
                weights = zip(paths, pack.weights(i), strict=True)
                written += [summaries.histogram(histogram_tag(path), w) for path, w in weights]
            summaries.write(t.board(run), epoch, written)


def save_epoch(
    pack: Pack, i: int, t: PackedTrial, epoch: int, logs: dict[str, float], steps: int, elapsed: float
) -> dict[str, np.ndarray]:
    """The epoch in the record (early stopping decided), its time in TensorBoard, then the record and the
    checkpoint a resumed sweep continues from; returns the trial's state it saved (`Pack.state`)."""
    state = pack.state(i)  # fetched once: the kept weights and the checkpoint both come from it
    t.record.end_epoch(epoch, logs, steps, elapsed, lambda: [state["kernel"], state["bias"]])
    with reported_writes(t.run_dir):
        summaries.write(t.board(TRAIN_RUN), epoch, [summaries.scalar(TIME_TAG, elapsed)])
        t.record.write(status="running")
        checkpoint.save_arrays(
            t.run_dir, epoch + 1, {f"{checkpoint.PACKED}{k}": v for k, v in state.items()}, t.record.best_weights
        )
    return state
