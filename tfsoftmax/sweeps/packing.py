"""Sweep trials trained in packs (`pack.Pack`). Each trial of a pack is still a complete run directory
and TensorBoard run (config, environment, record and checkpoint after every epoch, model), is reported
to keras-tuner's oracle after every epoch and ended through it, as keras-tuner's own loop ends an
unpacked trial. A diverged trial ends as failed while its pack-mates go on; Ctrl-C and errors leave
every trial's record and checkpoint as a resumed sweep needs them.
"""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import keras_tuner
import numpy as np
import tensorflow as tf

from tfsoftmax.config import Config
from tfsoftmax.errors import TfsoftmaxError
from tfsoftmax.rundir import checkpoint
from tfsoftmax.rundir import layout as rundir
from tfsoftmax.sweeps import kt_private
from tfsoftmax.training import train
from tfsoftmax.training.compiled_packs import engine
from tfsoftmax.training.epoch import STEPS, TIME, logs, recorded
from tfsoftmax.training.pack import Pack
from tfsoftmax.training.packed_trial import PackedTrial, family, hold_state, log_epoch, save_epoch, state_of


def packable(config: Config) -> bool:
    """Whether a sweep's trials can train in packs: Keras softmax regression with its stable loss, one
    execution per trial (a Hyperband round is a pack; its promoted trials start from their parents')."""
    return (
        config.sweep.pack > 1
        and config.sweep.executions_per_trial == 1
        and config.model.kind == "keras"
        and config.model.loss == "stable"
    )


def start(tuner: Any, trial: Any, epochs: int) -> PackedTrial | None:
    """A trial's run directory made ready, as an unpacked trial's is; None where the trial cannot join a
    pack (a Keras checkpoint from an unpacked run of it) and must run alone."""
    hypermodel, values = tuner.hypermodel, trial.hyperparameters.values
    first_epoch = 0
    if "tuner/epochs" in values:  # Hyperband's budget and start, as its own `run_trial` passes them to fit
        epochs, first_epoch = values["tuner/epochs"], values["tuner/initial_epoch"]
    config = hypermodel.trial_config(trial.hyperparameters, epochs)
    run_dir = rundir.trial_dir(rundir.experiment_dir(hypermodel.config), trial.trial_id) / f"{rundir.EXECUTION}0"
    found = checkpoint.latest(run_dir)
    state = None if found is None else checkpoint.load_packed(found[1])
    if found is not None and state is None:
        return None
    prior, resume = hypermodel.open_run(run_dir, config)
    packed = PackedTrial(trial, config, run_dir, resume, state, first_epoch)
    if hypermodel.config.sweep.algorithm == "hyperband":
        packed.saver = kt_private.best_epoch_saver(tuner, trial, packed.record.history)
    if prior is not None and prior["status"] == "completed":  # finished before the sweep was interrupted
        packed.record.history, packed.finished_before = prior["history"], True
    elif resume is None:  # a fresh start: the HParams session keras-tuner's TensorBoard callback would start
        from tensorboard.plugins.hparams import api as hp_api

        writer = tf.summary.create_file_writer(str(run_dir))
        with writer.as_default():
            hp_api.hparams(kt_private.trial_hparams(trial), trial_id=trial.trial_id)
        writer.close()
        if packed.saver is not None:  # a promoted trial starts from its parent's best epoch, optimizer included
            model = hypermodel.holding(config, hypermodel.initial_weights(config))
            if kt_private.load_parent(tuner, trial, model):
                packed.state = state_of(model, config)
    return packed


def groups(trials: list[PackedTrial]) -> Iterator[list[PackedTrial]]:
    """Trials that can step through the same batches: same optimizer family, seed and next epoch."""
    keyed: dict[tuple, list[PackedTrial]] = {}
    for t in trials:
        keyed.setdefault((family(t.config), t.config.train.seed, t.record.next_epoch), []).append(t)
    yield from keyed.values()


