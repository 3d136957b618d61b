"""`tfsoftmax bench`: epoch time of tfsoftmax's training against the NumPy floor, the D2L eager loop and
plain `model.fit`, and the whole run and sweep from outside; with `--costs`, D2L's cost questions instead
(`costs`: the definition-based cross-entropy against the fused one, a softmax layer as the classes grow).

Every method (`bench_loops`) trains the same softmax regression on the same training split with the same
batch size, learning rate and seed, in one process; the median of its timed epochs is reported with the
test accuracy reached after them. `bench_process` times whole processes. Speed is reported here and never
asserted in tests.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tfsoftmax.bench.loops import MethodResult, numpy_sgd, time_eager, time_plain_fit, time_run_fit
from tfsoftmax.bench.process import SWEEP_EPOCHS, SWEEP_TRIALS, sweep_throughput, whole_run
from tfsoftmax.cli.main import positive_int
from tfsoftmax.config.loader import load_config, override
from tfsoftmax.errors import CONFIG_ERROR, TfsoftmaxError
from tfsoftmax.files import write_json
from tfsoftmax.table import format_table

if TYPE_CHECKING:
    from tfsoftmax.config import Config
    from tfsoftmax.data import Dataset, Splits

DEFAULT_CONFIG = "experiments/fashion_mnist.toml"
DEFAULT_OUT = "logs/bench.json"
DEFAULT_COSTS_OUT = "logs/bench_costs.json"
DEFAULT_GOALS_OUT = "logs/bench_goals.json"
DEFAULT_REPRODUCE_OUT = "logs/bench_reproduce.json"
CLASS_COUNTS = (10, 100, 1000, 10_000, 100_000)
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
    p.add_argument(
        "--out", metavar="FILE", help=f"JSON results (default: {DEFAULT_OUT}, with --costs {DEFAULT_COSTS_OUT})"
    )
    p.add_argument(
        "--no-whole-run", action="store_true", help="skip timing a whole `tfsoftmax run` of the config in a subprocess"
    )
    p.add_argument(
        "--sweep",
        action="store_true",
        help=f"also time a {SWEEP_TRIALS}-trial x {SWEEP_EPOCHS}-epoch sweep with 1 and 2 workers (minutes)",
    )
    p.add_argument(
        "--goals",
        action="store_true",
        help="measure the speed goals instead, each as a ratio in this one run: one more epoch against the NumPy "
        "floor, the whole run against importing TensorFlow, a 12 x 3 sweep against plain keras-tuner, the example "
        "sweep, peak memory of 100 trials against 10 (several minutes)",
    )
    p.add_argument(
        "--reproduce",
        action="store_true",
        help="sweep CONFIG (packed), then train every trial's saved config alone: the largest differences in "
        "validation and test accuracy (minutes)",
    )
    p.add_argument(
        "--costs",
        action="store_true",
        help="measure D2L's cost questions instead of the methods: --epochs epochs of the definition-based, "
        "naive, stable and fused cross-entropy on the whole training set, and a softmax layer's training step, "
        "FLOPs and memory per class count",
    )
    default_classes = ",".join(map(str, CLASS_COUNTS))
    p.add_argument(
        "--classes",
        metavar="K,K,...",
        help=f"class counts for --costs' softmax layer (default: {default_classes})",
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


def class_counts(text: str) -> tuple[int, ...]:
    """--classes as a tuple of class counts, or a one-line error naming the flag and the value."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() and int(part) >= 1 for part in parts):
        raise TfsoftmaxError(
            f"bench: --classes: expected comma-separated integers >= 1 such as 10,100,1000, got '{text}'",
            CONFIG_ERROR,
        )
    return tuple(int(part) for part in parts)


