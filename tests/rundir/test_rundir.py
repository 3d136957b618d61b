"""The run directory's format: new folders never reuse a name, the record reads back what was written (with
its format version), a broken or newer record is one line naming the file, and a sweep's trials are told
apart from runs."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from tfsoftmax.config import Config
from tfsoftmax.config.loader import override
from tfsoftmax.errors import TfsoftmaxError
from tfsoftmax.rundir import layout as rundir


def _config(tmp_path: Path, **values: Any) -> Config:
    return override(Config(), {"logging.root": str(tmp_path / "logs"), "logging.experiment": "exp", **values})


def _record(**changes: Any) -> dict[str, Any]:
    record = {
        "status": "running",
        "epochs_completed": 2,
        "epochs_planned": 5,
        "history": {"loss": [0.9, 0.5], "val_accuracy": [0.7, 0.8], "steps": [7, 7]},
        "test": None,
        "wall_time_s": None,
    }
    return {**record, **changes}


def test_create_gives_a_taken_name_a_suffix(tmp_path: Path) -> None:
    config = _config(tmp_path, **{"logging.run_name": "same"})
    made = [rundir.create(config) for _ in range(3)]
    assert [p.name for p in made] == ["same", "same-2", "same-3"]
    assert all(p.parent == rundir.experiment_dir(config) == tmp_path / "logs" / "exp" for p in made)
    assert all(p.is_dir() and not any(p.iterdir()) for p in made)


def test_create_without_a_run_name_names_the_folder_by_time(tmp_path: Path) -> None:
    first, second = rundir.create(_config(tmp_path)), rundir.create(_config(tmp_path))
    assert re.fullmatch(r"\d{8}-\d{6}", first.name), first.name
    # Within the same second the name is taken, so the second folder gets a suffix.
    assert re.fullmatch(rf"{first.name}-2|\d{{8}}-\d{{6}}", second.name) and second != first


def test_record_round_trip_with_format_version(tmp_path: Path) -> None:
    written = _record(
        status="completed",
        test={"loss": 0.4, "accuracy": 0.9},
        wall_time_s=3,
        history={"loss": [float("nan"), 1], "val_loss": [float("inf"), 0.5]},
    )
    rundir.write_record(tmp_path, written)
    on_disk = json.loads((tmp_path / rundir.RECORD).read_text())
    assert on_disk["format"] == rundir.FORMAT_VERSION
    assert on_disk["history"]["loss"][0] == "NaN" and on_disk["history"]["val_loss"][0] == "Infinity"
    read = rundir.read_record(tmp_path)
    assert read["format"] == rundir.FORMAT_VERSION and read["status"] == "completed"
    assert math.isnan(read["history"]["loss"][0]) and read["history"]["loss"][1] == 1.0
    assert read["history"]["val_loss"] == [math.inf, 0.5]
    assert read["test"] == {"loss": 0.4, "accuracy": 0.9} and read["wall_time_s"] == 3.0
    assert all(isinstance(v, float) for values in read["history"].values() for v in values)
    assert read["epochs_planned"] == 5  # keys beyond the schema are kept


def test_no_record_yet_is_none(tmp_path: Path) -> None:
    assert rundir.read_record(tmp_path) is None


def test_newer_format_is_refused_in_one_line(tmp_path: Path) -> None:
    newer = rundir.FORMAT_VERSION + 1
    (tmp_path / rundir.RECORD).write_text(json.dumps({**_record(), "format": newer}))
    with pytest.raises(TfsoftmaxError) as info:
        rundir.read_record(tmp_path)
    assert str(info.value) == (
        f"{tmp_path / rundir.RECORD}: record format {newer} is newer than this tfsoftmax "
        f"reads ({rundir.FORMAT_VERSION}); upgrade tfsoftmax"
    )
    assert info.value.exit_code == 1


@pytest.mark.parametrize(
    "text, reason",
    [
        ('{"status": "runn', "unreadable or half-written record (Unterminated string"),
        ("", "unreadable or half-written record (Expecting value"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"status": "completed"}', "missing key(s) epochs_completed, history, test, wall_time_s; expected status, "),
        (json.dumps(_record(status="done")), 'status: got "done"; expected one of running, completed,'),
        (json.dumps(_record(epochs_completed=-1)), "epochs_completed: expected an integer >= 0, got -1"),
        (json.dumps(_record(epochs_completed=3)), "history.loss: 2 values for 3 completed epochs"),
        (json.dumps(_record(history={"loss": [1, "x"]})), 'history.loss: expected numbers, got [1, "x"]'),
        (json.dumps(_record(test={"loss": 0.5})), "test: expected null or an object of numbers with accuracy"),
        (json.dumps(_record(wall_time_s="long")), 'wall_time_s: expected a number or null, got "long"'),
    ],
)
def test_broken_record_is_one_line_naming_the_file(tmp_path: Path, text: str, reason: str) -> None:
    (tmp_path / rundir.RECORD).write_text(text)
    with pytest.raises(TfsoftmaxError) as info:
        rundir.read_record(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / rundir.RECORD}: {reason}"), message
    assert "\n" not in message and info.value.exit_code == 1


def test_config_round_trip_says_how_to_rerun_and_resume(tmp_path: Path) -> None:
    config = _config(tmp_path, **{"train.lr": 0.3})
    rundir.write_config(tmp_path, config, "tfsoftmax run --resume here")
    assert rundir.read_config(tmp_path) == config
    text = (tmp_path / rundir.CONFIG).read_text()
    assert f"tfsoftmax run {tmp_path / rundir.CONFIG}" in text and "tfsoftmax run --resume here" in text


def test_is_run_needs_the_config_and_the_record(tmp_path: Path) -> None:
    assert not rundir.is_run(tmp_path)
    rundir.write_record(tmp_path, _record())
    assert not rundir.is_run(tmp_path)
    rundir.write_config(tmp_path, _config(tmp_path), "")
    assert rundir.is_run(tmp_path)


def test_trials_and_sweeps_are_told_apart_from_runs(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    execution = rundir.trial_dir(sweep, "03") / f"{rundir.EXECUTION}2"
    execution.mkdir(parents=True)
    alone = tmp_path / "exp" / "0" / f"{rundir.EXECUTION}0"  # named like one, outside any sweep
    alone.mkdir(parents=True)
    assert not rundir.is_sweep(sweep) and not rundir.is_trial(execution)
    (sweep / rundir.TUNER_PROJECT).mkdir()
    (sweep / rundir.TUNER_PROJECT / rundir.ORACLE).write_text("{}")
    assert rundir.is_sweep(sweep) and not rundir.is_sweep(execution)
    assert rundir.is_trial(execution) and rundir.sweep_of(execution) == sweep
    assert not rundir.is_trial(alone) and rundir.sweep_of(alone) is None
    assert rundir.execution_index(execution) == 2


def test_execution_dirs_are_in_execution_order(tmp_path: Path) -> None:
    for n in (10, 2, 0):
        (tmp_path / f"{rundir.EXECUTION}{n}").mkdir()
    assert [rundir.execution_index(p) for p in rundir.execution_dirs(tmp_path)] == [0, 2, 10]


@pytest.mark.parametrize(
    "metric, values, best",
    [
        ("val_accuracy", [0.5, 0.8, 0.8, 0.7], 1),  # the highest, the first of equals
        ("accuracy", [float("nan"), 0.2, 0.1], 1),
        ("val_loss", [1.0, 0.4, float("nan"), 0.6], 1),  # the lowest; NaN is never best
        ("loss", [float("inf"), 2.0], 1),
        ("val_loss", [float("nan")], None),
        ("val_accuracy", [], None),
    ],
)
def test_best_epoch_by_the_metrics_direction(metric: str, values: list[float], best: int | None) -> None:
    assert rundir.best_epoch({metric: values}, metric) == best


def test_best_epoch_of_a_metric_never_logged_is_none() -> None:
    assert rundir.best_epoch({"loss": [1.0]}, "val_accuracy") is None