@contextlib.contextmanager
def _alive(tuner: Any, trials: list[PackedTrial], epoch: int) -> Iterator[None]:
    """While a pass runs (the first one compiles for seconds), a distributed worker keeps telling the chief
    it holds `trials`, so a short `sweep.lease_s` does not hand them on; a refusal is left to `report`."""
    if not isinstance(tuner.oracle, kt_private.LeasedClient):
        yield
        return
    done = threading.Event()
    every = tuner.sweep_config.sweep.lease_s / 4

    def beat() -> None:
        while not done.wait(every):
            for t in trials:
                with contextlib.suppress(Exception):
                    tuner.oracle.report(t.trial.trial_id, epoch)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def report(tuner: Any, t: PackedTrial, epoch: int, logs: dict[str, float]) -> None:
    """An epoch's metrics to the oracle, as keras-tuner records them (and, for a distributed worker, the
    chief's sign that it is alive). A worker whose lease the chief gave away drops the trial."""
    try:
        tuner.oracle.update_trial(t.trial.trial_id, {k: float(v) for k, v in logs.items()}, step=epoch)
    except kt_private.LeaseLost as e:
        print(f"sweep worker: {e}; dropping it from this pack", flush=True)
        t.lost = t.record.ended = True


def end(tuner: Any, t: PackedTrial, weights: list[np.ndarray] | None, started: float) -> None:
    """Save the trial's model (its kept epoch's weights, else `weights`) and final record, unless it
    finished before an interruption; then end it in the oracle."""
    t.close()
    if not t.finished_before:
        model = tuner.hypermodel.holding(t.config, t.record.final_weights(weights))
        train.finish_trial(model, t.record, started)
        if t.saver is not None:  # Hyperband's next round reads both
            keep_best(tuner.hypermodel, t)
            kt_private.save_build_config(tuner, t.trial, model)
    t.record.ended = True
    kt_private.set_outcome(t.trial, t.record.failure)
    tuner.on_trial_end(t.trial)


def train_pack(tuner: Any, trials: list[PackedTrial]) -> None:
    """Train one group (see `groups`) epoch by epoch until each of its trials is done."""
    hypermodel, started = tuner.hypermodel, time.perf_counter()
    splits = hypermodel.splits
    for t in trials:
        if t.finished_before:  # the oracle has not seen its epochs: report them, then end it
            history = t.record.history
            for i in range(t.record.epochs_completed):  # epochs count from the trial's first (Hyperband's)
                epoch_logs = {k: v[i] for k, v in history.items() if k not in (STEPS, TIME)}
                report(tuner, t, t.record.first_epoch + i, epoch_logs)
        if t.done:  # finished, or out of patience, before an interruption
            end(tuner, t, None if t.state is None else [t.state["kernel"], t.state["bias"]], started)
    live = [t for t in trials if not t.done]
    if not live:
        return
    starts = [hypermodel.initial_weights(t.config) for t in live]
    paths = [w.path for w in hypermodel.holding(live[0].config, starts[0]).weights]
    first = live[0].config
    pack = engine(
        splits.train, first.train.seed, [t.member for t in live], family(first), [(w[0], w[1]) for w in starts]
    )
    for i, t in enumerate(live):
        if t.state is not None:
            pack.load(i, t.state)
        t.record.fields["packed"] = {
            "trials": [u.trial.trial_id for u in live],
            "micro_batch": pack.micro,
            "lanes": [[u.trial.trial_id for u in live[a:b]] for a, b in pack.ranges],
        }
    epoch = live[0].record.next_epoch
    try:
        with recorded([t.record for t in live], "the packed trials "):
            _train_epochs(tuner, pack, live, epoch, paths, started)
    finally:
        for t in live:
            t.close()
            if not (t.record.ended or t.lost):  # stopped mid-way: its resume counts on its best so far
                with contextlib.suppress(OSError):  # if unwritten, the resumed trial finds its best afresh
                    keep_best(hypermodel, t)


