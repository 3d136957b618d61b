"""What an epoch means, written once for both training engines: Keras' `model.fit` (through the thin
callbacks in `callbacks`) and the packed pass (`packed_trial`, `sweeps.packing`) hand each finished epoch's
logs to a `Record`, which keeps the history, applies Keras' early-stopping rule (`Patience`), notes a
divergence and writes the run's record through `rundir`. Also here: an epoch's log keys and the TensorBoard
tags both engines write (the HParams records in `board.hparams`, below this layer, name a few again), what an interruption leaves and says, and how a user is told to resume.

An interrupted run keeps its record (status "interrupted" or "failed") and the checkpoint of its last
finished epoch; TensorBoard holds whole epochs only, since a stopped epoch is never logged.
Nothing here imports TensorFlow or Keras."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfsoftmax.errors import INTERRUPTED, TfsoftmaxError
from tfsoftmax.rundir import layout as rundir

if TYPE_CHECKING:
    from tfsoftmax.rundir.checkpoint import Resume

MONITOR = "val_accuracy"
"""What early stopping watches (higher is better), and a sweep trial's `best` epoch."""
LEARNING_RATE, THROUGHPUT = "learning_rate", "examples_per_second"
STEPS, TIME = "steps", "time_s"
"""History keys beside an epoch's logs: optimizer updates applied, and the whole epoch's seconds."""
TRAIN_RUN, VALIDATION_RUN = "train", "validation"
"""The TensorBoard runs (sub-folders of a run directory) that Keras' TensorBoard callback writes."""
TIME_TAG = "epoch_time_s"
"""The whole epoch's seconds, in the train run."""
TRIAL_RESUME = "the same `tfsoftmax sweep` command (the trial continues from its last finished epoch)"
"""How a sweep trial's config says it is continued."""
STOPPING = "stopping after the batch or epoch in progress (press Ctrl-C again to stop at once)"
"""What the first Ctrl-C (or SIGTERM) prints: training stops at the next batch end under `model.fit`, once
the epoch in progress ends under the packed pass, its record written."""


def resume_command(run_dir: Path) -> str:
    """How a user continues an interrupted run: the one place this hint is worded."""
    return f"tfsoftmax run --resume {run_dir}"


def with_resume_hint(message: str, run_dir: Path) -> str:
    """`message` with how to resume `run_dir`, for an error that left it resumable."""
    return f"{message}; resume with: {resume_command(run_dir)}"


def logs(
    loss: float, accuracy: float, validation: tuple[float, float] | None, learning_rate: float, throughput: float
) -> dict[str, float]:
    """An epoch's logs keyed and ordered as Keras' `fit` hands them to callbacks, with the two that
    `callbacks.EpochStats` adds; `validation` is (loss, accuracy), None without a validation split."""
    out = {"accuracy": accuracy, "loss": loss}
    if validation is not None:
        out.update(val_accuracy=validation[1], val_loss=validation[0])
    out.update({LEARNING_RATE: learning_rate, THROUGHPUT: throughput})
    return out


def scalars(epoch_logs: dict[str, float]) -> dict[str, dict[str, float]]:
    """An epoch's scalars by TensorBoard run, tagged as Keras' TensorBoard callback tags them: `epoch_<key>`
    in train, the `val_` keys without that prefix in validation (`TIME_TAG` is the train run's too)."""
    runs: dict[str, dict[str, float]] = {TRAIN_RUN: {}, VALIDATION_RUN: {}}
    for key, value in epoch_logs.items():
        validation = key.startswith("val_")
        runs[VALIDATION_RUN if validation else TRAIN_RUN][f"epoch_{key.removeprefix('val_')}"] = value
    return {run: tags for run, tags in runs.items() if tags}


def histogram_tag(weight_path: str) -> str:
    """A weight's histogram tag in the train run, as Keras' TensorBoard callback names it."""
    return f"{weight_path.replace(':', '_')}/histogram"


