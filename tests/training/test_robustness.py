"""Runs and sweeps side by side, full disks and broken inputs: one line and a non-zero exit, nothing lost."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tfsoftmax.config.loader import load_config
from tfsoftmax.sweeps import tune

from conftest import SHARED_FASHION, child_env, one_line_error, prepared_command, tfsoftmax_command


def _last_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    return stderr.strip().splitlines()[-1]


def _complete(run_dir: Path) -> bool:
    record = json.loads((run_dir / "metrics.json").read_text())
    return (
        record["status"] == "completed"
        and (run_dir / "model.keras").is_file()
        and (run_dir / "config.toml").is_file()
        and any(run_dir.glob("events.out.tfevents.*"))
    )


@pytest.mark.slow
def test_two_runs_started_together_get_two_complete_directories(write_config: Callable[..., Path]) -> None:
    path = write_config('[train]\nepochs = 3\n[logging]\nrun_name = "same"')
    processes = [
        subprocess.Popen(
            tfsoftmax_command("run", str(path)),
            env=child_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for process in processes:
        assert process.wait(timeout=300) == 0, process.stderr.read()[-3000:]
    parent = Path(load_config(path).logging.root) / "tiny"
    assert sorted(p.name for p in parent.iterdir()) == ["same", "same-2"]
    assert all(_complete(parent / name) for name in ("same", "same-2"))


@pytest.mark.slow
def test_two_sweeps_of_one_experiment_never_share_its_folder(write_config: Callable[..., Path]) -> None:
    path = write_config(
        '[sweep]\nalgorithm = "grid"\nmax_trials = 2\nepochs = 2\n[sweep.space]\n"train.lr" = { values = [0.1, 0.2] }',
        name="sw",
    )
    processes = [
        subprocess.Popen(
            tfsoftmax_command("sweep", str(path)),
            env=child_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = sorted((p.wait(timeout=300), p.stderr.read()) for p in processes)
    sweep = tune.sweep_dir(load_config(path))
    assert results[0][0] == 0 and results[1][0] == 1, results
    assert _last_line(results[1][1]) == (
        f"tfsoftmax: error: sweep: {sweep} is in use by another sweep process; "
        "wait for it to end or set another logging.experiment"
    )
    records = [json.loads(p.read_text()) for p in sweep.glob("*/execution0/metrics.json")]
    assert len(records) == 2 and all(r["status"] == "completed" for r in records)


def test_sweep_in_use_is_refused_in_process(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config('[sweep]\nmax_trials = 1\n[sweep.space]\n"train.lr" = { values = [0.1] }', name="sw")
    config = load_config(path)
    with tune.exclusive(config):
        code, err = one_line_error(["sweep", str(path)], capsys)
    assert code == 1 and err == (
        f"tfsoftmax: error: sweep: {tune.sweep_dir(config)} is in use by another "
        "sweep process; wait for it to end or set another logging.experiment"
    )


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_FASHION / "train-images-idx3-ubyte.gz").is_file(), reason="needs ../shared")
def test_two_processes_preparing_one_dataset_both_succeed(tmp_path: Path) -> None:
    """TFDS preparation from the manual files, by two processes at once, into one fresh data_dir."""
    code = (
        "import sys; from tfsoftmax import data; from tfsoftmax.config import DataConfig; "
        "d = data.load_dataset(DataConfig(data_dir=sys.argv[1], manual_dir=sys.argv[2])); "
        "print(d.checksum, len(d.train_y), len(d.test_y))"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / "tfds"), str(SHARED_FASHION)],
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=400) for p in processes]
    assert all(p.returncode == 0 for p in processes), [err[-2000:] for _, err in outputs]
    first, second = (out.strip().splitlines()[-1].split() for out, _ in outputs)  # after TFDS's own lines
    assert first == second and first[1:] == ["60000", "10000"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Callable[[int], Path]:
    """A real filesystem of a few KiB (tmpfs), so writes fail with ENOSPC; skipped where mounting is not
    allowed (not root, or a container without the capability)."""
    mounted: list[Path] = []

    def mount(kib: int) -> Path:
        point = tmp_path / f"disk{kib}-{uuid.uuid4().hex[:6]}"
        point.mkdir()
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(point)], capture_output=True, text=True
        )
        if result.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.strip()}")
        mounted.append(point)
        return point

    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], check=False)


def _assert_kept_and_resumable(run_dir: Path, tmp_path: Path, min_epochs: int) -> None:
    """What was written before the failure reads back, and a copy on a roomy disk resumes to the end."""
    load_config(run_dir / "config.toml")
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["status"] == "failed" and record["error"].startswith("cannot write")
    assert record["epochs_completed"] >= min_epochs
    roomy = tmp_path / "roomy" / run_dir.name
    shutil.copytree(run_dir, roomy)
    resumed = subprocess.run(
        tfsoftmax_command("run", "--resume", str(roomy)), env=child_env(), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _complete(roomy)
    assert json.loads((roomy / "metrics.json").read_text())["resumed_at_epochs"][0] >= min_epochs


# A disk with room for the config only, and one that fills up after a few epochs. A run keeps 4 MiB in
# reserve (HDF5 writers segfault on a full disk), so it stops cleanly before the disk is full.
@pytest.mark.slow
@pytest.mark.parametrize("kib,min_epochs", [(40, 0), (4096 + 100, 2)])
def test_full_disk_is_one_line_and_loses_nothing(
    write_config: Callable[..., Path], tmp_path: Path, small_disk: Callable[[int], Path], kib: int, min_epochs: int
) -> None:
    disk = small_disk(kib)
    path = write_config("[train]\nepochs = 100")
    result = subprocess.run(
        tfsoftmax_command("run", str(path), "--logdir", str(disk)),
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    run_dir = next((disk / "tiny").iterdir())
    assert result.returncode == 1
    assert _last_line(result.stderr) == (
        f"tfsoftmax: error: cannot write in {run_dir}: No space left on device "
        "(under 4 MiB free); what was written before is kept; resume with: "
        f"tfsoftmax run --resume {run_dir}"
    )
    _assert_kept_and_resumable(run_dir, tmp_path, min_epochs)


@pytest.mark.slow
def test_full_disk_stops_a_sweep_in_one_line(
    write_config: Callable[..., Path], small_disk: Callable[[int], Path]
) -> None:
    disk = small_disk(4096 + 100)
    path = write_config(
        '[train]\nepochs = 30\n[sweep]\nalgorithm = "grid"\nmax_trials = 3\n'
        '[sweep.space]\n"train.lr" = { values = [0.1, 0.2, 0.3] }',
        name="sw",
    )
    result = subprocess.run(
        tfsoftmax_command("sweep", str(path), "--logdir", str(disk)),
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    line = _last_line(result.stderr)
    assert line.startswith(f"tfsoftmax: error: cannot write in {disk / 'sw'}/") and line.endswith(
        "No space left on device (under 4 MiB free); what was written before is kept; run the same sweep "
        "command again to resume"
    )


@pytest.mark.slow
def test_file_size_limit_is_one_line_and_loses_nothing(write_config: Callable[..., Path], tmp_path: Path) -> None:
    """The same without root: a file-size limit (RLIMIT_FSIZE) makes the kernel refuse the large writes."""
    path = write_config("[train]\nepochs = 3")

    limit = (
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "  # else the kernel kills instead of failing the write
        "resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))"
    )
    result = subprocess.run(
        prepared_command(limit, tfsoftmax_command("run", str(path))),
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    run_dir = next((Path(load_config(path).logging.root) / "tiny").iterdir())
    assert result.returncode == 1
    line = _last_line(result.stderr)
    assert line == (
        f"tfsoftmax: error: cannot write in {run_dir}: File too large; what was written before is "
        f"kept; resume with: tfsoftmax run --resume {run_dir}"
    )
    _assert_kept_and_resumable(run_dir, tmp_path, 1)


def test_unwritable_log_root_is_one_line(
    write_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    code, err = one_line_error(["run", str(write_config()), "--logdir", str(blocker)], capsys)
    assert code == 1 and err == (
        f"tfsoftmax: error: logging.root: cannot create a run folder in {blocker / 'tiny'}: Not a directory"
    )


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_FASHION / "train-images-idx3-ubyte.gz").is_file(), reason="needs ../shared")
def test_truncated_manual_file_is_one_line(
    write_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manual = tmp_path / "manual"
    shutil.copytree(SHARED_FASHION, manual)
    target = manual / "t10k-images-idx3-ubyte.gz"
    original = hashlib.sha256(target.read_bytes()).hexdigest()  # the shared copy is byte-identical
    target.write_bytes(target.read_bytes()[:1000])
    path = write_config(f'[data]\ndata_dir = "{tmp_path / "fresh"}"\nmanual_dir = "{manual}"')
    code, err = one_line_error(["run", str(path)], capsys)
    assert code == 1
    assert err.startswith(f"tfsoftmax: error: data.manual_dir: {target}: corrupt or wrong file: sha256 ")
    assert err.endswith(f", expected {original}")
