"""The packed search's steps on their own, with a stand-in tuner and oracle around the real HyperModel: which
sweeps pack, how trials group, a pack trained to its end (a diverging trial ending alone), stopped mid-way
and resumed, a trial finished before a restart, and a trial another worker took."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import keras_tuner
import pytest

from tfsoftmax import data as data_lib
from tfsoftmax.config import Config
from tfsoftmax.config.loader import load_config, override
from tfsoftmax.errors import INTERRUPTED, TfsoftmaxError
from tfsoftmax.rundir import checkpoint
from tfsoftmax.rundir import layout as rundir
from tfsoftmax.sweeps import kt_private, packing
from tfsoftmax.sweeps.hypermodel import HyperModel
from tfsoftmax.training import lane
from tfsoftmax.training.stopping import StopSignal

COMPLETED, FAILED = keras_tuner.engine.trial.TrialStatus.COMPLETED, keras_tuner.engine.trial.TrialStatus.FAILED


@pytest.mark.parametrize(
    "values, packs",
    [
        ({}, True),
        ({"sweep.pack": 1}, False),  # every trial alone, through keras-tuner's loop
        ({"sweep.algorithm": "hyperband"}, True),  # a round is a pack; promoted trials start from their parents'
        ({"sweep.executions_per_trial": 2}, False),
        ({"model.kind": "scratch"}, False),  # the pack computes Keras' softmax regression only
    ],
)
def test_which_sweeps_train_in_packs(values: dict[str, Any], packs: bool) -> None:
    assert packing.packable(override(Config(), values)) is packs


class _Oracle:
    """keras-tuner's oracle as a pack talks to it: per-epoch reports, here recorded (and `hook` called)."""

    def __init__(self, hook: Callable[[str, int], None] = lambda trial_id, step: None) -> None:
        self.reports: list[tuple[str, int]] = []
        self.hook = hook

    def update_trial(self, trial_id: str, metrics: dict[str, float], step: int) -> None:
        self.hook(trial_id, step)
        self.reports.append((trial_id, step))


class _Tuner:
    def __init__(self, hypermodel: HyperModel, oracle: _Oracle) -> None:
        self.hypermodel, self.oracle = hypermodel, oracle
        self.ended: list[tuple[str, Any, str | None]] = []

    def on_trial_end(self, trial: Any) -> None:
        self.ended.append((trial.trial_id, trial.status, trial.message))


def _hypermodel(write_config: Callable[..., Path], text: str = "") -> HyperModel:
    config = load_config(write_config(f"[train]\nepochs = 2\n{text}", name="pk"))
    dataset = data_lib.load_dataset(config.data)
    return HyperModel(config, dataset, data_lib.split(dataset, config.data), StopSignal())


def _trials(hypermodel: HyperModel, tuner: _Tuner, lrs: list[float]) -> list[packing.PackedTrial]:
    started = []
    for i, lr in enumerate(lrs):
        hp = keras_tuner.HyperParameters()
        hp.Fixed("train.lr", lr)
        trial = SimpleNamespace(trial_id=str(i), hyperparameters=hp, status=None, message=None)
        started.append(packing.start(tuner, trial, hypermodel.config.train.epochs))
    return started


def test_trials_group_by_optimizer_family_seed_and_next_epoch(write_config: Callable[..., Path]) -> None:
    hypermodel = _hypermodel(write_config)
    trials = _trials(hypermodel, _Tuner(hypermodel, _Oracle()), [0.1, 0.2, 0.3, 0.4, 0.5])
    trials[1].config = override(trials[1].config, {"train.optimizer": "momentum"})  # SGD's family still
    trials[2].config = override(trials[2].config, {"train.optimizer": "adam"})
    trials[3].config = override(trials[3].config, {"train.seed": 7})
    trials[4].record.history = {"loss": [1.0]}  # one epoch ahead of the others
    groups = [[t.trial.trial_id for t in group] for group in packing.groups(trials)]
    assert groups == [["0", "1"], ["2"], ["3"], ["4"]]


def test_a_pack_trains_every_trial_to_its_end_and_a_diverging_one_ends_alone(
    write_config: Callable[..., Path],
) -> None:
    hypermodel = _hypermodel(write_config, "[data]\nscale = false")
    tuner = _Tuner(hypermodel, _Oracle())
    trials = _trials(hypermodel, tuner, [0.5, 1e36])
    packing.train_pack(tuner, trials)
    (first, failed, why), second = tuner.ended
    assert (first, failed, second) == ("1", FAILED, ("0", COMPLETED, None))
    assert re.fullmatch(r"diverged: training loss became nan at epoch 1, batch \d+", why), why
    assert tuner.oracle.reports == [("0", 0), ("0", 1)]  # the diverged trial reported no epoch
    healthy, diverged = (rundir.read_record(t.run_dir) for t in trials)
    assert diverged["status"] == "diverged" and diverged["epochs_completed"] == 0
    assert healthy["status"] == "completed" and healthy["epochs_completed"] == 2
    lanes = [["0", "1"][a:b] for a, b in lane.ranges(2)]  # one per core
    assert healthy["packed"] == {"trials": ["0", "1"], "micro_batch": 16, "lanes": lanes}
    assert healthy["best"]["epoch"] in (1, 2)
    assert all((t.run_dir / rundir.MODEL).is_file() and checkpoint.latest(t.run_dir) is None for t in trials)


