"""The run directory's format, owned here: every file of a run's folder by name, creating the folder, writing and
reading each file, the record's schema (with its format version), and where a sweep keeps its trials.

    <root>/<experiment>/<run>/          a run (`tfsoftmax run`)
        config.toml                     the resolved config, re-runnable as it is
        environment.json                versions and data identity
        metrics.json                    the record: status, per-epoch history, test metrics
        model.keras                     the trained model, once finished
        checkpoint/epoch-NNNN.npz       the last finished epoch, while unfinished (see `checkpoint`)
        .lock                           held by the process training it
        train/ validation/              TensorBoard runs
    <root>/<experiment>/                a sweep (`tfsoftmax sweep`)
        tuner/oracle.json               keras-tuner's project
        <trial_id>/execution<N>/        one run directory per execution of a trial
        results.csv results.json best.toml
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfsoftmax.errors import RUNTIME_ERROR, TfsoftmaxError
from tfsoftmax.files import write_json, write_text

if TYPE_CHECKING:
    import keras

    from tfsoftmax.config import Config

CONFIG = "config.toml"
ENVIRONMENT = "environment.json"
RECORD = "metrics.json"
MODEL = "model.keras"
CHECKPOINTS = "checkpoint"
LOCK = ".lock"
FORMAT_VERSION = 1
"""metrics.json's schema version: a reader refuses a newer one instead of misreading it."""
RECORD_KEYS = ("status", "epochs_completed", "history", "test", "wall_time_s")
STATUSES = ("running", "completed", "diverged", "failed", "interrupted")

TUNER_PROJECT = "tuner"
ORACLE = "oracle.json"
EXECUTION = "execution"
RESULTS_CSV, RESULTS_JSON, BEST_CONFIG = "results.csv", "results.json", "best.toml"


def experiment_dir(config: Config) -> Path:
    """`<root>/<experiment>`: a run's parent folder, and a sweep's one fixed folder (so the same sweep
    command resumes it); the root itself for a config built in code with no experiment name."""
    root = Path(config.logging.root)
    return root if config.logging.experiment is None else root / config.logging.experiment


def create(config: Config) -> Path:
    """A new `<root>/<experiment>/<run>` folder; a taken name gets a suffix, never reuses a folder."""
    parent = experiment_dir(config)
    base = config.logging.run_name or time.strftime("%Y%m%d-%H%M%S")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for n in range(1, 10_000):
            run_dir = parent / (base if n == 1 else f"{base}-{n}")
            try:
                run_dir.mkdir()  # atomic: two processes can never both get the same folder
                return run_dir
            except FileExistsError:
                continue
    except OSError as e:
        raise TfsoftmaxError(
            f"logging.root: cannot create a run folder in {parent}: {e.strerror}", RUNTIME_ERROR
        ) from None
    raise TfsoftmaxError(f"logging.root: {parent} holds too many runs named {base}", RUNTIME_ERROR)


def is_run(folder: Path) -> bool:
    """A run directory as `tfsoftmax run` and each sweep execution leave it."""
    return (folder / RECORD).is_file() and (folder / CONFIG).is_file()


def write_config(run_dir: Path, config: Config, resume_with: str) -> None:
    """config.toml: the exact config, re-runnable as is, with how to re-run and resume it."""
    from tfsoftmax.config import to_toml

    header = (
        f"Resolved config of run {run_dir}.\nRe-run with: tfsoftmax run {run_dir / CONFIG}\n"
        f"If interrupted, continue with: {resume_with}"
    )
    write_text(run_dir / CONFIG, to_toml(config, header))


def read_config(run_dir: Path) -> Config:
    """The config a run trained with."""
    from tfsoftmax.config.loader import load_config

    return load_config(Path(run_dir) / CONFIG)


def write_environment(run_dir: Path, environment: dict[str, Any]) -> None:
    """environment.json: versions and data identity, so a result can be traced back."""
    write_json(run_dir / ENVIRONMENT, environment)


