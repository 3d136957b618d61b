"""Distributed sweeps that survive a dead process: chief and workers started separately with `--role` on
127.0.0.1 and one shared log root, as on separate machines; and the `--workers` launcher."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tfsoftmax.config.loader import load_config
from tfsoftmax.distributed.launcher import free_port
from tfsoftmax.sweeps import tune

from conftest import child_env, tfsoftmax_command
from sweep_helpers import processes_mentioning, sweep_file, trial_records

SPACE = '"train.lr" = {{ values = [{values}] }}'
LEASE_S, CHIEF_TIMEOUT_S = 10, 8


def _grid(write_config: Callable[..., Path], trials: int, epochs: int) -> Path:
    """Packs of 2, so two workers each hold trials (a killed one holds a whole pack)."""
    values = ", ".join(f"0.{i + 1}" for i in range(trials))
    return sweep_file(write_config, SPACE.format(values=values), trials=trials, epochs=epochs, algorithm="grid", pack=2)


class Cluster:
    """Processes of one sweep, each in its own session so a kill reaches only it; all killed at the end."""

    def __init__(self, path: Path, oracle: str, tmp_path: Path) -> None:
        self.path, self.oracle, self.tmp_path = path, oracle, tmp_path
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, role: str, tuner_id: str) -> subprocess.Popen:
        command = tfsoftmax_command(
            "sweep", str(self.path), "--role", role, "--oracle", self.oracle,
            "--set", f"sweep.lease_s={LEASE_S}", "--set", f"sweep.chief_timeout_s={CHIEF_TIMEOUT_S}",
        )  # fmt: skip
        log = open(self.tmp_path / f"{tuner_id}.log", "w")  # noqa: SIM115 (closed with the process)
        env = {**child_env(), "KERASTUNER_TUNER_ID": tuner_id}
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes[tuner_id] = process
        return process

    def log(self, tuner_id: str) -> str:
        return (self.tmp_path / f"{tuner_id}.log").read_text()

    def kill_all(self) -> None:
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def cluster(write_config: Callable[..., Path], tmp_path: Path) -> Iterator[Callable[[Path], Cluster]]:
    made: list[Cluster] = []

    def make(path: Path) -> Cluster:
        made.append(Cluster(path, f"127.0.0.1:{free_port()}", tmp_path))
        return made[-1]

    yield make
    for c in made:
        c.kill_all()
    assert processes_mentioning(str(tmp_path)) == []


def _wait(check: Callable[[], bool], timeout: float, what: str) -> float:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return time.monotonic()


def _running_trial_of(sweep: Path, tuner_id: str) -> str | None:
    """A trial `tuner_id` is training with at least two finished epochs (so it has a checkpoint)."""
    for trial, record in trial_records(sweep).items():
        environment = json.loads((sweep / trial / "execution0" / "environment.json").read_text())
        if environment["tuner_id"] == tuner_id and record["status"] == "running" and record["epochs_completed"] >= 2:
            return trial
    return None


def _oracle_states(sweep: Path) -> tuple[dict[str, str], list[str]]:
    states = {
        p.parent.name.removeprefix("trial_"): json.loads(p.read_text())["status"]
        for p in (sweep / "tuner").glob("trial_*/trial.json")
    }
    return states, json.loads((sweep / "tuner" / "oracle.json").read_text())["end_order"]


class Context:
    """What a gRPC call's context offers the chief's service: the caller's id, and refusing the call."""

    def __init__(self, tuner_id: str) -> None:
        self.tuner_id = tuner_id

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        from tfsoftmax.sweeps import kt_private

        return ((kt_private.TUNER_KEY, self.tuner_id),)

    def abort(self, code: object, details: str) -> None:
        raise PermissionError(details)


