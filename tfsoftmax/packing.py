"""Sweep trials trained in packs (`pack.Pack`). Each trial of a pack is still a complete run directory
and TensorBoard run (config, environment, record and checkpoint after every epoch, model), is reported
to keras-tuner's oracle after every epoch and ended through it, as keras-tuner's own loop ends an
unpacked trial. A diverged trial ends as failed while its pack-mates go on; Ctrl-C and errors leave
every trial's record and checkpoint as a resumed sweep needs them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tfsoftmax import checkpoint, kt_private, rundir, train
from tfsoftmax.config import Config
from tfsoftmax.errors import INTERRUPTED, RUNTIME_ERROR, TfsoftmaxError
from tfsoftmax.files import ensure_space, reported_writes
from tfsoftmax.loader import override
from tfsoftmax.pack import Member, Pack, engine
from tfsoftmax.results import config_for

MONITOR = "val_accuracy"  # what early stopping watches, as `callbacks.EarlyStopping`


def packable(config: Config) -> bool:
    """Whether a sweep's trials can train in packs: Keras softmax regression with its stable loss, one
    execution per trial; Hyperband's trials continue their parents' models, so they run one by one."""
    return (
        config.sweep.pack > 1
        and config.sweep.algorithm != "hyperband"
        and config.sweep.executions_per_trial == 1
        and config.model.kind == "keras"
        and config.model.loss == "stable"
    )


def family(config: Config) -> str:
    """The pack a trial's optimizer can share: SGD with momentum is SGD with momentum 0."""
    return "adam" if config.train.optimizer == "adam" else "sgd"


class PackedTrial:
    """One trial of a pack: its run directory, its record (shaped as `callbacks.RunRecord`, which
    `train.finish_trial` reads) and its early stopping, which follows Keras' `EarlyStopping` exactly."""

    def __init__(self, trial: Any, config: Config, run_dir: Path, resume: checkpoint.Resume | None) -> None:
        self.trial, self.config, self.run_dir = trial, config, run_dir
        self.epochs, self.patience = config.train.epochs, config.train.early_stopping
        self.history: dict[str, list[float]] = dict(resume.history) if resume else {}
        self.first_epoch = resume.epoch if resume else 0
        self.resumed = [*resume.resumed_at, resume.epoch] if resume else []
        self.state = checkpoint.load_packed(resume.weights) if resume and resume.weights else None
        self.divergence: dict[str, Any] | None = None
        self.finished_before = False
        self.ended = False  # its final record is written and the oracle told
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
        return self.stopped or self.divergence is not None or self.epochs_completed >= self.epochs

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
        if name not in self.writers:
            self.writers[name] = tf.summary.create_file_writer(str(self.run_dir / name))
        return self.writers[name]

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers = {}


def member(config: Config) -> Member:
    momentum = config.train.momentum if config.train.optimizer == "momentum" else 0.0
    return Member(config.train.lr, config.data.batch_size, momentum, config.train.weight_decay)


def start(tuner: Any, trial: Any, epochs: int) -> PackedTrial | None:
    """A trial's run directory made ready (as `hypermodel.HyperModel.fit` makes it); None where the trial
    cannot join a pack (a Keras checkpoint from an unpacked run of it) and must run alone."""
    hypermodel = tuner.hypermodel
    config = config_for(hypermodel.config, trial.hyperparameters.values)
    config = override(
        config, {"train.epochs": config.train.epochs if "train.epochs" in trial.hyperparameters.values else epochs}
    )
    run_dir = rundir.trial_dir(rundir.experiment_dir(hypermodel.config), trial.trial_id) / f"{rundir.EXECUTION}0"
    found = checkpoint.latest(run_dir)
    if found is not None and checkpoint.load_packed(found[1]) is None:
        return None
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TfsoftmaxError(f"cannot write in {run_dir}: {e.strerror}", RUNTIME_ERROR) from None
    from tfsoftmax.hypermodel import RESUME_WITH

    train.write_run_files(run_dir, config, hypermodel.dataset, RESUME_WITH)
    prior = rundir.read_record(run_dir)
    resume = checkpoint.resume_point(run_dir, prior) if found else None
    packed = PackedTrial(trial, config, run_dir, resume)
    if prior is not None and prior["status"] == "completed":  # finished before the sweep was interrupted
        packed.history, packed.stopped, packed.finished_before = prior["history"], True, True
    elif resume is None:
        from tensorboard.plugins.hparams import api as hp_api

        writer = tf.summary.create_file_writer(str(run_dir))
        with writer.as_default():
            hp_api.hparams(kt_private.trial_hparams(trial), trial_id=trial.trial_id)
        writer.close()
    return packed


