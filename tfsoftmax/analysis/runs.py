"""Finished run directories read back for comparison: where runs are under the folders and globs given, and
each run's config, status and curves, read through `rundir` alone (no TensorFlow, no matplotlib)."""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfsoftmax.config import Config, flat_config
from tfsoftmax.errors import RUNTIME_ERROR, TfsoftmaxError
from tfsoftmax.rundir import layout as rundir

RUN_HINT = f"a run directory has {rundir.RECORD} and {rundir.CONFIG}"
CALIBRATION_COLUMNS = ("test_ece", "ece_calibrated", "acc_at_80pct")  # for runs with a calibration block
# History key -> its title: the curves a run is read with and compare draws.
TITLES = {
    "loss": "training loss",
    "val_loss": "validation loss",
    "val_accuracy": "validation accuracy",
    "accuracy": "training accuracy",
}


@dataclass(frozen=True)
class Run:
    """One run directory as read back: its config and the parts of its record compare shows."""

    path: Path
    name: str
    config: Config
    status: str
    epochs: int
    history: dict[str, list[float]]
    test_accuracy: float | None
    wall_time_s: float | None
    calibration: dict[str, Any] | None  # the record's block as written; None: no validation split, or older
    calibration_columns: dict[str, float | None]
    kept_epoch: int | None


def _broken(path: Path, why: str) -> TfsoftmaxError:
    return TfsoftmaxError(f"{path}: {why}", RUNTIME_ERROR)


def _run_dirs(top: Path) -> list[Path]:
    """Folders under `top` (itself included) holding a run's files; run directories do not nest."""
    found = []
    for folder, subfolders, files in os.walk(top):
        if rundir.RECORD in files or rundir.CONFIG in files:
            found.append(Path(folder))
            subfolders[:] = []
    return found


def find_runs(inputs: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Run directories under run, experiment or sweep folders and globs, deduplicated and sorted (each
    spelled as first found, for messages), and one warning for each input that holds none."""
    found: dict[str, Path] = {}
    problems = []
    for text in inputs:
        paths = [Path(text)]
        if not paths[0].exists() and any(c in text for c in "*?["):
            paths = sorted(Path(match) for match in glob.glob(text))
            if not paths:
                problems.append(f"{text}: no file matches this pattern")
        for path in paths:
            if not path.exists():
                problems.append(f"{path}: no such file or directory")
            elif not path.is_dir():
                problems.append(f"{path}: not a directory; give a run, experiment or sweep folder")
            elif not (runs := _run_dirs(path)):
                problems.append(f"{path}: not a run directory and holds none ({RUN_HINT})")
            else:
                for run in runs:
                    found.setdefault(os.path.abspath(run), run)
    return [found[key] for key in sorted(found)], problems


def shown(path: Path) -> str:
    """A path as messages show it: relative to the working directory when inside it."""
    relative = os.path.relpath(path)
    return str(path) if relative.split(os.sep)[0] == ".." else relative


def _calibration_columns(block: dict[str, Any] | None, path: Path) -> dict[str, float | None]:
    """The table's calibration columns from a record's block, as `calibration.Calibration.to_json` writes it;
    None each for a run without one."""
    if block is None:
        return dict.fromkeys(CALIBRATION_COLUMNS)
    try:
        values = block["ece"], block["ece_calibrated"], block["accuracy_at"]["0.8"]
        return dict(zip(CALIBRATION_COLUMNS, map(float, values), strict=True))
    except (KeyError, TypeError, ValueError) as e:
        raise _broken(path, f"calibration: expected numbers ece, ece_calibrated, accuracy_at.0.8 ({e!r})") from None


def read_run(run_dir: Path) -> Run:
    """Read one run's config and record; a missing, broken or half-written file raises, naming it."""
    record = rundir.read_record(run_dir)
    if record is None:
        raise _broken(run_dir, f"no {rundir.RECORD} (still in its first epoch, or stopped before finishing one)")
    if not (run_dir / rundir.CONFIG).is_file():
        raise _broken(run_dir, f"{rundir.RECORD} without {rundir.CONFIG}")
    config = rundir.read_config(run_dir)
    epochs, history, test = record["epochs_completed"], record["history"], record["test"]
    missing = [key for key in TITLES if key not in history and epochs and not key.startswith("val_")]
    if missing:
        raise _broken(run_dir / rundir.RECORD, f"history.{missing[0]}: 0 values for {epochs} completed epochs")
    # Trained with no validation split: no validation curve, never a test curve in its place.
    curves = {key: history.get(key, []) for key in TITLES}
    return Run(
        path=run_dir,
        name=run_dir.name,
        config=config,
        status=record["status"],
        epochs=epochs,
        history=curves,
        test_accuracy=None if test is None else test["accuracy"],
        wall_time_s=record["wall_time_s"],
        calibration=record.get("calibration"),
        calibration_columns=_calibration_columns(record.get("calibration"), run_dir / rundir.RECORD),
        kept_epoch=record.get("kept_epoch"),
    )


def common_root(paths: Sequence[Path]) -> Path:
    """The deepest folder holding all the runs (for a single run, its parent), as an absolute path."""
    absolute = [Path(os.path.abspath(path)) for path in paths]
    return absolute[0].parent if len(absolute) == 1 else Path(os.path.commonpath(absolute))


def differing_keys(runs: Sequence[Run]) -> list[str]:
    """Config keys whose value is not the same in every run, in config order."""
    flat = [flat_config(run.config) for run in runs]
    return [key for key in flat[0] if len({f[key] for f in flat}) > 1]
