"""The two engines over one epoch contract: the same config trained as a standalone run (by Keras'
`model.fit` or by the packed pass, `train.engine`) and as a packed sweep trial of one leaves the same record
fields and history keys, stops and keeps the same epoch, and logs the same TensorBoard tags, those the
contract (`training.epoch`) declares."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tfsoftmax.config.loader import load_config, override
from tfsoftmax.sweeps import tune
from tfsoftmax.training import epoch, train

from sweep_helpers import sweep_file

# Early stopping on, at a learning rate that overshoots the tiny data's optimum: a run stops well before 30.
SETTINGS = "[train]\nepochs = 30\nlr = 3.0\nearly_stopping = 2\n"


def _tags(run_dir: Path) -> dict[str, dict[str, int]]:
    """Each TensorBoard run's per-epoch tags (scalars and weight histograms) and how many values each holds."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found = {}
    for run in (epoch.TRAIN_RUN, epoch.VALIDATION_RUN):
        events = EventAccumulator(str(run_dir / run), size_guidance={"tensors": 0})
        events.Reload()
        found[run] = {
            tag: len(events.Tensors(tag))
            for tag in events.Tags()["tensors"]
            if tag.startswith("epoch_") or tag.endswith("/histogram")  # Keras also logs validation per step
        }
    return found


@pytest.mark.parametrize("engine", ["fit", "packed"])
def test_a_run_and_a_packed_trial_of_one_keep_the_same_record_and_tags(
    write_config: Callable[..., Path], engine: str
) -> None:
    standalone = train.run(load_config(write_config(f'{SETTINGS}engine = "{engine}"\n')))
    run_record = json.loads((standalone.run_dir / "metrics.json").read_text())
    config = load_config(
        sweep_file(
            write_config,
            '"train.lr" = { values = [3.0] }',
            trials=1,
            epochs=30,
            algorithm="grid",
            pack=2,
            extra=SETTINGS,
        )
    )
    config = override(config, {"logging.experiment": "packed"})
    tune.search(config)
    trial_dir = tune.sweep_dir(config) / "0" / "execution0"
    trial_record = json.loads((trial_dir / "metrics.json").read_text())
    assert trial_record["packed"]["trials"] == ["0"]  # trained by the packed pass, not model.fit

    # The record: the same fields, but for what a run adds (its test metrics' calibration) and a trial adds.
    assert set(run_record) ^ set(trial_record) == {"calibration", "best", "packed"}
    for key in ("status", "epochs_completed", "epochs_planned", "kept_epoch"):
        assert run_record[key] == trial_record[key], key
    assert run_record["status"] == "completed" and run_record["epochs_completed"] < 30  # it did stop early
    assert trial_record["best"]["epoch"] == run_record["kept_epoch"]

    # The history: the same keys in the same order, the same steps, the same metrics to float rounding.
    run_history, trial_history = run_record["history"], trial_record["history"]
    assert list(run_history) == list(trial_history) == [*epoch.logs(0, 0, (0, 0), 0, 0), epoch.STEPS, epoch.TIME]
    assert run_history["steps"] == trial_history["steps"]
    for key in ("accuracy", "val_accuracy"):
        assert run_history[key] == pytest.approx(trial_history[key], abs=1e-6), key
    for key in ("loss", "val_loss", "learning_rate"):
        assert run_history[key] == pytest.approx(trial_history[key], rel=1e-3, abs=1e-5), key

    # TensorBoard: one value per epoch of every tag the contract declares, in both engines.
    tags = _tags(standalone.run_dir)
    assert tags == _tags(trial_dir)
    last = {key: values[-1] for key, values in run_history.items()}
    declared = epoch.scalars({k: v for k, v in last.items() if k not in (epoch.STEPS, epoch.TIME)})
    weights = [epoch.histogram_tag(w.path) for w in standalone.model.weights]
    assert set(tags[epoch.TRAIN_RUN]) == {*declared[epoch.TRAIN_RUN], epoch.TIME_TAG, *weights}
    assert set(tags[epoch.VALIDATION_RUN]) == set(declared[epoch.VALIDATION_RUN])
    assert {n for run in tags.values() for n in run.values()} == {run_record["epochs_completed"]}
