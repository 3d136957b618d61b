"""No stranger's trials: the chief writes its resolved sweep config into the sweep folder, and a worker
compares its own before it trains, so a worker started with another space, data or seed is refused in one
line instead of reporting trials of another experiment into this one. The file also proves that the
worker's log root holds the chief's sweep (a shared file system), which the workers need for checkpoints.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tfsoftmax.config import Config, to_dict
from tfsoftmax.errors import CONFIG_ERROR, RUNTIME_ERROR, TfsoftmaxError
from tfsoftmax.files import write_json

FILE = "chief_sweep.json"
# What may differ between machines (where the log root and the data are mounted) or is each side's own.
LOCAL_KEYS = {"logging.root", "data.data_dir", "sweep.lease_s", "sweep.chief_timeout_s", "sweep.max_retries"}
POLL_S = 0.5


def resolved(config: Config) -> dict[str, Any]:
    """The config's keys that every process of one sweep must share, as `section.key` -> value."""
    flat = {f"{s}.{k}": v for s, part in to_dict(config).items() for k, v in part.items()}
    return {k: v for k, v in json.loads(json.dumps(flat, default=str)).items() if k not in LOCAL_KEYS}


@contextlib.contextmanager
def published(config: Config, folder: Path) -> Iterator[None]:
    """The chief's sweep in its folder while the chief serves it, for its workers to compare against;
    removed when it ends, so a later chief with a changed config never meets its predecessor's."""
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / FILE, resolved(config))
    try:
        yield
    finally:
        (folder / FILE).unlink(missing_ok=True)


def check(config: Config, folder: Path, wait_s: float) -> None:
    """Refuse a worker whose sweep is not the chief's, or whose log root does not hold the chief's sweep,
    once `wait_s` has passed (a chief still starting has not written its own yet)."""
    path, mine = folder / FILE, resolved(config)
    chief: dict[str, Any] | None = None
    deadline = time.monotonic() + wait_s
    while True:
        with contextlib.suppress(OSError, ValueError):
            chief = json.loads(path.read_text())
            if chief == mine:
                return
        if time.monotonic() > deadline:
            break
        time.sleep(POLL_S)
    if chief is None:
        raise TfsoftmaxError(
            f"sweep worker: no chief's sweep in {folder} after {wait_s:g} s (no {FILE}); the worker's "
            "logging.root (or --logdir) must be the chief's, on a file system both machines share, and "
            "the chief must be running",
            RUNTIME_ERROR,
        )
    differ = sorted(k for k in chief.keys() | mine.keys() if chief.get(k) != mine.get(k))
    key = differ[0]
    raise TfsoftmaxError(
        f"sweep worker: this worker's sweep is not the chief's ({path}): {key} is {mine.get(key)!r} here "
        f"and {chief.get(key)!r} in the chief's ({len(differ)} key(s) differ); start the worker with the "
        "chief's config",
        CONFIG_ERROR,
    )