def _train_epochs(
    tuner: Any, pack: Pack, live: list[PackedTrial], epoch: int, paths: list[str], started: float
) -> None:
    """The pack's passes from `epoch` on, each trial's epoch ended as its record and the oracle take it."""
    hypermodel, splits = tuner.hypermodel, tuner.hypermodel.splits
    while any(not t.done for t in live):
        if hypermodel.stop.requested:
            raise KeyboardInterrupt
        began = time.perf_counter()
        with _alive(tuner, [t for t in live if not t.done], epoch):
            result = pack.epoch(epoch)
        trained = time.perf_counter()
        val = pack.evaluate(*splits.val) if splits.val is not None else None
        stepped = []
        for i, t in enumerate(live):
            if t.done:
                continue
            if result.diverged_at[i]:
                t.record.diverge(epoch, int(result.diverged_at[i]), result.loss[i])
                pack.stop(i)
                end(tuner, t, list(pack.weights(i)), started)
                continue
            validation = None if val is None else (val[0][i], val[1][i])
            epoch_logs = logs(
                result.loss[i], result.accuracy[i], validation, t.config.train.lr, pack.n / (trained - began)
            )
            log_epoch(pack, i, t, epoch, epoch_logs, paths)
            stepped.append((i, t, epoch_logs, int(result.steps[i])))
        # The pack's whole pass for all its trials: training, validation, their TensorBoard writes.
        elapsed = time.perf_counter() - began
        for i, t, epoch_logs, steps in stepped:
            state = save_epoch(pack, i, t, epoch, epoch_logs, steps, elapsed)
            if t.saver is not None and kt_private.improves(t.saver, epoch_logs):
                t.best = state  # written once the trial ends or the pack stops (`keep_best`)
            report(tuner, t, epoch, epoch_logs)
            if t.lost:
                pack.stop(i)
            elif t.done:
                pack.stop(i)
                end(tuner, t, list(pack.weights(i)), started)
        epoch += 1


def keep_best(hypermodel: Any, t: PackedTrial) -> None:
    """Write a Hyperband trial's best epoch, weights and optimizer state, to keras-tuner's best-epoch
    checkpoint: once, when it ends or its pack stops, not at every better epoch."""
    if t.saver is None or t.best is None:
        return
    model = hypermodel.holding(t.config, [t.best["kernel"], t.best["bias"]])
    kt_private.save_best(t.saver, hold_state(model, t.best, t.config))
    t.best = None


def search(tuner: Any, **fit_kwargs: Any) -> None:
    """keras-tuner's search loop (`BaseTuner.search`), asking the oracle for a round of trials at a time (at
    most `sweep.pack`; `kt_private.round_size`): those that can share batches train as packs, any other
    alone through keras-tuner's own loop step. Each trial ends through the tuner's `on_trial_end`."""
    if not kt_private.has_chief_oracle():
        tuner.oracle.verbose = fit_kwargs["verbose"]  # as keras-tuner's loop sets it: its tables or not
    tuner.on_search_begin()
    while True:
        tuner.pre_create_trial()
        asked, stopped = [], False
        for k in range(kt_private.round_size(tuner.oracle, tuner.sweep_config.sweep.pack)):
            trial = tuner.oracle.create_trial(kt_private.slot_id(tuner.tuner_id, k))
            stopped = trial.status == kt_private.STOPPED
            if stopped or trial.status == kt_private.IDLE:  # no more now (a grid waits on running trials)
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
                _train_or_fail(tuner, group)
        except TfsoftmaxError as e:
            raise tuner.search_stopped(e) from None
        for trial, p in ready:
            if p is None:
                kt_private.run_alone(tuner, trial, **fit_kwargs)
                tuner.on_trial_end(trial)
    tuner.on_search_end()


def _train_or_fail(tuner: Any, group: list[PackedTrial]) -> None:
    """Train a pack; an unexpected error fails its unfinished trials (records say so, the traceback is
    printed) and the search goes on, as keras-tuner's loop treats a trial's error."""
    try:
        train_pack(tuner, group)
    except (TfsoftmaxError, keras_tuner.errors.FatalError):
        raise
    except Exception:
        traceback.print_exc()
        message = traceback.format_exc()
        for t in group:
            if not t.record.ended:
                t.record.ended = True
                kt_private.set_outcome(t.trial, message)
                tuner.on_trial_end(t.trial)
