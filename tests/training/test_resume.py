"""Resuming interrupted runs: the same result as an uninterrupted run, and one-line errors for what
cannot be resumed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tfsoftmax import files
from tfsoftmax.config.loader import load_config, override
from tfsoftmax.errors import TfsoftmaxError
from tfsoftmax.files import locked
from tfsoftmax.rundir import checkpoint
from tfsoftmax.rundir import layout as rundir
from tfsoftmax.training import train

from conftest import child_env, event_steps, interruptible_child, one_line_error, tfsoftmax_command

EPOCHS = 6


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def _weights(run_dir: Path) -> list[np.ndarray]:
    import keras

    return [np.asarray(w) for w in keras.models.load_model(run_dir / "model.keras").get_weights()]


def _assert_same_result(a: Path, b: Path) -> None:
    """Same per-epoch metrics, test metrics and final weights, bit for bit (timings aside)."""
    ma, mb = _metrics(a), _metrics(b)
    assert ma["status"] == mb["status"] == "completed"
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "steps"):
        assert ma["history"][key] == mb["history"][key], key
    assert ma["test"] == mb["test"]
    assert all(np.array_equal(x, y) for x, y in zip(_weights(a), _weights(b), strict=True))
    assert not (a / rundir.CHECKPOINTS).exists() and not (b / rundir.CHECKPOINTS).exists()


def _ctrl_c() -> None:
    """Ctrl-C as the terminal sends it: SIGINT to this process, which the run's StopSignal takes."""
    os.kill(os.getpid(), signal.SIGINT)


def _stop_after_epoch(monkeypatch: pytest.MonkeyPatch, epoch: int) -> None:
    """Ctrl-C right after `epoch` finished epochs are saved."""
    save = checkpoint.save

    def save_then_stop(model: object, run_dir: Path, finished: int, best: object = None) -> None:
        save(model, run_dir, finished, best)
        if finished == epoch:
            _ctrl_c()

    monkeypatch.setattr(checkpoint, "save", save_then_stop)


@pytest.mark.parametrize(
    "kind,stops",
    [
        ("keras", (2,)),
        pytest.param("keras", (2, 4), marks=pytest.mark.slow),
        pytest.param("scratch", (2, 4), marks=pytest.mark.slow),
    ],
)
def test_stopped_run_resumes_to_the_uninterrupted_result(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, kind: str, stops: tuple[int, ...]
) -> None:
    """Stopped once, or once more in the resumed run: the end result equals an uninterrupted run's."""
    config = load_config(write_config(f'[train]\nepochs = {EPOCHS}\n[model]\nkind = "{kind}"'))
    whole = train.run(override(config, {"logging.run_name": "whole"}))
    _stop_after_epoch(monkeypatch, stops[0])
    with pytest.raises(
        TfsoftmaxError,
        match=rf"^interrupted after {stops[0]} finished epoch\(s\) of .*/cut; resume "
        r"with: tfsoftmax run --resume .*/cut$",
    ) as info:
        train.run(override(config, {"logging.run_name": "cut"}))
    assert info.value.exit_code == 130
    cut = whole.run_dir.parent / "cut"
    record = _metrics(cut)
    assert record["status"] == "interrupted" and record["epochs_completed"] == stops[0]
    assert checkpoint.latest(cut)[0] == stops[0] and not (cut / "model.keras").exists()
    monkeypatch.undo()
    for stop in stops[1:]:  # and once more, from the resumed run
        _stop_after_epoch(monkeypatch, stop)
        with pytest.raises(TfsoftmaxError, match=f"interrupted after {stop} finished"):
            train.resume(cut)
        monkeypatch.undo()
    resumed = train.resume(cut)
    assert resumed.run_dir == cut and _metrics(cut)["resumed_at_epochs"] == list(stops)
    _assert_same_result(whole.run_dir, cut)
    _assert_one_event_per_epoch(cut, EPOCHS)


def _run_past_epoch_3(path: Path, cut: Path) -> subprocess.Popen:
    """`tfsoftmax run path` in a child process, returned once its record in `cut` holds 3 epochs."""
    process = interruptible_child(tfsoftmax_command("run", str(path)))
    deadline = time.monotonic() + 120
    while not (cut / "metrics.json").is_file() or _metrics(cut)["epochs_completed"] < 3:
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.05)
    return process


