"""The `--dry-run` report: the space, the trial count and a time estimate from whole epochs measured the
way a trial trains them (the same `train.fit`, callbacks and writes), on random inputs of the data's
shape and size, so nothing is trained on the data and nothing is kept."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from tfsoftmax import data as data_lib
from tfsoftmax.config import Config, override
from tfsoftmax.results import trial_epochs

# What a trial costs beyond its epochs: resetting the model, keras-tuner's trial files and best-epoch
# checkpoint, the HParams records, saving model.keras (see the README's speed section).
TRIAL_OVERHEAD_S = 0.6


def batch_sizes(config: Config) -> list[int]:
    """The batch sizes the sweep will train with: its values, or a range's ends, or the config's."""
    entry = next((e for e in config.sweep.space if e.key == "data.batch_size"), None)
    if entry is None:
        return [config.data.batch_size]
    return list(entry.values) if entry.values else [int(entry.min), int(entry.max)]


def whole_epoch_s(config: Config, dataset: data_lib.Dataset, splits: data_lib.Splits,
                  batch_size: int) -> tuple[float, float]:
    """(first epoch, later epoch) seconds at `batch_size`, as `time_s` records them: `train.fit` with
    the record, checkpoint and TensorBoard callbacks, on random data the size of the real splits."""
    import numpy as np

    from tfsoftmax import train
    from tfsoftmax.model import build_model

    rng = np.random.default_rng(0)
    shape, classes = dataset.image_shape, dataset.num_classes

    def fake(n: int) -> tuple[np.ndarray, np.ndarray]:
        return rng.random((n, *shape), dtype=np.float32), rng.integers(0, classes, n).astype(np.int32)

    val = None if splits.val is None else fake(len(splits.val[1]))
    fakes = data_lib.Splits(train=fake(len(splits.train[1])), val=val, test=fake(1))
    trial = override(config, {"data.batch_size": batch_size})
    train.seed_everything(trial.train.seed)
    model = build_model(shape, classes, trial.model, trial.train)
    with tempfile.TemporaryDirectory(prefix="tfsoftmax-dry-run-") as tmp:
        record = train.fit(model, fakes, trial, Path(tmp), [train.tensorboard_callback(Path(tmp), trial)], 2,
                           epoch_lines=False)
    first, later = record.history["time_s"]
    return first, later


def describe(config: Config) -> str:
    """The --dry-run report: space, trial count, measured epoch times and the estimated wall time."""
    from tfsoftmax.tune import count_trials, sweep_dir

    started = time.perf_counter()
    lines = [f"sweep {sweep_dir(config)}: {config.sweep.algorithm} search, objective {config.sweep.objective}"]
    for e in config.sweep.space:
        if e.values:
            lines.append(f"  {e.key:<24} one of {list(e.values)}")
        else:
            step = f", step {e.step}" if e.step else ""
            lines.append(f"  {e.key:<24} {e.min} .. {e.max} ({e.sampling}{step})")
    trials, epochs, executions = count_trials(config), trial_epochs(config), config.sweep.executions_per_trial
    lines.append(f"trials: {trials}, {epochs} epochs each, {executions} execution(s) per trial")
    dataset = data_lib.load_dataset(config.data)
    splits = data_lib.split(dataset, config.data)
    measured = {b: whole_epoch_s(config, dataset, splits, b) for b in batch_sizes(config)}
    lines.append("measured whole epoch (training, validation, record, checkpoint, TensorBoard): " + ", ".join(
        f"batch {b}: {later:.2f} s" for b, (_, later) in measured.items()))
    # A process traces the model once (trials reuse it); each trial then pays its epochs and its overhead.
    tracing = max(first - later for first, later in measured.values())
    mean_epoch = statistics.mean(later for _, later in measured.values())
    total = tracing + trials * executions * (epochs * mean_epoch + TRIAL_OVERHEAD_S)
    lines.append(f"estimated time: {total / 60:.1f} min in one process ({trials * executions} trainings x "
                 f"{epochs} epochs at the mean measured epoch, +{TRIAL_OVERHEAD_S} s per training for its "
                 f"files, +{tracing:.1f} s tracing once; this estimate took {time.perf_counter() - started:.0f} s)")
    return "\n".join(lines)
