"""What resuming needs: per-epoch checkpoints, where a run continues from (its checkpoint and its record
cut to it), and the checks that `run --resume` can continue a folder.

Only the latest epoch is kept, as `checkpoint/epoch-NNNN.npz` (model weights and optimizer state, NNNN =
finished epochs), written beside and renamed: a crash leaves the old file or the new one, never half of one,
and the epoch number can never disagree with the weights. Keras' BackupAndRestore is not used: it writes
weights and epoch number as two files in place (a kill between the writes pairs epoch k's number with epoch
k+1's weights), and its HDF5 writer can crash the process with a segfault when a write fails, where NumPy's
raises an OSError we can report. A finished run deletes its checkpoint: its model file then holds the result.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfsoftmax.errors import CONFIG_ERROR, RUNTIME_ERROR, TfsoftmaxError
from tfsoftmax.files import atomic_write
from tfsoftmax.rundir import layout as rundir

if TYPE_CHECKING:
    import keras

_NAME = re.compile(r"^epoch-(\d+)\.npz$")
PACKED = "packed/"


@dataclass(frozen=True)
class Resume:
    """Where an interrupted run continues: its finished epochs, their history and the weights after them."""

    epoch: int
    weights: Path | None
    history: dict[str, list[float]]
    first_epoch: int
    resumed_at: list[int]
    best: list[Any] | None = None
    """The best epoch's weights so far, where early stopping keeps them."""


def save(model: keras.Model, run_dir: Path, epoch: int, best: list[Any] | None = None) -> None:
    """Keep the state after `epoch` finished epochs (and the `best` epoch's weights, where early stopping
    keeps them: in the same file, so they always pair), then drop the older checkpoint."""
    import numpy as np

    arrays = {f"model/{i}": np.asarray(w) for i, w in enumerate(model.get_weights())}
    arrays.update({f"optimizer/{i}": np.asarray(v) for i, v in enumerate(model.optimizer.variables)})
    save_arrays(run_dir, epoch, arrays, best)


def save_arrays(run_dir: Path, epoch: int, arrays: dict[str, Any], best: list[Any] | None = None) -> None:
    """`save` for state that is not a Keras model's (a packed trial's, under `PACKED/`)."""
    import numpy as np

    folder = Path(run_dir) / rundir.CHECKPOINTS
    path = folder / f"epoch-{epoch:04d}.npz"
    arrays = {**arrays, **{f"best/{i}": np.asarray(w) for i, w in enumerate(best or [])}}
    try:
        folder.mkdir(exist_ok=True)
    except OSError as e:
        raise TfsoftmaxError(
            f"cannot write the checkpoint {path}: {e.strerror}", RUNTIME_ERROR, resumable=True
        ) from None
    atomic_write(path, lambda f: np.savez(f, **arrays))
    for old in folder.iterdir():
        if old != path:
            old.unlink(missing_ok=True)


def load_packed(path: Path) -> dict[str, Any] | None:
    """A packed trial's saved state (names without the `PACKED/` prefix); None for a Keras model's."""
    import numpy as np

    try:
        with np.load(path) as stored:
            return {n.removeprefix(PACKED): stored[n] for n in stored.files if n.startswith(PACKED)} or None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise TfsoftmaxError(f"cannot read the checkpoint {path}: {e}; it is damaged", RUNTIME_ERROR) from None


def latest(run_dir: Path) -> tuple[int, Path] | None:
    """The newest complete checkpoint as (finished epochs, file); None before the first epoch ends."""
    folder = Path(run_dir) / rundir.CHECKPOINTS
    found = [(int(m.group(1)), p) for p in folder.glob("epoch-*.npz") if (m := _NAME.match(p.name))]
    return max(found) if found else None


def remove(run_dir: Path) -> None:
    """Drop the checkpoint of a finished run."""
    shutil.rmtree(Path(run_dir) / rundir.CHECKPOINTS, ignore_errors=True)


def restore(model: keras.Model, path: Path) -> None:
    """Load weights and optimizer state (the optimizer's variables must exist before they can be filled)."""
    import numpy as np

    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    try:
        with np.load(path) as stored:
            weights = [stored[f"model/{i}"] for i in range(len(model.weights))]
            state = [stored[f"optimizer/{i}"] for i in range(len(model.optimizer.variables))]
        model.set_weights(weights)
        for variable, value in zip(model.optimizer.variables, state, strict=True):
            variable.assign(value)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise TfsoftmaxError(
            f"cannot read the checkpoint {path}: {e}; it does not match this run's model, or is damaged", RUNTIME_ERROR
        ) from None


