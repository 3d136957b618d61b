"""Scale-out with every timing and pack key at its default: the launcher's workers share the trials (a packed
Hyperband's too), and a worker killed for good costs its trials' lost epochs, not the sweep. Counted from
each trial's `environment.json`, as a user would."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tfsoftmax.config.loader import load_config
from tfsoftmax.distributed.launcher import free_port
from tfsoftmax.sweeps import estimate, tune

from conftest import child_env, tfsoftmax_command
from sweep_helpers import processes_mentioning, sweep_file, trial_records

SPACE = '"train.lr" = { min = 0.01, max = 1.0, sampling = "log" }'


def _runner(sweep: Path, trial: str) -> str:
    return json.loads((sweep / trial / "execution0" / "environment.json").read_text())["tuner_id"]


def _runners(sweep: Path) -> Counter[str]:
    return Counter(_runner(sweep, t) for t in trial_records(sweep))


def _ended_once(sweep: Path, trials: int) -> bool:
    ids = [str(i) for i in range(trials)]
    states = {
        p.parent.name.removeprefix("trial_"): json.loads(p.read_text())["status"]
        for p in sweep.glob("tuner/trial_*/trial.json")
    }
    end_order = json.loads((sweep / "tuner" / "oracle.json").read_text())["end_order"]
    return states == dict.fromkeys(ids, "COMPLETED") and sorted(end_order) == ids


@pytest.mark.slow
def test_two_launched_workers_each_train_their_share_of_eight_trials_every_time(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    # Trials of 40 epochs: a worker's first share must still be training when the other, started with it,
    # asks for its own (a share shrinks as trials finish, so a worker done before the other asks takes more).
    path = sweep_file(write_config, SPACE, trials=8, epochs=40)
    sweep = tune.sweep_dir(load_config(path))
    for attempt in range(3):
        command = tfsoftmax_command("sweep", str(path), "--workers", "2", "--overwrite")
        result = subprocess.run(command, env=child_env(), capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        runners = _runners(sweep)
        print(f"\nsweep {attempt + 1}: trials per worker {dict(runners)}")
        assert sum(runners.values()) == 8 and _ended_once(sweep, 8)
        assert set(runners) == {"worker0", "worker1"} and min(runners.values()) >= 3, runners
        assert processes_mentioning(str(tmp_path)) == []


@pytest.mark.slow
def test_a_worker_killed_for_good_costs_its_trials_epochs_not_the_sweep(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    path = sweep_file(write_config, SPACE, trials=6, epochs=60)
    sweep = tune.sweep_dir(load_config(path))
    oracle = f"127.0.0.1:{free_port()}"
    processes: dict[str, subprocess.Popen] = {}
    for tuner_id in ("chief", "w0", "w1"):
        role = "chief" if tuner_id == "chief" else "worker"
        log = open(tmp_path / f"{tuner_id}.log", "w")  # noqa: SIM115 (closed with the process)
        processes[tuner_id] = subprocess.Popen(
            tfsoftmax_command("sweep", str(path), "--role", role, "--oracle", oracle),
            env={**child_env(), "KERASTUNER_TUNER_ID": tuner_id},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        held: dict[str, list[str]] = {}
        deadline = time.monotonic() + 240
        while not held:
            assert time.monotonic() < deadline and processes["chief"].poll() is None
            for trial, record in trial_records(sweep).items():
                if record["status"] == "running" and record["epochs_completed"] >= 1:
                    held.setdefault(_runner(sweep, trial), []).append(trial)
            time.sleep(0.05)
        victim = sorted(held)[0]
        processes[victim].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        survivor = "w1" if victim == "w0" else "w0"
        assert processes["chief"].wait(timeout=90) == 0, (tmp_path / "chief.log").read_text()
        took = time.monotonic() - killed
        assert processes[survivor].wait(timeout=max(90 - took, 1)) == 0, (tmp_path / f"{survivor}.log").read_text()
        took = time.monotonic() - killed
    finally:
        for process in processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    print(f"\n{victim} killed; the sweep ended {took:.1f} s later\n" + (tmp_path / "chief.log").read_text())
    assert took < 90
    assert _ended_once(sweep, 6)
    records = trial_records(sweep)
    assert sorted(records) == [str(i) for i in range(6)]
    assert all(r["status"] == "completed" and r["epochs_completed"] == 60 for r in records.values())
    for trial in held[victim]:  # the survivor continued them from their last epoch checkpoints
        assert _runner(sweep, trial) == survivor and records[trial]["resumed_at_epochs"][0] >= 1, records[trial]
    assert processes_mentioning(str(tmp_path)) == []


@pytest.mark.slow
def test_two_launched_workers_share_a_packed_hyperband_search(write_config: Callable[..., Path]) -> None:
    path = sweep_file(write_config, SPACE, algorithm="hyperband", epochs=4)
    config = load_config(path)
    sweep = tune.sweep_dir(config)
    command = tfsoftmax_command("sweep", str(path), "--workers", "2")
    result = subprocess.run(command, env=child_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    records = trial_records(sweep)
    print(f"\ntrials per worker {dict(_runners(sweep))}")
    assert len(records) == estimate.count_trials(config) and set(_runners(sweep)) == {"worker0", "worker1"}
    assert all(r["status"] == "completed" and "trials" in r["packed"] for r in records.values())
    saved = [json.loads(p.read_text()) for p in sweep.glob("tuner/trial_*/trial.json")]
    assert {t["status"] for t in saved} == {"COMPLETED"} and len(saved) == len(records)
    continued = [r for r in records.values() if r.get("first_epoch", 0) > 0]
    assert continued  # promoted trials went on from their parents' epochs, on whichever worker
    assert all(len(r["history"]["loss"]) == r["epochs_planned"] - r["first_epoch"] for r in continued)
