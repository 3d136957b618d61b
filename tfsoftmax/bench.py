"""`tfsoftmax bench`: epoch time of tfsoftmax's training against the NumPy floor, the D2L eager loop and
plain `model.fit`, and the whole run and sweep from outside.

Every method (`bench_loops`) trains the same softmax regression on the same training split with the same
batch size, learning rate and seed, in one process; the median of its timed epochs is reported with the
test accuracy reached after them. `bench_process` times whole processes. Speed is reported here and never
asserted in tests.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfsoftmax.bench_loops import MethodResult, numpy_sgd, time_eager, time_plain_fit, time_run_fit
from tfsoftmax.bench_process import SWEEP_EPOCHS, SWEEP_TRIALS, sweep_throughput, whole_run
from tfsoftmax.cli import positive_int
from tfsoftmax.errors import CONFIG_ERROR, TfsoftmaxError
from tfsoftmax.files import write_json
from tfsoftmax.loader import load_config, override
from tfsoftmax.table import format_table

if TYPE_CHECKING:
    from tfsoftmax.config import Config
    from tfsoftmax.data import Dataset, Splits

DEFAULT_CONFIG = "experiments/fashion_mnist.toml"
DEFAULT_OUT = "logs/bench.json"
FLOOR = "numpy"
METHODS = {
    "tfsoftmax": "tfsoftmax fit, as `run` does it",
    "scratch": "tfsoftmax fit, model.kind=scratch",
    "numpy": "NumPy minibatch SGD (the floor)",
    "eager": "D2L eager GradientTape loop",
    "plain_fit": "plain fit, cached+shuffled tf.data",
}


def configure_parser(p: argparse.ArgumentParser) -> None:
    """The `bench` subcommand's options; imports nothing heavy, so `tfsoftmax --help` stays fast."""
    p.add_argument(
        "config", nargs="?", default=DEFAULT_CONFIG, help=f"experiment TOML file (default: {DEFAULT_CONFIG})"
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="SECTION.KEY=VALUE",
        help="override a config key; the value is read as TOML (repeatable)",
    )
    p.add_argument(
        "--epochs",
        type=positive_int,
        default=5,
        help="timed epochs per method, after one warm-up epoch; the median is reported (default: 5)",
    )
    p.add_argument("--out", default=DEFAULT_OUT, metavar="FILE", help=f"JSON results (default: {DEFAULT_OUT})")
    p.add_argument(
        "--no-whole-run", action="store_true", help="skip timing a whole `tfsoftmax run` of the config in a subprocess"
    )
    p.add_argument(
        "--sweep",
        action="store_true",
        help=f"also time a {SWEEP_TRIALS}-trial x {SWEEP_EPOCHS}-epoch sweep with 1 and 2 workers (minutes)",
    )


def measure(
    dataset: Dataset, splits: Splits, config: Config, epochs: int, report: Callable[[str], None] = lambda s: None
) -> dict[str, MethodResult]:
    """Every method of METHODS on the same splits, the floor first."""
    scratch = override(config, {"model.kind": "scratch"})
    runners: dict[str, Callable[[], MethodResult]] = {
        "numpy": lambda: numpy_sgd(dataset, splits, config, epochs),
        "tfsoftmax": lambda: time_run_fit(dataset, splits, config, epochs),
        "scratch": lambda: time_run_fit(dataset, splits, scratch, epochs),
        "eager": lambda: time_eager(dataset, splits, config, epochs),
        "plain_fit": lambda: time_plain_fit(dataset, splits, config, epochs),
    }
    results = {}
    for name, runner in runners.items():
        report(f"bench: {METHODS[name]} ...")
        results[name] = runner()
    return {name: results[name] for name in METHODS}


