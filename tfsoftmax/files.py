"""Files written so that a crash never leaves a half-written record: write beside, then rename."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

from tfsoftmax.errors import RUNTIME_ERROR, TfsoftmaxError


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call `write` on a temporary file in the same folder, fsync it, then rename it over `path`."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise TfsoftmaxError(f"cannot write {path}: {e.strerror}", RUNTIME_ERROR) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise TfsoftmaxError(f"cannot write {path}: {e.strerror or e}", RUNTIME_ERROR) from None
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