def resume_point(run_dir: Path, record: dict[str, Any] | None) -> Resume:
    """The epoch to continue from: the checkpoint's, with the record's history cut to it (the record is
    written before the checkpoint, so it can be one epoch ahead, never behind; its history starts at
    `first_epoch`, which only Hyperband's continued trials set). A folder whose record and checkpoint do
    not prove the same epochs is refused (`prove`)."""
    prove(run_dir, record)
    found = latest(run_dir)
    epoch, weights = found if found else (0, None)
    best = _best_weights(weights) if weights is not None else None
    record = record or {}
    first = int(record.get("first_epoch", 0))
    history = record.get("history") or {}
    return Resume(
        epoch=max(epoch, first),
        weights=weights,
        first_epoch=first,
        history={k: list(v[: max(epoch - first, 0)]) for k, v in history.items()},
        resumed_at=list(record.get("resumed_at_epochs", [])),
        best=best,
    )


def prove(run_dir: Path, record: dict[str, Any] | None) -> None:
    """Refuse in one line to continue a folder whose record (`record`, None where it has none) and
    checkpoint disagree on the epochs it finished: only an epoch both hold can be continued, and nothing
    else rebuilds a lost record's history (TensorBoard keeps no steps, and may hold epochs twice)."""
    why = _unproven(latest(run_dir), record)
    if why is not None:
        then = "remove it and run the same sweep command again" if rundir.is_trial(run_dir) else "start a new run"
        raise TfsoftmaxError(f"cannot resume {run_dir}: {why}; {then}", RUNTIME_ERROR)


def _unproven(found: tuple[int, Path] | None, record: dict[str, Any] | None) -> str | None:
    """What the checkpoint `found` and the record do not both prove; None where they agree. The record is
    written before the checkpoint, so it holds the checkpoint's epochs or, cut by a kill, one more."""
    saved = None if found is None else f"{rundir.CHECKPOINTS}/{found[1].name} holds {found[0]} finished epoch(s)"
    if record is None:
        return None if saved is None else f"{saved}, but {rundir.RECORD}, the record of what they were, is missing"
    done = record["epochs_completed"]
    losses = len(record["history"].get("loss", []))
    if losses != done:
        return f"{rundir.RECORD} says {done} epoch(s) completed, but its history holds {losses}"
    held = int(record.get("first_epoch", 0)) + done  # its history starts at `first_epoch`
    if found is None:
        return (
            None
            if done <= 1
            else f"{rundir.RECORD} holds {held} finished epoch(s), but there is no checkpoint to continue"
        )
    return None if held - found[0] in (0, 1) else f"{saved}, but {rundir.RECORD} holds {held}"


def _best_weights(path: Path) -> list[Any] | None:
    """The best epoch's weights stored with a checkpoint, None where it holds none."""
    import numpy as np

    try:
        with np.load(path) as stored:
            count = sum(1 for name in stored.files if name.startswith("best/"))
            return [stored[f"best/{i}"] for i in range(count)] or None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise TfsoftmaxError(f"cannot read the checkpoint {path}: {e}; it is damaged", RUNTIME_ERROR) from None


def resumable(run_dir: Path) -> dict[str, Any] | None:
    """Check that `run_dir` is a run that `run --resume` can continue (`prove` included); return its record,
    None where it has none yet."""
    run_dir = Path(run_dir)
    where = f"--resume {run_dir}"
    if not run_dir.is_dir():
        raise TfsoftmaxError(f"{where}: no such run directory", CONFIG_ERROR)
    if not (run_dir / rundir.CONFIG).is_file():
        raise TfsoftmaxError(
            f"{where}: not a run directory (no {rundir.CONFIG}); allowed: a folder that "
            "`tfsoftmax run` created, such as logs/<experiment>/<run>",
            CONFIG_ERROR,
        )
    sweep = rundir.sweep_of(run_dir)
    if sweep is not None:
        raise TfsoftmaxError(
            f"{where}: a trial of the sweep {sweep}; run the same `tfsoftmax sweep` command again to continue it",
            CONFIG_ERROR,
        )
    record = rundir.read_record(run_dir)
    status = "running" if record is None else record["status"]
    if status == "completed":
        raise TfsoftmaxError(f"{where}: the run already completed; nothing to resume", CONFIG_ERROR)
    if status == "diverged":
        raise TfsoftmaxError(
            f"{where}: the run diverged ({record.get('divergence', {}).get('reason', '')}); "
            "resuming would diverge again: change the config and start a new run",
            CONFIG_ERROR,
        )
    prove(run_dir, record)
    return record