def _assert_one_event_per_epoch(run_dir: Path, epochs: int, missing_allowed: bool = False) -> None:
    """Each TensorBoard run holds every epoch once: a stop logs no half epoch that the resume logs again.
    After a SIGKILL, events TensorBoard had not flushed yet may be missing, but none is doubled."""
    for folder, tag in (("train", "epoch_loss"), ("validation", "epoch_loss"), ("train", "epoch_time_s")):
        steps = event_steps(run_dir / folder, tag)
        if missing_allowed:
            assert set(steps.values()) <= {1} and set(steps) <= set(range(epochs)), (folder, tag, steps)
        else:
            assert steps == {step: 1 for step in range(epochs)}, (folder, tag, steps)


@pytest.mark.slow
def test_ctrl_c_while_finishing_leaves_a_run_that_resumes_to_its_end(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second Ctrl-C during the final evaluation and report: every epoch is trained, nothing is lost,
    and the resume trains no epoch again, only finishes."""
    from tfsoftmax.board import report

    config = load_config(write_config(f"[train]\nepochs = {EPOCHS}"))
    whole = train.run(override(config, {"logging.run_name": "whole"}))

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "write_report", interrupted)
    with pytest.raises(TfsoftmaxError, match=r"^interrupted; resume with: tfsoftmax run --resume .*/cut$") as info:
        train.run(override(config, {"logging.run_name": "cut"}))
    assert info.value.exit_code == 130
    monkeypatch.undo()
    cut = whole.run_dir.parent / "cut"
    assert _metrics(cut)["epochs_completed"] == EPOCHS and checkpoint.latest(cut)[0] == EPOCHS
    train.resume(cut)
    assert _metrics(cut)["resumed_at_epochs"] == [EPOCHS]
    _assert_same_result(whole.run_dir, cut)


@pytest.mark.slow
def test_low_disk_stops_before_writing_and_the_run_resumes(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under the 4 MiB reserve a run stops in one line at the next epoch end (what runs without root can
    test; tests/training/test_robustness.py fills a real small disk where mounting is allowed)."""
    import shutil as shutil_module

    config = load_config(write_config(f"[train]\nepochs = {EPOCHS}"))
    real = shutil_module.disk_usage
    monkeypatch.setattr(files.shutil, "disk_usage", lambda p: real(p)._replace(free=files.RESERVE_BYTES - 1))
    with pytest.raises(
        TfsoftmaxError,
        match=r"^cannot write in .*: No space left on device \(under 4 MiB "
        r"free\); what was written before is kept; resume with: "
        r"tfsoftmax run --resume ",
    ) as info:
        train.run(config)
    assert info.value.exit_code == 1
    monkeypatch.undo()
    run_dir = next(Path(config.logging.root).glob("*/*"))
    assert _metrics(run_dir)["status"] == "failed" and _metrics(run_dir)["epochs_completed"] == 0
    assert train.resume(run_dir).status == "completed"


@pytest.mark.slow
def test_record_one_epoch_ahead_of_the_checkpoint_is_cut_back(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kill between writing metrics.json and the checkpoint: the epoch is simply trained again."""
    config = load_config(write_config(f"[train]\nepochs = {EPOCHS}"))
    whole = train.run(override(config, {"logging.run_name": "whole"}))
    save = checkpoint.save

    def save_up_to_two(model: object, run_dir: Path, finished: int, best: object = None) -> None:
        if finished <= 2:
            save(model, run_dir, finished, best)
        if finished == 3:
            _ctrl_c()

    monkeypatch.setattr(checkpoint, "save", save_up_to_two)
    with pytest.raises(TfsoftmaxError, match="interrupted after 3 finished"):
        train.run(override(config, {"logging.run_name": "cut"}))
    monkeypatch.undo()
    cut = whole.run_dir.parent / "cut"
    assert _metrics(cut)["epochs_completed"] == 3 and checkpoint.latest(cut)[0] == 2
    train.resume(cut)
    assert _metrics(cut)["resumed_at_epochs"] == [2]
    _assert_same_result(whole.run_dir, cut)


def _ended_by_hand(run_dir: Path, config_file: Path, **record: object) -> Path:
    """A run directory's config and record as a run that ended before its first epoch leaves them; what
    `--resume` reads to refuse it, without training one."""
    run_dir.mkdir(parents=True)
    rundir.write_config(run_dir, load_config(config_file), "")
    rundir.write_record(run_dir, {"epochs_completed": 0, "history": {}, "test": None, "wall_time_s": 1.0, **record})
    return run_dir


def test_resume_refuses_what_is_not_a_resumable_run(
    write_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope"
    assert one_line_error(["run", "--resume", str(missing)], capsys) == (
        2,
        f"tfsoftmax: error: --resume {missing}: no such run directory",
    )
    assert one_line_error(["run", "--resume", str(tmp_path)], capsys) == (
        2,
        f"tfsoftmax: error: --resume {tmp_path}: not a run directory (no config.toml); allowed: a folder "
        "that `tfsoftmax run` created, such as logs/<experiment>/<run>",
    )
    path = write_config()
    assert one_line_error(["run", str(path), "--resume", str(tmp_path)], capsys) == (
        2,
        "tfsoftmax: error: run: --resume RUN_DIR continues a run with the config saved in it; give either "
        "CONFIG (with --set/--logdir) or --resume RUN_DIR",
    )
    assert one_line_error(["run"], capsys)[0] == 2
    done = _ended_by_hand(tmp_path / "logs" / "done", path, status="completed", test={"loss": 0.5, "accuracy": 0.8})
    assert one_line_error(["run", "--resume", str(done)], capsys) == (
        2,
        f"tfsoftmax: error: --resume {done}: the run already completed; nothing to resume",
    )
    diverged = _ended_by_hand(
        tmp_path / "logs" / "diverged",
        path,
        status="diverged",
        divergence={"epoch": 1, "batch": 1, "reason": "training loss became nan at epoch 1, batch 1"},
    )
    code, err = one_line_error(["run", "--resume", str(diverged)], capsys)
    assert (
        code == 2
        and err.startswith(f"tfsoftmax: error: --resume {diverged}: the run diverged (training loss became nan")
        and err.endswith("change the config and start a new run")
    )
    trial = tmp_path / "sweep" / "0" / "execution0"
    trial.mkdir(parents=True)
    shutil.copy(done / "config.toml", trial / "config.toml")
    (tmp_path / "sweep" / "tuner").mkdir()
    (tmp_path / "sweep" / "tuner" / "oracle.json").write_text("{}")
    assert one_line_error(["run", "--resume", str(trial)], capsys) == (
        2,
        f"tfsoftmax: error: --resume {trial}: a trial of the sweep {tmp_path / 'sweep'}; run the same "
        "`tfsoftmax sweep` command again to continue it",
    )
    (done / "metrics.json").write_text('{"status": "runn')
    code, err = one_line_error(["run", "--resume", str(done)], capsys)
    assert code == 1 and err.startswith(f"tfsoftmax: error: {done / 'metrics.json'}: unreadable or half-written record")


@pytest.mark.slow
def test_resume_refuses_a_run_another_process_trains(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(write_config(f"[train]\nepochs = {EPOCHS}"))
    _stop_after_epoch(monkeypatch, 1)
    with pytest.raises(TfsoftmaxError, match="interrupted"):
        train.run(config)
    monkeypatch.undo()
    run_dir = next(Path(config.logging.root).glob("*/*"))
    busy = f"^--resume {run_dir}: another process is training this run$"
    with locked(run_dir / rundir.LOCK), pytest.raises(TfsoftmaxError, match=busy):  # as a training process holds it
        train.resume(run_dir)
    assert train.resume(run_dir).status == "completed"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_signalled_run_resumes_to_the_uninterrupted_result(
    write_config: Callable[..., Path], sig: signal.Signals
) -> None:
    epochs = 60
    path = write_config(f'[train]\nepochs = {epochs}\n[logging]\nrun_name = "cut"')
    config = load_config(path)
    whole = train.run(override(config, {"logging.run_name": "whole"}))
    cut = whole.run_dir.parent / "cut"
    process = _run_past_epoch_3(path, cut)
    process.send_signal(sig)
    err = process.communicate(timeout=60)[1]
    record = _metrics(cut)
    assert 3 <= record["epochs_completed"] < epochs
    if sig == signal.SIGKILL:
        assert process.returncode == -signal.SIGKILL and record["status"] == "running"
    else:
        assert process.returncode == 130 and record["status"] == "interrupted"
        assert checkpoint.latest(cut)[0] == record["epochs_completed"]
        assert err.strip().splitlines()[-1] == (
            f"tfsoftmax: error: interrupted after {record['epochs_completed']} "
            f"finished epoch(s) of {cut}; resume with: tfsoftmax run "
            f"--resume {cut}"
        )
    resumed = subprocess.run(
        tfsoftmax_command("run", "--resume", str(cut)), env=child_env(), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"run directory: {cut}" in resumed.stdout
    _assert_one_event_per_epoch(cut, epochs, missing_allowed=sig == signal.SIGKILL)
    resumed_at = _metrics(cut)["resumed_at_epochs"]
    # A kill between writing the record and the checkpoint leaves the checkpoint one epoch behind.
    assert len(resumed_at) == 1 and record["epochs_completed"] - 1 <= resumed_at[0] <= record["epochs_completed"]
    _assert_same_result(whole.run_dir, cut)


@pytest.mark.slow
def test_resume_refuses_epochs_it_cannot_prove_across_processes(write_config: Callable[..., Path]) -> None:
    """A 30-epoch run cut by Ctrl-C in one process; each resume is a process of its own. With the record
    lost, the checkpoint behind the record by more than the one epoch a kill leaves, or a history shorter
    than its epochs, the resume refuses in one line and trains nothing (once it recorded 27 of 30 epochs
    from an epoch-3 checkpoint with no record); with the folder whole again it records all 30."""
    epochs = 30
    path = write_config(f'[train]\nepochs = {epochs}\n[logging]\nrun_name = "cut"')
    cut = Path(load_config(path).logging.root) / "tiny" / "cut"
    process = _run_past_epoch_3(path, cut)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=60)
    assert process.returncode == 130
    record_file, original = cut / "metrics.json", (cut / "metrics.json").read_text()
    done = json.loads(original)["epochs_completed"]
    saved, checkpoint_file = checkpoint.latest(cut)
    assert saved == done < epochs

    def resume() -> tuple[int, str]:
        ended = subprocess.run(
            tfsoftmax_command("run", "--resume", str(cut)), env=child_env(), capture_output=True, text=True, timeout=300
        )
        return ended.returncode, ended.stderr.strip().splitlines()[-1] if ended.stderr.strip() else ""

    refused = f"tfsoftmax: error: cannot resume {cut}: "
    record_file.unlink()
    assert resume() == (
        1,
        f"{refused}checkpoint/{checkpoint_file.name} holds {done} finished epoch(s), but metrics.json, the "
        "record of what they were, is missing; start a new run",
    )
    record_file.write_text(original)
    older = checkpoint_file.with_name("epoch-0001.npz")
    checkpoint_file.rename(older)
    assert resume() == (
        1,
        f"{refused}checkpoint/epoch-0001.npz holds 1 finished epoch(s), but metrics.json holds {done}; start a new run",
    )
    older.rename(checkpoint_file)
    shorter = json.loads(original)
    shorter["history"]["loss"].pop()
    record_file.write_text(json.dumps(shorter))
    assert resume() == (
        1,
        f"tfsoftmax: error: {record_file}: history.loss: {done - 1} values for {done} completed epochs",
    )
    # The refusals trained and wrote nothing.
    assert checkpoint.latest(cut) == (done, checkpoint_file)
    assert event_steps(cut / "train", "epoch_loss") == {step: 1 for step in range(done)}
    record_file.write_text(original)
    assert resume()[0] == 0
    record = _metrics(cut)
    assert record["status"] == "completed" and record["epochs_completed"] == epochs
    assert record["resumed_at_epochs"] == [done]
    assert all(len(values) == epochs for values in record["history"].values())
    _assert_one_event_per_epoch(cut, epochs)
