"""What a resume may trust: a run directory's record and checkpoint must prove the same finished epochs (the
record may lead by the one epoch whose checkpoint was not written yet); anything else is refused in one
line naming the folder and what disagrees, before TensorFlow loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tfsoftmax.config import Config
from tfsoftmax.config.loader import override
from tfsoftmax.errors import RUNTIME_ERROR, TfsoftmaxError
from tfsoftmax.rundir import checkpoint
from tfsoftmax.rundir import layout as rundir


def _folder(tmp_path: Path, epochs: int | None, saved: int | None, **record: Any) -> Path:
    """A run directory whose record holds `epochs` finished epochs (None: no record) and whose checkpoint
    holds `saved` (None: none)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    rundir.write_config(run_dir, override(Config(), {"logging.root": str(tmp_path)}), "")
    if epochs is not None:
        history = {"loss": [1.0] * epochs, "steps": [7] * epochs}
        rundir.write_record(
            run_dir, rundir.run_record("interrupted", 30, history, **record) | {"epochs_completed": epochs}
        )
    if saved is not None:
        checkpoint.save_arrays(run_dir, saved, {"model/0": np.zeros(2)})
    return run_dir


@pytest.mark.parametrize(
    "epochs, saved, first_epoch",
    [
        (None, None, 0),  # stopped before its first epoch ended
        (0, None, 0),
        (1, None, 0),  # the first epoch's checkpoint was never written: it trains again
        (3, 3, 0),
        (4, 3, 0),  # the record leads by one
        (2, 5, 3),  # a continued Hyperband trial: its history starts at epoch 3
    ],
)
def test_a_record_and_checkpoint_that_agree_resume(
    tmp_path: Path, epochs: int | None, saved: int | None, first_epoch: int
) -> None:
    run_dir = _folder(tmp_path, epochs, saved, first_epoch=first_epoch)
    record = checkpoint.resumable(run_dir)
    point = checkpoint.resume_point(run_dir, record)
    assert point.epoch == (saved or first_epoch)
    assert len(point.history.get("loss", [])) == point.epoch - first_epoch


@pytest.mark.parametrize(
    "epochs, saved, why",
    [
        (
            None,
            3,
            "checkpoint/epoch-0003.npz holds 3 finished epoch(s), but metrics.json, the record of what they were, is missing",
        ),
        (2, None, "metrics.json holds 2 finished epoch(s), but there is no checkpoint to continue"),
        (27, 3, "checkpoint/epoch-0003.npz holds 3 finished epoch(s), but metrics.json holds 27"),
        (2, 3, "checkpoint/epoch-0003.npz holds 3 finished epoch(s), but metrics.json holds 2"),
    ],
)
def test_epochs_the_folder_cannot_prove_are_refused_in_one_line(
    tmp_path: Path, epochs: int | None, saved: int | None, why: str
) -> None:
    run_dir = _folder(tmp_path, epochs, saved)
    for check in (checkpoint.resumable, lambda d: checkpoint.resume_point(d, rundir.read_record(d))):
        with pytest.raises(TfsoftmaxError) as info:
            check(run_dir)
        assert str(info.value) == f"cannot resume {run_dir}: {why}; start a new run"
        assert info.value.exit_code == RUNTIME_ERROR and not info.value.resumable


def test_a_record_whose_history_is_not_its_epochs_is_refused(tmp_path: Path) -> None:
    run_dir = _folder(tmp_path, 3, 3)
    record = rundir.read_record(run_dir)
    del record["history"]["loss"]  # every other key still holds 3 epochs: the schema alone allows it
    rundir.write_record(run_dir, record)
    with pytest.raises(TfsoftmaxError, match=r"metrics.json says 3 epoch\(s\) completed, but its history holds 0"):
        checkpoint.resumable(run_dir)
    record["history"]["loss"] = [1.0, 1.0]
    rundir.write_record(run_dir, record)
    with pytest.raises(TfsoftmaxError, match=r"metrics.json: history.loss: 2 values for 3 completed epochs$") as info:
        checkpoint.resumable(run_dir)
    assert info.value.exit_code == RUNTIME_ERROR


def test_a_sweep_trial_that_cannot_be_proven_says_how_to_train_it_again(tmp_path: Path) -> None:
    trial = tmp_path / "sweep" / "0" / "execution0"
    trial.mkdir(parents=True)
    (tmp_path / "sweep" / "tuner").mkdir()
    (tmp_path / "sweep" / "tuner" / "oracle.json").write_text("{}")
    checkpoint.save_arrays(trial, 2, {"packed/kernel": np.zeros(2)})
    with pytest.raises(TfsoftmaxError) as info:
        checkpoint.resume_point(trial, None)
    assert str(info.value).endswith("is missing; remove it and run the same sweep command again")