def test_leases_hand_a_silent_workers_trial_on_then_fail_it_and_refuse_its_late_report(tmp_path: Path) -> None:
    import keras_tuner
    from keras_tuner.src import protos

    from tfsoftmax.distributed.lease import Leases
    from tfsoftmax.sweeps import kt_private

    space = keras_tuner.HyperParameters()
    space.Float("x", 0.0, 1.0)
    oracle = keras_tuner.oracles.RandomSearchOracle(
        objective="val_accuracy", max_trials=2, hyperparameters=space, seed=1
    )
    oracle._set_project_dir(str(tmp_path), "tuner")
    now = [0.0]
    chief = kt_private.LeasingServicer(oracle, Leases(lease_s=5, max_retries=1, expected=0, clock=lambda: now[0]), 2)
    service = protos.get_service()

    def ask(tuner_id: str) -> object:
        return chief.CreateTrial(service.CreateTrialRequest(tuner_id=tuner_id), Context(tuner_id)).trial

    first, second = ask("w0"), ask("w1")
    now[0] = 3.0  # w1 reports between epochs, w0 stays silent
    chief.UpdateTrial(service.UpdateTrialRequest(trial_id=second.trial_id, metrics={}, step=0), Context("w1"))
    now[0] = 6.0
    assert ask("w2").trial_id == first.trial_id  # w0's lease ran out: w2 continues its trial
    assert "w0" not in oracle.tuner_ids
    with pytest.raises(PermissionError, match=f"trial {first.trial_id} is no longer w0's"):
        late = service.UpdateTrialRequest(trial_id=first.trial_id, metrics={"val_accuracy": 0.9}, step=0)
        chief.UpdateTrial(late, Context("w0"))
    assert not oracle.trials[first.trial_id].metrics.exists("val_accuracy")  # the late report left no mark
    now[0] = 12.0  # both silent: trial 0 is handed on a second time, past max_retries = 1
    chief.done()
    assert oracle.trials[first.trial_id].status == "FAILED"
    assert "handed on more than sweep.max_retries = 1 times" in oracle.trials[first.trial_id].message
    assert oracle.trials[second.trial_id].status == "RUNNING" and not oracle.ongoing_trials
    assert ask("w3").trial_id == second.trial_id


def test_a_worker_with_another_sweep_is_refused_in_one_line(write_config: Callable[..., Path], tmp_path: Path) -> None:
    from tfsoftmax.config.loader import override
    from tfsoftmax.distributed import fingerprint
    from tfsoftmax.errors import TfsoftmaxError

    config = load_config(_grid(write_config, trials=2, epochs=1))
    with pytest.raises(TfsoftmaxError, match="no chief's sweep in .* after 0.1 s"):
        fingerprint.check(config, tmp_path, 0.1)
    moved = override(config, {"logging.root": str(tmp_path / "elsewhere"), "sweep.chief_timeout_s": 5.0})
    with fingerprint.published(config, tmp_path):
        fingerprint.check(moved, tmp_path, 0.1)  # another mount point and timeout: the same sweep
        with pytest.raises(TfsoftmaxError, match="sweep.seed is 3 here and 0 in the chief's") as info:
            fingerprint.check(override(config, {"sweep.seed": 3}), tmp_path, 0.1)
    assert info.value.exit_code == 2 and not (tmp_path / fingerprint.FILE).exists()


@pytest.mark.slow
def test_a_worker_killed_mid_trial_costs_its_trial_not_the_sweep(
    write_config: Callable[..., Path], cluster: Callable[[Path], Cluster]
) -> None:
    path = _grid(write_config, trials=4, epochs=40)
    sweep = tune.sweep_dir(load_config(path))
    c = cluster(path)
    chief = c.start("chief", "chief")
    workers = {w: c.start("worker", w) for w in ("w0", "w1")}
    _wait(lambda: _running_trial_of(sweep, "w1") is not None, 240, "w1 mid-trial")
    victim = _running_trial_of(sweep, "w1")
    workers["w1"].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    assert chief.wait(timeout=300) == 0, c.log("chief")
    took = time.monotonic() - killed
    assert workers["w0"].wait(timeout=60) == 0, c.log("w0")
    print(f"\nkill to chief's exit: {took:.1f} s\nchief:\n{c.log('chief')}\nw0:\n{c.log('w0')}")
    states, end_order = _oracle_states(sweep)
    assert states == dict.fromkeys(["0", "1", "2", "3"], "COMPLETED")
    assert sorted(end_order) == ["0", "1", "2", "3"]  # each trial ended exactly once
    records = trial_records(sweep)
    assert all(r["status"] == "completed" and r["epochs_completed"] == 40 for r in records.values())
    assert records[victim]["resumed_at_epochs"][0] >= 1  # continued from the dead worker's checkpoint
    environment = json.loads((sweep / victim / "execution0" / "environment.json").read_text())
    assert environment["tuner_id"] == "w0"
    assert f"chief: trial {victim} taken back: no report from w1 for {LEASE_S} s" in c.log("chief")
    result = tune.collect(load_config(path), time.perf_counter())
    assert sorted(r.trial_id for r in result.rows) == ["0", "1", "2", "3"]


def _worker_pid(tmp_path: Path, tuner_id: str) -> int | None:
    for pid in processes_mentioning(str(tmp_path)):
        with contextlib.suppress(OSError):
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if b"--role\0worker" in Path(f"/proc/{pid}/cmdline").read_bytes() and (
                f"KERASTUNER_TUNER_ID={tuner_id}".encode() in environ
            ):
                return pid
    return None