def _check_modes(args: argparse.Namespace) -> tuple[int, ...]:
    """The class counts for --costs, after refusing flags that the chosen mode would ignore."""
    if sum(map(bool, (args.goals, args.reproduce, args.costs or args.sweep))) > 1:
        raise TfsoftmaxError(
            "bench: --goals, --reproduce and --costs/--sweep each measure alone; choose one", CONFIG_ERROR
        )
    if not args.costs:
        if args.classes is not None:
            raise TfsoftmaxError(
                "bench: --classes sets the softmax layer's class counts; it needs --costs", CONFIG_ERROR
            )
        return ()
    if args.sweep:
        raise TfsoftmaxError("bench: --costs measures the costs alone; drop --sweep or --costs", CONFIG_ERROR)
    return CLASS_COUNTS if args.classes is None else class_counts(args.classes)


def measure_costs(
    dataset: Dataset, config: Config, epochs: int, classes: tuple[int, ...], report: Callable[[str], None]
) -> tuple[str, dict[str, list[dict[str, Any]]]]:
    """The losses per epoch and the softmax layer per class count: both tables as text, and as the JSON holds them."""
    from tfsoftmax.lessons import costs

    batch = config.data.batch_size
    report(
        f"bench: {len(costs.LOSSES)} cross-entropy losses x {epochs + 2} epochs on {len(dataset.train_y)} images ..."
    )
    losses = costs.cross_entropy_epochs(
        dataset.train_x, dataset.train_y, batch, epochs, config.train.lr, config.train.seed, config.model.init_stddev
    )
    report(f"bench: a softmax layer's training step for {', '.join(f'{k:,}' for k in classes)} classes ...")
    input_dim = math.prod(dataset.image_shape)
    layers = costs.softmax_layer_cost(classes, input_dim=input_dim, batch_size=batch, seed=config.train.seed)
    text = "\n".join(
        [
            f"cross-entropy, softmax regression on {len(dataset.train_y)} training images, batch {batch}, "
            f"lr {config.train.lr}: median of {epochs} epochs after 1 warm-up; finite on 0..255: one more epoch "
            "on unscaled pixels",
            costs.format_costs(losses),
            f"\nsoftmax layer, Dense(K) on {input_dim} inputs + fused cross-entropy, batch {batch}: one forward "
            "and backward step, median after 1 warm-up",
            costs.format_costs(layers),
        ]
    )
    return text, {"cross_entropy": costs.costs_json(losses), "softmax_layer": costs.costs_json(layers)}


def command(args: argparse.Namespace) -> int:
    """`tfsoftmax bench`: time every method (or, with --costs, the costs), print the tables, write the JSON;
    0 on success."""
    classes = _check_modes(args)
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
    report: dict[str, Any] = {
        "config": args.config,
        "overrides": overrides,
        "epochs": args.epochs,
        "warmup_epochs": 1,
        "batch_size": config.data.batch_size,
        "lr": config.train.lr,
        "machine": machine,
    }
    if args.reproduce:
        from tfsoftmax.bench import goals as bench_goals

        report["reproduce"] = bench_goals.reproduce(args.config, _progress)
        text, out = bench_goals.format_reproduce(report["reproduce"]), Path(args.out or DEFAULT_REPRODUCE_OUT)
    elif args.goals:
        from tfsoftmax.bench import goals as bench_goals

        report["goals"] = bench_goals.measure(args.config, _progress)
        text, out = bench_goals.format_goals(report["goals"]), Path(args.out or DEFAULT_GOALS_OUT)
    elif args.costs:
        # The costs train on the whole training set: the validation split plays no part in a timing.
        report["train_examples"] = len(dataset.train_y)
        text, report["costs"] = measure_costs(dataset, config, args.epochs, classes, _progress)
        out = Path(args.out or DEFAULT_COSTS_OUT)
    else:
        splits = data_lib.split(dataset, config.data)
        n_train = len(splits.train[1])
        report["train_examples"] = n_train
        report["steps_per_execution"] = config.train.steps_per_execution
        report["methods"] = summarize(measure(dataset, splits, config, args.epochs, _progress), n_train)
        report["whole_run"] = None if args.no_whole_run else whole_run(args.config, overrides, _progress)
        report["sweep"] = sweep_throughput(config, _progress) if args.sweep else None
        text, out = format_report(report), Path(args.out or DEFAULT_OUT)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, report)
    print(text)
    print(f"results: {out}")
    return 0
