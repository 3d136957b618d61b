"""Crash-safe writes, locks between processes, the free-space reserve and failed writes as one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import pytest

from tfsoftmax import files
from tfsoftmax.errors import RUNTIME_ERROR, TfsoftmaxError


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    files.write_json(path, {"epochs": 1})

    def half(f: object) -> None:
        f.write(b'{"epochs": ')  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        files.atomic_write(path, half)
    assert json.loads(path.read_text()) == {"epochs": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_json_keeps_nan_and_infinity_as_strings_and_numpy_scalars_as_numbers(tmp_path: Path) -> None:
    import numpy as np

    path = tmp_path / "x.json"
    files.write_json(path, {"a": float("nan"), "b": [float("inf"), -float("inf")], "c": np.float32(0.5), 1: (2,)})
    assert json.loads(path.read_text()) == {"a": "NaN", "b": ["Infinity", "-Infinity"], "c": 0.5, "1": [2]}


def test_a_write_into_a_missing_folder_is_one_resumable_line(tmp_path: Path) -> None:
    with pytest.raises(TfsoftmaxError, match=r"^cannot write .*missing.*: No such file or directory$") as e:
        files.write_text(tmp_path / "missing" / "a.txt", "x")
    assert e.value.exit_code == RUNTIME_ERROR and e.value.resumable


def test_a_lock_keeps_a_second_process_out_until_its_holder_dies(tmp_path: Path) -> None:
    lock = tmp_path / "sweep.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom tfsoftmax.files import locked\n"
            "with locked(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(60)\n",
            str(lock),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with files.locked(lock, blocking=False) as got:
            assert got is False
    finally:
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 10
    while True:  # the kernel drops a dead holder's lock
        with files.locked(lock, blocking=False) as got:
            if got or time.monotonic() > deadline:
                break
        time.sleep(0.05)
    assert got is True


def test_space_under_the_reserve_stops_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(files.shutil, "disk_usage", lambda _: usage(1 << 30, 1 << 30, files.RESERVE_BYTES - 1))
    with pytest.raises(TfsoftmaxError, match="No space left on device .*what was written before is kept$"):
        files.ensure_space(tmp_path)
    monkeypatch.setattr(files.shutil, "disk_usage", lambda _: usage(1 << 30, 0, files.RESERVE_BYTES))
    files.ensure_space(tmp_path)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (OSError(28, os.strerror(28)), "No space left on device"),
        (RuntimeError("Failed to flush: Read-only file system [Op:WriteSummary]"), "Read-only file system"),
    ],
)
def test_a_failed_write_of_a_library_becomes_one_line(tmp_path: Path, error: Exception, reason: str) -> None:
    with (
        pytest.raises(TfsoftmaxError, match=f"^cannot write in {tmp_path}: {reason}; what was written before is kept$"),
        files.reported_writes(tmp_path),
    ):
        raise error


def test_any_other_error_keeps_its_traceback(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="a bug"), files.reported_writes(tmp_path):
        raise ValueError("a bug")