def groups(trials: list[PackedTrial]) -> Iterator[list[PackedTrial]]:
    """Trials that can step through the same batches: same optimizer family, seed and next epoch."""
    keyed: dict[tuple, list[PackedTrial]] = {}
    for t in trials:
        keyed.setdefault((family(t.config), t.config.train.seed, t.epochs_completed), []).append(t)
    yield from keyed.values()


def report(tuner: Any, t: PackedTrial, epoch: int, logs: dict[str, float]) -> None:
    tuner.oracle.update_trial(t.trial.trial_id, {k: float(v) for k, v in logs.items()}, step=epoch)


def end(tuner: Any, t: PackedTrial, weights: list[np.ndarray] | None, started: float) -> None:
    """Save the trial's model (its kept epoch's weights, else `weights`) and final record, unless it
    finished before an interruption; then end it in the oracle."""
    t.close()
    if not t.finished_before:
        kept = t.best_weights if t.patience and t.best_weights is not None else weights
        train.finish_trial(tuner.hypermodel.holding(t.config, kept), t, t.run_dir, started)
    t.ended = True
    kt_private.set_outcome(t.trial, None if t.divergence is None else f"diverged: {t.divergence['reason']}")
    tuner.on_trial_end(t.trial)


def train_pack(tuner: Any, trials: list[PackedTrial]) -> None:
    """Train one group (see `groups`) epoch by epoch until each of its trials is done."""
    hypermodel, started = tuner.hypermodel, time.perf_counter()
    splits = hypermodel.splits
    for t in trials:
        if t.finished_before:  # the oracle has not seen its epochs: report them, then end it
            for epoch in range(t.epochs_completed):
                report(tuner, t, epoch, {k: v[epoch] for k, v in t.history.items() if k not in ("steps", "time_s")})
        if t.done:  # finished, or out of patience, before an interruption
            end(tuner, t, None if t.state is None else [t.state["kernel"], t.state["bias"]], started)
    live = [t for t in trials if not t.done]
    if not live:
        return
    starts = [hypermodel.initial_weights(t.config) for t in live]
    members, first = [member(t.config) for t in live], live[0].config
    pack = engine(splits.train, first.train.seed, members, family(first), [(w[0], w[1]) for w in starts])
    for i, t in enumerate(live):
        if t.state is not None:
            pack.load(i, t.state)
        t.packed = {"trials": [u.trial.trial_id for u in live], "micro_batch": pack.micro}
    epoch = live[0].epochs_completed
    with _recorded(live):
        while any(not t.done for t in live):
            if hypermodel.stop.requested:
                raise KeyboardInterrupt
            began = time.perf_counter()
            result = pack.epoch(epoch)
            trained = time.perf_counter()
            val = pack.evaluate(*splits.val) if splits.val is not None else None
            stepped = []
            for i, t in enumerate(live):
                if t.done:
                    continue
                if result.diverged_at[i]:
                    batch = int(result.diverged_at[i])
                    t.divergence = {
                        "epoch": epoch + 1,
                        "batch": batch,
                        "reason": f"training loss became {float(result.loss[i])} at epoch {epoch + 1}, batch {batch}",
                    }
                    pack.stop(i)
                    end(tuner, t, list(pack.weights(i)), started)
                    continue
                logs = {"loss": result.loss[i], "accuracy": result.accuracy[i]}
                if val is not None:
                    logs.update(val_loss=val[0][i], val_accuracy=val[1][i])
                logs.update(learning_rate=t.config.train.lr, examples_per_second=pack.n / (trained - began))
                _log_epoch(pack, i, t, epoch, logs, int(result.steps[i]))
                stepped.append((i, t, logs))
            # The pack's whole pass for all its trials: training, validation, their TensorBoard writes.
            elapsed = time.perf_counter() - began
            for i, t, logs in stepped:
                _save_epoch(pack, i, t, epoch, elapsed)
                report(tuner, t, epoch, logs)
                if t.done:
                    pack.stop(i)
                    end(tuner, t, list(pack.weights(i)), started)
            epoch += 1


def _summaries(writer: Any, step: int, protos: list[Any]) -> None:
    """Summary protos written as one event: built in NumPy, they cost no TensorFlow op per value. Two
    serialized Summary messages joined are one Summary with both's values (protobuf merges them)."""
    with writer.as_default():
        tf.summary.experimental.write_raw_pb(b"".join(proto.SerializeToString() for proto in protos), step=step)