def summarize(results: dict[str, MethodResult], n_train: int) -> dict[str, dict[str, Any]]:
    """Medians, throughput and the ratio to the floor, per method, as the JSON holds them."""
    floor = statistics.median(results[FLOOR].epoch_s)
    out = {}
    for name, r in results.items():
        median = statistics.median(r.epoch_s)
        whole = statistics.median(r.whole_epoch_s) if r.whole_epoch_s else None
        out[name] = {
            "label": METHODS[name],
            "warmup_s": r.warmup_s,
            "epoch_s": r.epoch_s,
            "median_epoch_s": median,
            "images_per_s": n_train / median,
            "ratio_to_floor": median / floor,
            "whole_epoch_s": r.whole_epoch_s,
            "median_whole_epoch_s": whole,
            "whole_epoch_ratio_to_floor": None if whole is None else whole / floor,
            "test_accuracy": r.test_accuracy,
        }
    return out


def format_report(report: dict[str, Any]) -> str:
    """The methods as an aligned text table, then the whole run and the sweep if they were timed."""
    header = [
        "method",
        "warm-up s",
        "train pass s",
        "train images/s",
        "x floor",
        "whole epoch s",
        "x floor",
        "test acc",
    ]
    rows = [
        [
            m["label"],
            f"{m['warmup_s']:.2f}",
            f"{m['median_epoch_s']:.3f}",
            f"{m['images_per_s']:,.0f}",
            f"{m['ratio_to_floor']:.2f}",
            "-" if m["median_whole_epoch_s"] is None else f"{m['median_whole_epoch_s']:.3f}",
            "-" if m["whole_epoch_ratio_to_floor"] is None else f"{m['whole_epoch_ratio_to_floor']:.2f}",
            f"{m['test_accuracy']:.4f}",
        ]
        for m in report["methods"].values()
    ]
    lines = [format_table(header, rows, right=range(1, len(header)))]
    lines.append(
        f"\nmedian of {report['epochs']} epochs after 1 warm-up, {report['train_examples']} training "
        f"images, batch {report['batch_size']}; train pass: the training steps alone; whole epoch: "
        "`time_s` as a run records it (training, validation, callbacks, record, checkpoint, TensorBoard); "
        "x floor: against the NumPy floor's training pass"
    )
    whole = report.get("whole_run")
    if whole:
        lines.append(
            f"whole `tfsoftmax run` process (start-up and imports included): {whole['wall_s']:.1f} s wall "
            f"({whole['epochs']} epochs, test accuracy {whole['test_accuracy']:.4f})"
        )
    for sweep in report.get("sweep") or []:
        lines.append(
            f"sweep, {sweep['workers']} worker(s): {sweep['completed']}/{sweep['trials']} trials x "
            f"{sweep['epochs']} epochs in {sweep['wall_s']:.1f} s = {sweep['trials_per_min']:.2f} trials/min"
        )
    return "\n".join(lines)


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _machine() -> dict[str, Any]:
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


def command(args: argparse.Namespace) -> int:
    """`tfsoftmax bench`: time every method, print the table, write the JSON; 0 on success."""
    overrides = list(args.set or [])
    config = load_config(args.config, overrides)
    if config.train.optimizer != "sgd":
        raise TfsoftmaxError(
            f"{args.config}: train.optimizer: bench compares minibatch SGD loops, got "
            f'"{config.train.optimizer}"; allowed: "sgd"',
            CONFIG_ERROR,
        )
    from tfsoftmax import data as data_lib

    machine = _machine()
    dataset = data_lib.load_dataset(config.data)
    splits = data_lib.split(dataset, config.data)
    n_train = len(splits.train[1])
    report: dict[str, Any] = {
        "config": args.config,
        "overrides": overrides,
        "epochs": args.epochs,
        "warmup_epochs": 1,
        "train_examples": n_train,
        "batch_size": config.data.batch_size,
        "lr": config.train.lr,
        "steps_per_execution": config.train.steps_per_execution,
        "machine": machine,
    }
    report["methods"] = summarize(measure(dataset, splits, config, args.epochs, _progress), n_train)
    report["whole_run"] = None if args.no_whole_run else whole_run(args.config, overrides, _progress)
    report["sweep"] = sweep_throughput(config, _progress) if args.sweep else None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, report)
    print(format_report(report))
    print(f"results: {out}")
    return 0
