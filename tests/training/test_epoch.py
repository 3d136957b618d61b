"""The epoch contract on its own, without an engine: the patience rule is Keras' `EarlyStopping` (driven side
by side with it), the record's history and fields, divergence, the TensorBoard tags, and what an
interruption leaves and says. The module reads without TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tfsoftmax.errors import INTERRUPTED, RUNTIME_ERROR, TfsoftmaxError
from tfsoftmax.rundir import layout as rundir
from tfsoftmax.rundir.checkpoint import Resume
from tfsoftmax.training import epoch
from tfsoftmax.training.epoch import Patience, Record, recorded

from conftest import child_env

SEQUENCES = [
    [0.5, 0.7, 0.6, 0.7, 0.65, 0.9],  # an equal value is no improvement
    [0.9, 0.1, 0.1, 0.1],  # the first epoch is the best
    [0.1, 0.2, 0.3, 0.4],  # always better: never stops
    [0.3],
    [0.5, 0.5, 0.5, 0.5, 0.5],
]


class _Model:
    """What Keras' EarlyStopping touches of a model: its weights and the stop flag."""

    def __init__(self) -> None:
        self.stop_training = False
        self.weights: list[int] = []
        self.restored: list[int] | None = None

    def get_weights(self) -> list[int]:
        return list(self.weights)

    def set_weights(self, weights: list[int]) -> None:
        self.restored = weights


def _keras_stops(values: list[float], patience: int) -> tuple[int, int | None, list[int] | None]:
    """(epochs trained, kept epoch 1-based, restored weights) as Keras' own EarlyStopping decides them."""
    import keras

    model = _Model()
    callback = keras.callbacks.EarlyStopping(
        monitor=epoch.MONITOR, mode="max", patience=patience, restore_best_weights=True
    )
    callback.set_model(model)
    callback.on_train_begin()
    trained = 0
    for i, value in enumerate(values):
        model.weights = [i]
        callback.on_epoch_end(i, {epoch.MONITOR: value})
        trained += 1
        if model.stop_training:
            break
    callback.on_train_end()
    kept = None if callback.best_weights is None else callback.best_epoch + 1
    return trained, kept, model.restored


def _contract_stops(values: list[float], patience: int, resume_at: int | None = None) -> tuple:
    """The same through `Patience`, optionally rebuilt from the history after `resume_at` epochs."""
    rule = Patience(patience, {}, 0, None)
    trained = 0
    for i, value in enumerate(values):
        if i == resume_at:  # a resumed run: only its history and the checkpoint's kept weights carry over
            rule = Patience(patience, {epoch.MONITOR: values[:i]}, 0, rule.best_weights)
            if rule.stopped:
                break
        rule.update(i, value, lambda i=i: [i])
        trained += 1
        if rule.stopped:
            break
    kept = None if rule.best_weights is None else rule.best_epoch + 1
    return trained, kept, rule.best_weights


@pytest.mark.parametrize("values", SEQUENCES)
@pytest.mark.parametrize("patience", [1, 2, 3])
def test_patience_stops_and_keeps_what_keras_early_stopping_does(values: list[float], patience: int) -> None:
    keras_result = _keras_stops(values, patience)
    assert _contract_stops(values, patience) == keras_result
    for resume_at in range(1, len(values)):  # and a run resumed after any epoch
        assert _contract_stops(values, patience, resume_at) == keras_result, resume_at