def run_record(
    status: str,
    epochs_planned: int,
    history: dict[str, list[float]],
    *,
    test: dict[str, float] | None = None,
    wall_time_s: float | None = None,
    divergence: dict[str, Any] | None = None,
    resumed: list[int] | None = None,
    first_epoch: int = 0,
    kept_epoch: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A record as runs and packed trials write it: the required keys, then each optional one only where
    it applies."""
    record = {
        "status": status,
        "epochs_completed": len(history.get("loss", [])),
        "epochs_planned": epochs_planned,
        "history": history,
        "test": test,
        "wall_time_s": wall_time_s,
        **extra,
    }
    optional = {"divergence": divergence, "resumed_at_epochs": resumed, "first_epoch": first_epoch}
    record.update({k: v for k, v in optional.items() if v})
    if kept_epoch is not None:
        record["kept_epoch"] = kept_epoch
    return record


def write_record(run_dir: Path, record: dict[str, Any]) -> None:
    """metrics.json, replaced atomically; the format version is added here."""
    write_json(run_dir / RECORD, {"format": FORMAT_VERSION, **record})


def _broken(path: Path, why: str) -> TfsoftmaxError:
    return TfsoftmaxError(f"{path}: {why}", RUNTIME_ERROR)


def _number(value: Any) -> bool:
    # write_json stores NaN and infinity as strings, which float() reads back.
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) or value in (
        "NaN",
        "Infinity",
        "-Infinity",
    )


def _checked(record: Any, path: Path) -> dict[str, Any]:
    """The record if it has the schema, its numbers as floats; else one line naming what is wrong."""
    if not isinstance(record, dict):
        raise _broken(path, f"expected a JSON object, got {type(record).__name__}")
    version = record.get("format", FORMAT_VERSION)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise _broken(
            path,
            f"record format {json.dumps(version)} is newer than this tfsoftmax reads "
            f"({FORMAT_VERSION}); upgrade tfsoftmax",
        )
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:
        raise _broken(path, f"missing key(s) {', '.join(missing)}; expected {', '.join(RECORD_KEYS)}")
    epochs, history, test, wall = (record[k] for k in ("epochs_completed", "history", "test", "wall_time_s"))
    if record["status"] not in STATUSES:
        raise _broken(path, f"status: got {json.dumps(record['status'])}; expected one of {', '.join(STATUSES)}")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 0:
        raise _broken(path, f"epochs_completed: expected an integer >= 0, got {json.dumps(epochs)}")
    if not isinstance(history, dict):
        raise _broken(path, f"history: expected an object, got {json.dumps(history)}")
    for key, values in history.items():
        if not isinstance(values, list) or len(values) != epochs:
            count = len(values) if isinstance(values, list) else "no list of"
            raise _broken(path, f"history.{key}: {count} values for {epochs} completed epochs")
        if not all(_number(v) for v in values):
            raise _broken(path, f"history.{key}: expected numbers, got {json.dumps(values)}")
        history[key] = [float(v) for v in values]
    if test is not None and not (
        isinstance(test, dict) and all(_number(v) for v in test.values()) and "accuracy" in test
    ):
        raise _broken(path, f"test: expected null or an object of numbers with accuracy, got {json.dumps(test)}")
    if wall is not None and not _number(wall):
        raise _broken(path, f"wall_time_s: expected a number or null, got {json.dumps(wall)}")
    if test is not None:
        record["test"] = {k: float(v) for k, v in test.items()}
    if wall is not None:
        record["wall_time_s"] = float(wall)
    return record


def read_record(run_dir: Path) -> dict[str, Any] | None:
    """The run's record, schema-checked, its numbers (history, test, wall time) as floats; None where there
    is none yet (before its first epoch ends)."""
    path = Path(run_dir) / RECORD
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise _broken(path, f"unreadable record ({e})") from None
    try:
        record = json.loads(text)
    except ValueError as e:
        raise _broken(path, f"unreadable or half-written record ({e})") from None
    return _checked(record, path)


def best_epoch(history: dict[str, list[float]], metric: str) -> int | None:
    """Which epoch of a record's history (0-based) is best by `metric`: the highest accuracy or the lowest
    loss, as keras-tuner ranks them; a non-finite value is never best. None where `metric` has no finite value."""
    values = history.get(metric, [])
    finite = [i for i, value in enumerate(values) if math.isfinite(value)]
    if not finite:
        return None
    pick = max if metric.endswith("accuracy") else min
    return pick(finite, key=values.__getitem__)


def save_model(model: keras.Model, run_dir: Path) -> None:
    """model.keras, saved beside and renamed: a crash never leaves a half-written one."""
    tmp = run_dir / f".{MODEL}.tmp.keras"
    try:
        model.save(tmp)
        os.replace(tmp, run_dir / MODEL)
    finally:
        tmp.unlink(missing_ok=True)


def is_sweep(folder: Path) -> bool:
    """A sweep folder: it holds keras-tuner's project."""
    return (Path(folder) / TUNER_PROJECT / ORACLE).is_file()


def trial_dir(sweep: Path, trial_id: str) -> Path:
    """Where a trial's executions go: keras-tuner's TensorBoard callback names the folder after the trial."""
    return Path(sweep) / trial_id


def execution_dirs(trial: Path) -> list[Path]:
    """A trial's execution run directories, in execution order."""
    return sorted(Path(trial).glob(f"{EXECUTION}*"), key=execution_index)


def execution_index(run_dir: Path) -> int:
    """Which execution of its trial a run directory holds: keras-tuner names them `execution<N>`."""
    return int(Path(run_dir).name.removeprefix(EXECUTION))


def sweep_of(run_dir: Path) -> Path | None:
    """The sweep folder whose trial `run_dir` is one execution of; None for a run of its own."""
    run_dir = Path(run_dir)
    sweep = run_dir.parent.parent
    return sweep if run_dir.name.startswith(EXECUTION) and is_sweep(sweep) else None


def is_trial(run_dir: Path) -> bool:
    """A run directory that is one execution of a sweep's trial (resumed by the sweep, not `run --resume`)."""
    return sweep_of(run_dir) is not None
