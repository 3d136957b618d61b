"""What a result can be traced back to: the versions that produced it and the data it was trained on,
kept in each run directory's environment.json."""

from __future__ import annotations

import os
import platform
from typing import TYPE_CHECKING, Any

from tfsoftmax.distributed.launcher import TUNER_ID

if TYPE_CHECKING:
    from tfsoftmax.data import Dataset


def cores() -> int:
    """The cores this process may run on. Recorded: a pack steps one lane of trials per core, and a lane's
    width sets its trials' last bits."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def capture(dataset: Dataset, manual_dir: str | None) -> dict[str, Any]:
    """This process's versions, its keras-tuner worker id (empty outside a distributed sweep), its cores and
    the dataset's identity: name, version, checksum, where it was prepared from and its sizes."""
    from importlib.metadata import version

    import keras
    import tensorflow as tf

    return {
        "tuner_id": os.environ.get(TUNER_ID, ""),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tfsoftmax": version("tfsoftmax"),
        "platform": platform.platform(),
        "cores": cores(),
        "dataset": {
            "name": dataset.name,
            "version": dataset.version,
            "sha256": dataset.checksum,
            "manual_dir": manual_dir,
            "train_examples": int(len(dataset.train_y)),
            "test_examples": int(len(dataset.test_y)),
        },
    }