def test_a_stopped_pack_leaves_resumable_trials_and_a_restart_finishes_them(
    write_config: Callable[..., Path],
) -> None:
    hypermodel = _hypermodel(write_config, "[train]\nepochs = 3")

    def stop_after_first_epoch(trial_id: str, step: int) -> None:
        hypermodel.stop.request()  # as a Ctrl-C while the pack's first epoch is being saved

    tuner = _Tuner(hypermodel, _Oracle(stop_after_first_epoch))
    trials = _trials(hypermodel, tuner, [0.1, 0.2])
    with pytest.raises(TfsoftmaxError) as info:
        packing.train_pack(tuner, trials)
    assert str(info.value) == "interrupted after 1 finished epoch(s) of the packed trials 0, 1"
    assert info.value.exit_code == INTERRUPTED and tuner.ended == []
    cut = [rundir.read_record(t.run_dir) for t in trials]
    assert [(r["status"], r["epochs_completed"]) for r in cut] == [("interrupted", 1)] * 2
    assert [checkpoint.latest(t.run_dir)[0] for t in trials] == [1, 1]

    hypermodel.stop = StopSignal()  # a new process
    tuner = _Tuner(hypermodel, _Oracle())
    packing.train_pack(tuner, _trials(hypermodel, tuner, [0.1, 0.2]))
    records = [rundir.read_record(t.run_dir) for t in trials]
    assert [(r["status"], r["epochs_completed"], r["resumed_at_epochs"]) for r in records] == [
        ("completed", 3, [1])
    ] * 2
    assert all(r["history"]["steps"] == [7, 7, 7] for r in records)
    assert sorted(tuner.oracle.reports) == [(t, e) for t in "01" for e in (1, 2)]

    # Started again after both completed (a restarted sweep): reported to the oracle, ended, not retrained.
    written = [(t.run_dir / rundir.RECORD).stat().st_mtime_ns for t in trials]
    tuner = _Tuner(hypermodel, _Oracle())
    again = _trials(hypermodel, tuner, [0.1, 0.2])
    assert all(t.finished_before and t.done for t in again)
    packing.train_pack(tuner, again)
    assert sorted(tuner.oracle.reports) == [(t, e) for t in "01" for e in range(3)]
    assert [(t, status) for t, status, _ in tuner.ended] == [("0", COMPLETED), ("1", COMPLETED)]
    assert [(t.run_dir / rundir.RECORD).stat().st_mtime_ns for t in trials] == written


def test_a_trial_another_worker_took_is_dropped_and_its_mate_goes_on(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    hypermodel = _hypermodel(write_config)

    def chief_gave_away(trial_id: str, step: int) -> None:
        if trial_id == "1":
            raise kt_private.LeaseLost("trial 1 is leased to worker1")

    tuner = _Tuner(hypermodel, _Oracle(chief_gave_away))
    trials = _trials(hypermodel, tuner, [0.1, 0.2])
    packing.train_pack(tuner, trials)
    assert trials[1].lost and trials[1].record.ended
    assert "sweep worker: trial 1 is leased to worker1; dropping it from this pack" in capsys.readouterr().out
    assert [t for t, _, _ in tuner.ended] == ["0"]  # the chief ends the other worker's trial, not this one
    taken = rundir.read_record(trials[1].run_dir)
    assert taken["status"] == "running" and taken["epochs_completed"] == 1
    assert rundir.read_record(trials[0].run_dir)["status"] == "completed"


def test_a_packed_hyperband_asks_keras_tuners_rounds_one_at_a_time(tmp_path: Path) -> None:
    """Against keras-tuner's own HyperbandOracle: each ask takes exactly one round (its trials share their
    epochs), the rounds come in the oracle's order, and `estimate` counts the same rounds."""
    import random

    from tfsoftmax.sweeps import estimate

    epochs = Config().trial_epochs
    hp = keras_tuner.HyperParameters()
    hp.Float("x", 0.0, 1.0)
    oracle = keras_tuner.Hyperband(
        hypermodel=lambda hp: None,
        objective=keras_tuner.Objective("score", "max"),
        max_epochs=epochs,
        factor=estimate.HYPERBAND_FACTOR,
        seed=1,
        hyperparameters=hp,
        directory=str(tmp_path),
    ).oracle
    scores, rounds = random.Random(0), []
    while True:
        asked = []
        for k in range(kt_private.round_size(oracle, 16)):
            trial = oracle.create_trial(kt_private.slot_id("w", k))
            if trial.status != kt_private.RUNNING:
                break
            asked.append(trial)
        if not asked:
            break
        budgets = {
            (t.hyperparameters.values["tuner/initial_epoch"], t.hyperparameters.values["tuner/epochs"]) for t in asked
        }
        assert len(budgets) == 1, budgets  # one round: one epoch budget
        rounds.append((len(asked), *budgets.pop()))
        for trial in asked:
            oracle.update_trial(trial.trial_id, {"score": scores.random()}, step=0)
            trial.status = COMPLETED
            oracle.end_trial(trial)
    assert rounds == estimate.hyperband_rounds(epochs, estimate.HYPERBAND_FACTOR)
    assert sum(n for n, _, _ in rounds) == estimate.count_trials(override(Config(), {"sweep.algorithm": "hyperband"}))
