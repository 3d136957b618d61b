"""Stopping and resuming a sweep, and sweeping across processes: a signal mid-trial, a stop between
trials, an error that ends the search, a resumed grid, and workers that share the trials."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tfsoftmax.config.loader import load_config, override
from tfsoftmax.errors import RUNTIME_ERROR, TfsoftmaxError
from tfsoftmax.sweeps import tune, tuners
from tfsoftmax.training import train

from conftest import child_env, interruptible_child, tfsoftmax_command
from sweep_helpers import processes_mentioning, sweep_file, trial_records


def _sweep_cli(path: Path, *extra: str) -> list[str]:
    return tfsoftmax_command("sweep", str(path), *extra)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_interrupted_sweep_resumes_without_repeating_trials(
    write_config: Callable[..., Path], sig: signal.Signals
) -> None:
    # Trials trained one by one (packed ones: test_pack.py).
    path = sweep_file(
        write_config, '"train.lr" = { values = [0.1, 0.2, 0.3] }', trials=3, epochs=120, algorithm="grid", pack=1
    )
    config = load_config(path)
    sweep = tune.sweep_dir(config)
    process = interruptible_child(_sweep_cli(path))
    deadline = time.monotonic() + 240

    def mid_trial() -> bool:  # one trial finished, the next one part-way
        records = trial_records(sweep).values()
        return any(r["status"] == "completed" for r in records) and any(
            r["status"] == "running" and r["epochs_completed"] >= 2 for r in records
        )

    while not mid_trial():
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.1)
    finished_before = {
        t: (sweep / t / "execution0" / "metrics.json").stat().st_mtime_ns
        for t, r in trial_records(sweep).items()
        if r["status"] == "completed"
    }
    process.send_signal(sig)
    err = process.communicate(timeout=60)[1]
    if sig != signal.SIGKILL:
        assert process.returncode == 130 and "tfsoftmax: error: interrupted" in err, err[-3000:]
        assert "interrupted" in [r["status"] for r in trial_records(sweep).values()]
    else:
        assert process.returncode == -signal.SIGKILL
    assert any(r["status"] != "completed" for r in trial_records(sweep).values()) or len(trial_records(sweep)) < 3
    resumed = subprocess.run(_sweep_cli(path), env=child_env(), capture_output=True, text=True, timeout=400)
    assert resumed.returncode == 0, resumed.stderr
    records = trial_records(sweep)
    assert sorted(records) == ["0", "1", "2"]
    assert all(r["status"] == "completed" for r in records.values())
    for trial, mtime in finished_before.items():  # finished trials are kept, not run again
        assert (sweep / trial / "execution0" / "metrics.json").stat().st_mtime_ns == mtime
    # The trial cut part-way continued from its last finished epoch, and no trial keeps its
    # resume checkpoint once finished: only keras-tuner's best-epoch weights stay.
    resumed_at = [r["resumed_at_epochs"] for r in records.values() if "resumed_at_epochs" in r]
    assert len(resumed_at) == 1 and resumed_at[0][0] >= 1, records  # a kill may leave it one epoch behind
    assert all(r["epochs_completed"] == 120 and r["history"]["steps"] == [7] * 120 for r in records.values())
    assert list(sweep.glob("*/execution0/checkpoint")) == []
    assert len(list(sweep.glob("tuner/trial_*/checkpoint.weights.h5"))) == 3
    rows = json.loads((sweep / "results.json").read_text())["trials"]
    assert sorted(r["trial_id"] for r in rows) == ["0", "1", "2"]
    again = subprocess.run(_sweep_cli(path), env=child_env(), capture_output=True, text=True, timeout=400)
    assert again.returncode == 0 and "Running Trial" not in again.stdout  # a finished sweep runs nothing


@pytest.mark.slow
def test_two_workers_share_the_trials_and_leave_no_process(write_config: Callable[..., Path], tmp_path: Path) -> None:
    # Trials of 40 epochs: a worker's first pack must still be training when the other, started with it,
    # asks; with 3 a fresh clone's CI once saw the first worker end all six before the second asked.
    path = sweep_file(
        write_config,
        '"train.lr" = { values = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6] }',
        trials=6,
        epochs=40,
        algorithm="grid",
        pack=2,
    )
    result = subprocess.run(
        _sweep_cli(path, "--workers", "2"), env=child_env(), capture_output=True, text=True, timeout=500
    )
    assert result.returncode == 0, result.stderr
    sweep = tune.sweep_dir(load_config(path))
    records = trial_records(sweep)
    assert sorted(records) == [str(i) for i in range(6)]
    assert all(r["status"] == "completed" for r in records.values())
    runners = {json.loads((sweep / t / "execution0" / "environment.json").read_text())["tuner_id"] for t in records}
    assert runners == {"worker0", "worker1"}
    assert max(len(r["packed"]["trials"]) for r in records.values()) == 2  # each worker trains packs of 2
    assert "workers: worker0, worker1" in result.stdout and (sweep / "best.toml").is_file()
    assert processes_mentioning(str(tmp_path)) == []  # the config the processes read lies under it too
    assert list(sweep.parent.glob(".sw.sweep.toml")) == []


@pytest.mark.parametrize("pack", [1, 2])
def test_an_error_inside_a_trial_stops_the_search_as_our_own_error(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, pack: int
) -> None:
    import keras_tuner

    def full_disk(*args: object, **kwargs: object) -> None:
        raise TfsoftmaxError("cannot write in the trial: No space left on device", RUNTIME_ERROR, resumable=True)

    monkeypatch.setattr(train, "finish_trial", full_disk)
    config = load_config(
        sweep_file(write_config, '"train.lr" = { values = [0.1, 0.2] }', trials=2, algorithm="grid", pack=pack)
    )
    with pytest.raises(tuners.SearchStopped) as info:
        tune.search(config)
    # keras-tuner re-raised it as it is: not wrapped, not recorded as a failed trial with the search going on.
    assert isinstance(info.value, keras_tuner.errors.FatalError) and info.value.exit_code == RUNTIME_ERROR
    assert str(info.value) == (
        "cannot write in the trial: No space left on device; run the same sweep command again to resume"
    )
    records = trial_records(tune.sweep_dir(config))
    # Alone, the second trial never started; packed, it trained beside the first and says how it stopped.
    assert sorted(records) == (["0"] if pack == 1 else ["0", "1"])
    assert pack == 1 or records["1"]["status"] == "failed"


def test_a_stop_between_trials_starts_no_more(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tfsoftmax.training.stopping import StopSignal

    entered: list[StopSignal] = []

    class Recorded(StopSignal):
        def __enter__(self) -> StopSignal:
            entered.append(self)
            return super().__enter__()

    finish = train.finish_trial

    def finish_then_stop(*args: object, **kwargs: object) -> None:
        finish(*args, **kwargs)
        entered[0].request()  # as a Ctrl-C right after the trial's last epoch

    monkeypatch.setattr(tune, "StopSignal", Recorded)
    monkeypatch.setattr(train, "finish_trial", finish_then_stop)
    config = load_config(
        sweep_file(write_config, '"train.lr" = { values = [0.1, 0.2] }', trials=2, algorithm="grid", pack=1)
    )
    with pytest.raises(KeyboardInterrupt):
        tune.search(config)
    records = trial_records(tune.sweep_dir(config))
    assert sorted(records) == ["0"] and records["0"]["status"] == "completed"


@pytest.mark.slow
def test_a_resumed_grid_search_walks_on_from_where_it_stopped(write_config: Callable[..., Path]) -> None:
    config = load_config(
        sweep_file(write_config, '"train.lr" = { values = [0.1, 0.2, 0.3] }', trials=1, algorithm="grid")
    )
    tune.search(config)
    result = tune.search(override(config, {"sweep.max_trials": 3}))
    assert sorted(r.values["train.lr"] for r in result.rows) == [0.1, 0.2, 0.3]
