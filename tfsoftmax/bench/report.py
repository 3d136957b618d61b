"""One `tfsoftmax bench` report: the machine and the settings, then either the per-epoch methods (with the
whole run and the sweep timed from outside) or D2L's costs; as text to print and as the JSON to save."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tfsoftmax.errors import CONFIG_ERROR, TfsoftmaxError

if TYPE_CHECKING:
    from tfsoftmax.config import Config
    from tfsoftmax.data import Dataset


def machine() -> dict[str, Any]:
    """Where the timings were taken, saved beside them: a ratio means little without its machine."""
    import platform

    import tensorflow as tf

    return {
        "cpus": os.cpu_count(),
        "loadavg_at_start": list(os.getloadavg()),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "floor_blas_threads": 1 if importlib.util.find_spec("threadpoolctl") else "OpenBLAS default",
    }


def _start(config: Config, source: str, overrides: Sequence[str], epochs: int) -> tuple[Dataset, dict[str, Any]]:
    """The data and the report's settings, once the config is one that bench can time."""
    if config.train.optimizer != "sgd":
        raise TfsoftmaxError(
            f"{source}: train.optimizer: bench compares minibatch SGD loops, got "
            f'"{config.train.optimizer}"; allowed: "sgd"',
            CONFIG_ERROR,
        )
    from tfsoftmax import data as data_lib

    report = {
        "config": source,
        "overrides": list(overrides),
        "epochs": epochs,
        "warmup_epochs": 1,
        "batch_size": config.data.batch_size,
        "lr": config.train.lr,
        "machine": machine(),
    }
    return data_lib.load_dataset(config.data), report


def methods_report(
    config: Config,
    source: str,
    overrides: Sequence[str],
    epochs: int,
    whole_run: bool,
    sweep: bool,
    progress: Callable[[str], None],
) -> tuple[str, dict[str, Any]]:
    """Every method's epochs (`methods`), then a whole `tfsoftmax run` of `source` with `overrides` and,
    with `sweep`, a fixed sweep's throughput (`process`): the table, and the report as the JSON holds it."""
    from tfsoftmax import data as data_lib
    from tfsoftmax.bench import methods, process

    dataset, report = _start(config, source, overrides, epochs)
    splits = data_lib.split(dataset, config.data)
    n_train = len(splits.train[1])
    report["train_examples"] = n_train
    report["steps_per_execution"] = config.train.steps_per_execution
    report["methods"] = methods.summarize(methods.measure(dataset, splits, config, epochs, progress), n_train)
    report["whole_run"] = process.whole_run(source, list(overrides), progress) if whole_run else None
    report["sweep"] = process.sweep_throughput(config, progress) if sweep else None
    return methods.format_report(report), report


def costs_report(
    config: Config,
    source: str,
    overrides: Sequence[str],
    epochs: int,
    classes: tuple[int, ...],
    progress: Callable[[str], None],
) -> tuple[str, dict[str, Any]]:
    """D2L's cost questions (`costs`) for `classes`: both tables, and the report as the JSON holds it."""
    from tfsoftmax.bench.costs import measure_costs

    dataset, report = _start(config, source, overrides, epochs)
    # The costs train on the whole training set: the validation split plays no part in a timing.
    report["train_examples"] = len(dataset.train_y)
    text, report["costs"] = measure_costs(dataset, config, epochs, classes, progress)
    return text, report