class Patience:
    """Keras' `EarlyStopping(monitor=MONITOR, mode="max", patience=n, restore_best_weights=True)` as a rule
    both engines apply: a strictly better value resets the wait, the first epoch's weights are kept until
    one is better, and training stops once the wait reaches `patience` (never at the first epoch). A
    resumed run starts from its earlier epochs (`history` starts at `first_epoch`; `best_weights` come from
    the checkpoint), so it stops and keeps the same epoch as an uninterrupted run."""

    def __init__(self, patience: int, history: dict[str, list[float]], first_epoch: int, best_weights: Any) -> None:
        self.patience = patience
        self.best: float | None = None
        self.best_epoch = 0
        self.best_weights: Any = None
        self.wait = 0
        self.stopped = False
        earlier = rundir.best_epoch(history, MONITOR)
        if earlier is not None:
            values = history[MONITOR]
            self.best, self.best_epoch, self.wait = values[earlier], first_epoch + earlier, len(values) - 1 - earlier
            self.best_weights = best_weights
            self.stopped = self.wait >= patience  # the stop was decided at the last earlier epoch

    def update(self, epoch: int, value: float, weights: Callable[[], Any]) -> None:
        """Epoch `epoch` (0-based, counted from the run's start) ended with `value`; `weights` gives its
        weights, fetched only when they are kept."""
        better = self.best is None or value > self.best
        if self.best_weights is None or better:
            self.best_weights, self.best_epoch = weights(), epoch
        self.wait += 1
        if better:
            self.best, self.wait = value, 0
        elif self.wait >= self.patience and epoch > 0:
            self.stopped = True