@pytest.mark.slow
def test_the_launcher_starts_a_killed_worker_again_and_the_command_completes(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    path = _grid(write_config, trials=4, epochs=40)
    sweep = tune.sweep_dir(load_config(path))
    command = tfsoftmax_command("sweep", str(path), "--workers", "2")
    launcher = subprocess.Popen(command, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait(lambda: _running_trial_of(sweep, "worker1") is not None, 240, "worker1 mid-trial")
        victim = _running_trial_of(sweep, "worker1")
        os.kill(_worker_pid(tmp_path, "worker1"), signal.SIGKILL)
        killed = time.monotonic()
        out, err = launcher.communicate(timeout=300)
        print(f"\nkill to the command's exit: {time.monotonic() - killed:.1f} s, exit code {launcher.returncode}")
        print(err[-2000:])
        left = processes_mentioning(str(tmp_path))  # the config the processes read lies under it too
    finally:
        for pid in [launcher.pid, *processes_mentioning(str(tmp_path))]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        launcher.wait()
    assert launcher.returncode == 0, err[-3000:]
    assert "sweep: worker1 was killed by SIGKILL; started it again (1 of 2, sweep.max_retries)" in err
    records = trial_records(sweep)
    assert sorted(records) == ["0", "1", "2", "3"]
    assert all(r["status"] == "completed" and r["epochs_completed"] == 40 for r in records.values())
    assert records[victim]["resumed_at_epochs"][0] >= 1
    states, end_order = _oracle_states(sweep)
    assert set(states.values()) == {"COMPLETED"} and sorted(end_order) == ["0", "1", "2", "3"]
    assert "workers: worker0, worker1" in out and (sweep / "best.toml").is_file()
    assert left == []


@pytest.mark.slow
def test_workers_of_a_killed_chief_exit_in_one_line_and_a_restarted_chief_resumes(
    write_config: Callable[..., Path], cluster: Callable[[Path], Cluster]
) -> None:
    path = _grid(write_config, trials=6, epochs=40)  # a third pack: running while the first is finished
    sweep = tune.sweep_dir(load_config(path))
    c = cluster(path)
    chief = c.start("chief", "chief")
    workers = {w: c.start("worker", w) for w in ("w0", "w1")}

    def mid_sweep() -> bool:
        records = trial_records(sweep).values()
        return any(r["status"] == "completed" for r in records) and any(
            r["status"] == "running" and r["epochs_completed"] >= 2 for r in records
        )

    _wait(mid_sweep, 240, "a finished trial and one mid-way")
    finished = {
        t: (sweep / t / "execution0" / "metrics.json").stat().st_mtime_ns
        for t, r in trial_records(sweep).items()
        if r["status"] == "completed"
    }
    chief.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    for name, worker in workers.items():
        code = worker.wait(timeout=CHIEF_TIMEOUT_S + 60)
        took = time.monotonic() - killed
        errors = [line for line in c.log(name).splitlines() if line.startswith("tfsoftmax: error:")]
        print(f"\n{name}: exit code {code} {took:.1f} s after the kill: {errors}")
        assert code == 1 and "Traceback" not in c.log(name), c.log(name)
        assert len(errors) == 1 and f"the chief at {c.oracle} did not answer within {CHIEF_TIMEOUT_S} s" in errors[0]
    chief = c.start("chief", "chief-again")
    worker = c.start("worker", "w2")
    assert chief.wait(timeout=300) == 0, c.log("chief-again")
    assert worker.wait(timeout=60) == 0, c.log("w2")
    states, end_order = _oracle_states(sweep)
    trials = [str(i) for i in range(6)]
    assert states == dict.fromkeys(trials, "COMPLETED") and sorted(end_order) == trials
    for trial, mtime in finished.items():  # finished trials are kept, not run again
        assert (sweep / trial / "execution0" / "metrics.json").stat().st_mtime_ns == mtime
    assert all(r["status"] == "completed" for r in trial_records(sweep).values())


def test_a_second_chief_on_one_sweep_is_refused(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tfsoftmax.errors import TfsoftmaxError

    config = load_config(_grid(write_config, trials=2, epochs=1))
    for name, value in {"KERASTUNER_TUNER_ID": "chief", "KERASTUNER_ORACLE_IP": "127.0.0.1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", str(free_port()))
    with tune.exclusive(config, "chief"), pytest.raises(TfsoftmaxError, match="in use by another chief process"):
        tune.search(config)