def _scalar(tag: str, value: float) -> Any:
    """A scalar summary as `tf.summary.scalar` writes it (TensorBoard's scalars plugin), built in NumPy."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.scalar import metadata
    from tensorboard.util import tensor_util

    value_pb = summary_pb2.Summary.Value(
        tag=tag,
        tensor=tensor_util.make_tensor_proto(np.float32(value)),
        metadata=metadata.create_summary_metadata(display_name=tag, description=""),
    )
    return summary_pb2.Summary(value=[value_pb])


def _log_epoch(pack: Pack, i: int, t: PackedTrial, epoch: int, logs: dict[str, float], steps: int) -> None:
    """A trial's epoch in its history and TensorBoard, under the tags Keras' TensorBoard callback writes."""
    from tensorboard.plugins.histogram.summary_v2 import histogram_pb

    ensure_space(t.run_dir)
    kernel, bias = pack.weights(i)
    t.end_epoch(epoch, logs, [kernel, bias])
    t.history.setdefault("steps", []).append(steps)
    with reported_writes(t.run_dir):
        train = [_scalar(f"epoch_{n}", logs[n]) for n in ("loss", "accuracy", "learning_rate", "examples_per_second")]
        if t.config.logging.histograms:
            train += [histogram_pb("dense/kernel/histogram", kernel), histogram_pb("dense/bias/histogram", bias)]
        _summaries(t.board("train"), epoch, train)
        if "val_loss" in logs:
            validation = [_scalar("epoch_loss", logs["val_loss"]), _scalar("epoch_accuracy", logs["val_accuracy"])]
            _summaries(t.board("validation"), epoch, validation)


def _save_epoch(pack: Pack, i: int, t: PackedTrial, epoch: int, elapsed: float) -> None:
    """The epoch's time, then the record and the checkpoint a resumed sweep continues from."""
    t.history.setdefault("time_s", []).append(elapsed)
    with reported_writes(t.run_dir):
        _summaries(t.board("train"), epoch, [_scalar("epoch_time_s", elapsed)])
        t.write(status="running")
        checkpoint.save_arrays(
            t.run_dir,
            epoch + 1,
            {f"{checkpoint.PACKED}{k}": v for k, v in pack.state(i).items()},
            t.best_weights if t.patience else None,
        )


@contextlib.contextmanager
def _recorded(trials: list[PackedTrial]) -> Iterator[None]:
    """Every unfinished trial's record says how the pack stopped; Ctrl-C becomes the sweep's error."""
    try:
        yield
    except KeyboardInterrupt:
        _mark(trials, "interrupted")
        cut = [t for t in trials if not t.ended]
        raise TfsoftmaxError(
            f"interrupted after {min(t.epochs_completed for t in cut)} finished epoch(s) of the packed trials "
            f"{', '.join(t.trial.trial_id for t in cut)}",
            INTERRUPTED,
        ) from None
    except TfsoftmaxError as e:
        _mark(trials, "failed", error=str(e))
        raise
    except Exception:
        _mark(trials, "failed")
        raise
    finally:
        for t in trials:
            t.close()


def _mark(trials: list[PackedTrial], status: str, **extra: Any) -> None:
    for t in trials:
        if not t.ended:
            with contextlib.suppress(TfsoftmaxError):
                t.write(status=status, **extra)


def search(tuner: Any, **fit_kwargs: Any) -> None:
    """keras-tuner's search loop (`BaseTuner.search`), asking the oracle for up to `sweep.pack` trials at
    a time: those that can share batches train as packs, any other alone through keras-tuner's own
    `run_trial`. Each trial ends through the tuner's `on_trial_end`, as in keras-tuner's loop."""
    tuner.oracle.verbose = fit_kwargs.get("verbose", 1)  # as keras-tuner's loop sets it: its tables or not
    tuner.on_search_begin()
    while True:
        tuner.pre_create_trial()
        asked, stopped = [], False
        for k in range(tuner.sweep_config.sweep.pack):
            trial = tuner.oracle.create_trial(kt_private.slot_id(tuner.tuner_id, k))
            stopped = trial.status == kt_private.STOPPED
            if stopped or trial.status == kt_private.IDLE:  # no more now: Bayesian proposals come in rounds
                break
            asked.append(trial)
        if not asked:
            if stopped:
                break
            continue
        for trial in asked:
            tuner.on_trial_begin(trial)
        try:
            ready = [(trial, start(tuner, trial, fit_kwargs["epochs"])) for trial in asked]
            for group in groups([p for _, p in ready if p is not None]):
                train_pack(tuner, group)
        except TfsoftmaxError as e:
            raise tuner.search_stopped(e) from None
        for trial, p in ready:
            if p is None:
                tuner._try_run_and_update_trial(trial, **fit_kwargs)
                tuner.on_trial_end(trial)
    tuner.on_search_end()