class Record:
    """One run's epochs as its record (`metrics.json`) holds them, whichever engine trained them: the
    history (each epoch's logs, steps and time, added all at once), early stopping where `patience` is on,
    a divergence, and the fields the record is written with. `name` says which run an interruption cut."""

    def __init__(
        self,
        run_dir: Path,
        epochs: int,
        patience: int,
        resume: Resume | None,
        first_epoch: int,
        name: str,
        **fields: Any,
    ) -> None:
        self.run_dir, self.epochs, self.name, self.fields = run_dir, epochs, name, fields
        self.history: dict[str, list[float]] = {k: list(v) for k, v in resume.history.items()} if resume else {}
        self.first_epoch = resume.first_epoch if resume else first_epoch  # where `history` starts
        self.resumed = [*resume.resumed_at, resume.epoch] if resume else []
        best = resume.best if resume else None
        self.patience = Patience(patience, self.history, self.first_epoch, best) if patience else None
        self.divergence: dict[str, Any] | None = None
        self.status = "running"
        self.ended = False  # this process writes it no more (its final record is written, or another took it)
        self._earlier = self.epochs_completed  # epochs whose times an earlier process measured

    @property
    def epochs_completed(self) -> int:
        """Epochs in the record: those whose end was written (the history starts at `first_epoch`)."""
        return len(self.history.get("loss", []))

    @property
    def next_epoch(self) -> int:
        """The epoch (0-based, from the run's start) that trains next."""
        return self.first_epoch + self.epochs_completed

    @property
    def stopped(self) -> bool:
        """Early stopping has ended the run."""
        return self.patience is not None and self.patience.stopped

    @property
    def finished(self) -> bool:
        """Nothing left to train: its epochs, early stopping or divergence."""
        return self.stopped or self.divergence is not None or self.next_epoch >= self.epochs

    @property
    def best_weights(self) -> Any:
        """The kept epoch's weights where early stopping keeps them (saved with each checkpoint), else None."""
        return None if self.patience is None else self.patience.best_weights

    @property
    def kept_epoch(self) -> int | None:
        """The epoch (1-based) whose weights the run ends with, where early stopping keeps one."""
        return None if self.best_weights is None else self.patience.best_epoch + 1

    def final_weights(self, last: Any) -> Any:
        """What the run ends with: the kept epoch's weights, else `last` (its last epoch's)."""
        return last if self.best_weights is None else self.best_weights

    @property
    def outcome(self) -> str:
        """The status a run that trained to its end is recorded with."""
        return "diverged" if self.divergence is not None else "completed"

    @property
    def failure(self) -> str | None:
        """Why a sweep trial failed (keras-tuner's trial message), None where it did not."""
        return None if self.divergence is None else f"diverged: {self.divergence['reason']}"

    def diverge(self, epoch: int, batch: int, loss: float) -> None:
        """The training loss of epoch `epoch` (0-based) became `loss`, not finite, at batch `batch` (1-based):
        the run stops there, the epoch unrecorded."""
        self.divergence = {
            "epoch": epoch + 1,
            "batch": batch,
            "reason": f"training loss became {float(loss)} at epoch {epoch + 1}, batch {batch}",
        }

    def end_epoch(
        self, epoch: int, epoch_logs: dict[str, float], steps: int, time_s: float, weights: Callable[[], Any]
    ) -> None:
        """Add a finished epoch (`logs`' keys, then `STEPS` and `TIME`) and decide early stopping; the
        history changes all at once, so a record written at any time is whole."""
        if self.patience is not None:
            self.patience.update(epoch, epoch_logs[MONITOR], weights)
        added = [
            *((key, float(value)) for key, value in epoch_logs.items()),
            (STEPS, int(steps)),
            (TIME, float(time_s)),
        ]
        for key, value in added:
            self.history.setdefault(key, []).append(value)

    def retime(self, times: Sequence[float]) -> None:
        """This process's epochs' times again (`times[i]` its i-th epoch's), where an epoch's time grew after
        it was recorded; only epochs the record holds keep one."""
        if TIME in self.history:
            kept = self.history[TIME][: self._earlier]
            self.history[TIME] = kept + [float(t) for t in times[: self.epochs_completed - self._earlier]]

    def trial_best(self) -> dict[str, Any] | None:
        """A sweep trial's best epoch by `MONITOR` (1-based in its history), with its validation metrics."""
        i = rundir.best_epoch(self.history, MONITOR)
        if i is None:
            return None
        return {"epoch": i + 1, MONITOR: self.history[MONITOR][i], "val_loss": self.history["val_loss"][i]}

    def write(
        self, status: str, test: dict[str, float] | None = None, wall_time_s: float | None = None, **extra: Any
    ) -> None:
        """The record as it stands, with `status` and whatever the end of the run adds."""
        self.status = status
        record = rundir.run_record(
            status,
            self.epochs,
            self.history,
            test=test,
            wall_time_s=wall_time_s,
            divergence=self.divergence,
            resumed=self.resumed,
            first_epoch=self.first_epoch,
            kept_epoch=self.kept_epoch,
            **self.fields,
            **extra,
        )
        rundir.write_record(self.run_dir, record)


@contextlib.contextmanager
def recorded(records: Sequence[Record], cut_of: str) -> Iterator[None]:
    """Every record not yet ended says how training stopped: Ctrl-C (then the error names the runs cut,
    after `cut_of`, and the fewest epochs any of them finished), an error we report, or a bug. A record
    that cannot be written then leaves the last good one, and the error that stopped training is shown."""
    try:
        yield
    except KeyboardInterrupt:
        _mark(records, "interrupted")
        cut = [r for r in records if not r.ended] or list(records)
        epochs = min(r.epochs_completed for r in cut)
        raise TfsoftmaxError(
            f"interrupted after {epochs} finished epoch(s) of {cut_of}{', '.join(r.name for r in cut)}", INTERRUPTED
        ) from None
    except TfsoftmaxError as e:
        _mark(records, "failed", error=str(e))
        raise
    except Exception:
        _mark(records, "failed")
        raise


def _mark(records: Sequence[Record], status: str, **extra: Any) -> None:
    for record in records:
        if not record.ended:
            with contextlib.suppress(TfsoftmaxError):
                record.write(status=status, **extra)