def test_the_contract_reads_without_tensorflow() -> None:
    code = (
        "import sys, tfsoftmax.training.epoch; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'keras_tuner', 'numpy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def _logs(accuracy: float, val_accuracy: float) -> dict[str, float]:
    return epoch.logs(1 - accuracy, accuracy, (1 - val_accuracy, val_accuracy), 0.1, 1000.0)


def test_logs_and_tags_are_keras_own() -> None:
    logs = _logs(0.8, 0.7)
    assert list(logs) == ["accuracy", "loss", "val_accuracy", "val_loss", "learning_rate", "examples_per_second"]
    assert epoch.scalars(logs) == {
        "train": {
            "epoch_accuracy": 0.8,
            "epoch_loss": pytest.approx(0.2),
            "epoch_learning_rate": 0.1,
            "epoch_examples_per_second": 1000.0,
        },
        "validation": {"epoch_accuracy": 0.7, "epoch_loss": pytest.approx(0.3)},
    }
    assert epoch.scalars(epoch.logs(0.5, 0.9, None, 0.1, 10.0)).keys() == {"train"}
    assert epoch.histogram_tag("sequential/dense/kernel") == "sequential/dense/kernel/histogram"


def test_a_record_holds_whole_epochs_and_writes_its_fields(tmp_path: Path) -> None:
    record = Record(tmp_path, 5, 2, None, 0, "run", packed={"trials": ["0"], "micro_batch": 16})
    record.end_epoch(0, _logs(0.5, 0.6), 7, 1.5, lambda: ["w0"])
    record.end_epoch(1, _logs(0.6, 0.5), 7, 0.25, lambda: ["w1"])
    assert list(record.history) == [*_logs(0, 0), "steps", "time_s"]
    assert record.history["steps"] == [7, 7] and all(isinstance(s, int) for s in record.history["steps"])
    assert record.epochs_completed == record.next_epoch == 2 and not record.finished
    assert (record.kept_epoch, record.best_weights, record.final_weights(["last"])) == (1, ["w0"], ["w0"])
    record.retime([1.75, 0.5, 9.0])  # an epoch's time grows until the next starts; a third was never recorded
    assert record.history["time_s"] == [1.75, 0.5]
    record.write("running")
    written = json.loads((tmp_path / rundir.RECORD).read_text())
    assert list(written) == [
        "format",
        "status",
        "epochs_completed",
        "epochs_planned",
        "history",
        "test",
        "wall_time_s",
        "packed",
        "kept_epoch",
    ]
    assert written["epochs_completed"] == 2 and written["epochs_planned"] == 5 and written["kept_epoch"] == 1
    assert rundir.read_record(tmp_path)["history"] == record.history
    assert record.trial_best() == {"epoch": 1, "val_accuracy": 0.6, "val_loss": pytest.approx(0.4)}


def test_a_resumed_record_continues_its_history(tmp_path: Path) -> None:
    history = {k: [v, v] for k, v in _logs(0.5, 0.6).items()} | {"steps": [7, 7], "time_s": [1.0, 1.0]}
    resume = Resume(epoch=5, weights=None, history=history, first_epoch=3, resumed_at=[4], best=["kept"])
    record = Record(tmp_path, 10, 4, resume, 0, "run")
    assert record.first_epoch == 3 and record.next_epoch == 5 and record.resumed == [4, 5]
    assert record.kept_epoch == 4 and record.best_weights == ["kept"]  # epoch 0 of the history is the 4th
    record.end_epoch(5, _logs(0.7, 0.5), 7, 2.0, lambda: ["new"])
    record.retime([3.0])
    assert record.history["time_s"] == [1.0, 1.0, 3.0] and history["time_s"] == [1.0, 1.0]
    record.write("interrupted")
    written = rundir.read_record(tmp_path)
    assert (written["resumed_at_epochs"], written["first_epoch"], written["kept_epoch"]) == ([4, 5], 3, 4)


def test_divergence_ends_a_record_with_its_reason(tmp_path: Path) -> None:
    record = Record(tmp_path, 5, 0, None, 0, "run")
    assert record.outcome == "completed" and record.failure is None and record.kept_epoch is None
    record.diverge(2, 4, float("nan"))
    assert record.finished and record.outcome == "diverged"
    assert record.divergence == {"epoch": 3, "batch": 4, "reason": "training loss became nan at epoch 3, batch 4"}
    assert record.failure == "diverged: training loss became nan at epoch 3, batch 4"


def test_an_interruption_marks_every_unended_record_and_names_them(tmp_path: Path) -> None:
    records = []
    for name, epochs in (("0", 2), ("1", 1), ("2", 3)):
        (tmp_path / name).mkdir()
        record = Record(tmp_path / name, 5, 0, None, 0, name)
        for i in range(epochs):
            record.end_epoch(i, _logs(0.5, 0.5), 7, 1.0, list)
        records.append(record)
    records[2].ended = True  # ended (or taken by another worker): its record is not this process's to write
    with pytest.raises(TfsoftmaxError) as info, recorded(records, "the packed trials "):
        raise KeyboardInterrupt
    assert str(info.value) == "interrupted after 1 finished epoch(s) of the packed trials 0, 1"
    assert info.value.exit_code == INTERRUPTED and info.value.resumable
    assert [(tmp_path / n / rundir.RECORD).exists() for n in "012"] == [True, True, False]
    assert rundir.read_record(tmp_path / "0")["status"] == "interrupted"
    with pytest.raises(TfsoftmaxError, match="^disk full$"), recorded(records[:1], ""):
        raise TfsoftmaxError("disk full", RUNTIME_ERROR)
    assert rundir.read_record(tmp_path / "0")["error"] == "disk full"
    with pytest.raises(ZeroDivisionError), recorded(records[1:2], ""):  # a bug keeps its traceback
        _ = 1 / 0
    assert rundir.read_record(tmp_path / "1")["status"] == "failed"


def test_resume_hints_are_worded_in_one_place(tmp_path: Path) -> None:
    assert epoch.resume_command(tmp_path) == f"tfsoftmax run --resume {tmp_path}"
    assert (
        epoch.with_resume_hint("interrupted", tmp_path)
        == f"interrupted; resume with: tfsoftmax run --resume {tmp_path}"
    )
