"""One trial of a pack as a run directory: which config keys a pack member takes, a trial's record resumed
and ended, and an epoch's TensorBoard tags, record and checkpoint as the packed pass writes them."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from tfsoftmax.config import Config
from tfsoftmax.config.loader import override
from tfsoftmax.rundir import checkpoint
from tfsoftmax.rundir import layout as rundir
from tfsoftmax.training import epoch
from tfsoftmax.training.pack import Member, Pack
from tfsoftmax.training.packed_trial import PackedTrial, family, log_epoch, member, save_epoch

from conftest import event_steps, striped

PATHS = ["softmax_regression/dense/kernel", "softmax_regression/dense/bias"]


@pytest.mark.parametrize(
    "values, expected, pack_family",
    [
        ({"train.optimizer": "sgd", "train.lr": 0.3}, Member(0.3, 256, 0.0, 0.0), "sgd"),
        ({"train.optimizer": "momentum", "train.momentum": 0.8}, Member(0.1, 256, 0.8, 0.0), "sgd"),
        ({"train.optimizer": "adam", "data.batch_size": 32}, Member(0.1, 32, 0.0, 0.0), "adam"),
        ({"train.weight_decay": 0.01, "train.momentum": 0.5}, Member(0.1, 256, 0.0, 0.01), "sgd"),  # sgd: no momentum
    ],
)
def test_a_config_maps_to_its_pack_member_and_family(values: dict, expected: Member, pack_family: str) -> None:
    config = override(Config(), values)
    assert member(config) == expected and family(config) == pack_family


def _trial(tmp_path: Path, resume: checkpoint.Resume | None = None, **values: Any) -> PackedTrial:
    config = override(Config(), {"train.epochs": 4, "data.batch_size": 16, **values})
    run_dir = tmp_path / "0" / "execution0"
    run_dir.mkdir(parents=True, exist_ok=True)
    return PackedTrial(SimpleNamespace(trial_id="0"), config, run_dir, resume, None, 0)


def _history(val_accuracy: list[float]) -> dict[str, list[float]]:
    n = len(val_accuracy)
    return {"loss": [1.0] * n, "accuracy": [0.5] * n, "val_accuracy": val_accuracy, "val_loss": [1.0] * n}


def test_a_resumed_trial_keeps_its_epochs_and_patience(tmp_path: Path) -> None:
    resume = checkpoint.Resume(2, None, _history([0.6, 0.5]), 0, [], best=["kept"])
    t = _trial(tmp_path, resume, **{"train.early_stopping": 1})
    assert t.record.name == "0" and t.record.next_epoch == 2 and t.record.resumed == [2]
    assert t.record.kept_epoch == 1 and t.record.stopped and t.done  # out of patience before the interruption
    fresh = _trial(tmp_path)
    assert not fresh.done and fresh.record.patience is None and fresh.member == member(fresh.config)
    fresh.lost = True  # another worker took it
    assert fresh.done
    finished = _trial(tmp_path)
    finished.finished_before = True
    assert finished.done


def test_an_epoch_is_logged_recorded_and_saved_as_keras_would(tmp_path: Path) -> None:
    t = _trial(tmp_path, **{"train.early_stopping": 2, "train.lr": 0.5})
    xy = striped(48)
    start = (np.zeros((784, 10), np.float32), np.zeros(10, np.float32))
    pack = Pack(xy, 0, [t.member], "sgd", [start])
    for i in range(2):
        result = pack.epoch(i)
        val_loss, val_accuracy = pack.evaluate(*xy)
        logs = epoch.logs(result.loss[0], result.accuracy[0], (val_loss[0], val_accuracy[0]), 0.5, 1000.0)
        log_epoch(pack, 0, t, i, logs, PATHS)
        save_epoch(pack, 0, t, i, logs, int(result.steps[0]), 0.25)
    t.close()
    record = rundir.read_record(t.run_dir)
    assert record["status"] == "running" and record["epochs_completed"] == 2 and record["kept_epoch"] >= 1
    assert list(record["history"]) == [*logs, epoch.STEPS, epoch.TIME]
    assert record["history"]["steps"] == [3, 3] and record["history"]["time_s"] == [0.25, 0.25]
    assert json.loads((t.run_dir / rundir.RECORD).read_text())["packed"] == {}  # packing fills it in
    saved, path = checkpoint.latest(t.run_dir)
    state = checkpoint.load_packed(path)
    assert saved == 2 and {"kernel", "bias", "v/kernel", "v/bias", "steps"} <= set(state)
    np.testing.assert_array_equal(state["kernel"], pack.weights(0)[0])
    with np.load(path) as stored:  # the kept epoch's weights pair with the checkpoint in one file
        assert {"best/0", "best/1"} <= set(stored.files)
    expected = epoch.scalars(logs)
    train_tags = [*expected[epoch.TRAIN_RUN], epoch.TIME_TAG, *map(epoch.histogram_tag, PATHS)]
    for run, tags in ((epoch.TRAIN_RUN, train_tags), (epoch.VALIDATION_RUN, list(expected[epoch.VALIDATION_RUN]))):
        for tag in tags:
            assert event_steps(t.run_dir / run, tag) == {0: 1, 1: 1}, (run, tag)


def test_histograms_follow_the_logging_switch(tmp_path: Path) -> None:
    t = _trial(tmp_path, **{"logging.histograms": False})
    xy = striped(48)
    pack = Pack(xy, 0, [t.member], "sgd", [(np.zeros((784, 10), np.float32), np.zeros(10, np.float32))])
    result = pack.epoch(0)
    log_epoch(pack, 0, t, 0, epoch.logs(result.loss[0], result.accuracy[0], None, 0.1, 1.0), PATHS)
    t.close()
    assert event_steps(t.run_dir / epoch.TRAIN_RUN, epoch.histogram_tag(PATHS[0])) == {}
    assert event_steps(t.run_dir / epoch.TRAIN_RUN, "epoch_loss") == {0: 1}
    assert not (t.run_dir / epoch.VALIDATION_RUN).exists()  # no validation split, no validation run
