"""Files written so that a crash never leaves a half-written record (write beside, then rename), lock
files that keep two processes out of the same folder, and the free space a run keeps in hand."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from tfsoftmax.errors import RUNTIME_ERROR, TfsoftmaxError


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call `write` on a temporary file in the same folder, fsync it, then rename it over `path`."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise TfsoftmaxError(f"cannot write {path}: {e.strerror}", RUNTIME_ERROR, resumable=True) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise TfsoftmaxError(f"cannot write {path}: {e.strerror or e}", RUNTIME_ERROR, resumable=True) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """Atomically write a text file."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def write_json(path: Path, data: Any) -> None:
    """Atomically write JSON; NaN and infinity are written as the strings "NaN" / "Infinity"."""
    write_text(path, json.dumps(_jsonable(data), indent=2, allow_nan=False) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return "NaN"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):  # NumPy scalars
        return _jsonable(value.item())
    return value


@contextlib.contextmanager
def locked(path: Path, blocking: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on `path` (created if missing) for the block; yields False instead of
    waiting when `blocking` is off and another process holds it. The kernel drops the lock when its
    holder dies, so a killed process never leaves a folder locked."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a")
    except OSError as e:
        raise TfsoftmaxError(f"cannot create the lock file {path}: {e.strerror}", RUNTIME_ERROR) from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        except OSError as e:  # a filesystem without locks (some network mounts)
            raise TfsoftmaxError(f"cannot lock {path}: {e.strerror}", RUNTIME_ERROR) from None
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# Free space a run keeps in hand: Keras' and keras-tuner's HDF5 weight writers can crash the whole process
# (a segfault) when a write fails, so training stops cleanly before the disk is full.
RESERVE_BYTES = 4 << 20


def ensure_space(folder: Path) -> None:
    """Stop with one line while the next epoch's files (a few hundred KB) still fit."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # the writes that follow report the real problem
    if free < RESERVE_BYTES:
        raise TfsoftmaxError(
            f"cannot write in {folder}: No space left on device (under "
            f"{RESERVE_BYTES >> 20} MiB free); what was written before is kept",
            RUNTIME_ERROR,
            resumable=True,
        )


# What a failed write says, from Python (strerror) or from TensorFlow's C++ writers (in the message).
WRITE_FAILURES = {
    errno.ENOSPC: "No space left on device",
    errno.EFBIG: "File too large",
    errno.EDQUOT: "Disk quota exceeded",
    errno.EROFS: "Read-only file system",
    errno.EACCES: "Permission denied",
}


@contextlib.contextmanager
def reported_writes(folder: Path) -> Iterator[None]:
    """Turn a failed write into `folder` (full disk, quota, read-only) into one line: TensorFlow's event
    writers and Keras' saving raise their own types for it, with tracebacks no user needs."""
    try:
        yield
    except TfsoftmaxError:
        raise
    except Exception as e:
        text = e.strerror if isinstance(e, OSError) and e.errno in WRITE_FAILURES else str(e)
        reason = next((r for r in WRITE_FAILURES.values() if r in (text or "")), None)
        if reason is None:
            raise
        raise TfsoftmaxError(
            f"cannot write in {folder}: {reason}; what was written before is kept", RUNTIME_ERROR, resumable=True
        ) from None
