"""TensorBoard's HParams records: every run is a session (its hyperparameters and metrics), and a sweep
declares its columns before its first trial.

A run's session holds the keys that always matter (STANDARD_KEYS) and every key that differs from the
defaults, so runs of an experiment folder, or of a log root of runs, line up as columns: TensorBoard
takes the columns from the sessions where no sweep declares them. A sweep declares its own (TensorBoard
then uses that declaration for the whole log root).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tfsoftmax.config import Config, flat_config, space
from tfsoftmax.rundir import layout as rundir

STANDARD_KEYS = ("train.lr", "data.batch_size", "train.optimizer", "train.epochs", "model.kind", "train.seed")
# Folders and file locations say where a run read its data, not how it trained.
_NOT_HPARAMS = ("data.data_dir", "data.manual_dir")
# The metrics every trial logs, as (tag, TensorBoard run relative to the trial's run) for HParams columns.
SWEEP_METRICS = [
    ("epoch_accuracy", "validation"),
    ("epoch_loss", "validation"),
    ("epoch_accuracy", "train"),
    ("epoch_loss", "train"),
    ("epoch_time_s", "train"),
    ("epoch_examples_per_second", "train"),
]


def run_hparams(config: Config) -> dict[str, Any]:
    """The session's hyperparameters: the standard keys, then every other key set away from its default."""
    values, defaults = flat_config(config), flat_config(Config())
    changed = [k for k in values if values[k] != defaults[k] and k not in STANDARD_KEYS and k not in _NOT_HPARAMS]
    return {k: values[k] for k in (*STANDARD_KEYS, *changed)}


def best_metrics(history: dict[str, list[float]]) -> dict[str, float]:
    """The best validation accuracy and loss over the epochs (final ones are TensorBoard's last values)."""
    best = {}
    for metric in ("val_accuracy", "val_loss"):
        epoch = rundir.best_epoch(history, metric)
        if epoch is not None:
            best[f"best/{metric}"] = history[metric][epoch]
    return best


def write_run_session(run_dir: Path, config: Config, history: dict[str, list[float]], step: int) -> None:
    """Make a finished run a row of the HParams dashboard: its hyperparameters, its best validation
    metrics as scalars beside the test ones the report writes."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp_api

    writer = tf.summary.create_file_writer(str(run_dir))
    with writer.as_default():
        # Sessions are grouped by this name: the experiment keeps same-named runs of two experiments apart.
        hp_api.hparams(run_hparams(config), trial_id=f"{config.logging.experiment}/{run_dir.name}")
        for tag, value in best_metrics(history).items():
            tf.summary.scalar(tag, value, step=step, description="best epoch of the run")
    writer.close()


def write_sweep_config(config: Config, folder: Path) -> None:
    """Declare every swept key and the metrics before the first trial, so the dashboard's columns never
    depend on which trial happened to be logged first."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp_api

    # Only what every trial has: TensorBoard's parallel-coordinates view draws no line for a session that
    # lacks a declared column's value.
    hparams = [hp_api.HParam(entry.key, space.hparams_domain(entry)) for entry in config.sweep.space]
    metrics = [
        hp_api.Metric(tag, group=group, display_name=f"{group} {tag.removeprefix('epoch_')}")
        for tag, group in SWEEP_METRICS
    ]
    writer = tf.summary.create_file_writer(str(folder))
    with writer.as_default():
        hp_api.hparams_config(hparams=hparams, metrics=metrics)
    writer.close()
