"""`tfsoftmax bench`: how fast tfsoftmax trains here, against the NumPy floor, the D2L eager loop and plain
`model.fit`, with the whole run and a sweep from outside; with `--costs`, D2L's cost questions instead.
Prints the table and writes the JSON. Speed is reported here and never asserted in tests."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tfsoftmax.cli import common
from tfsoftmax.errors import CONFIG_ERROR, TfsoftmaxError

HELP = (
    "seconds per epoch against the NumPy floor, the eager loop and plain fit; --costs: what a naive loss and "
    "many classes cost"
)
DEFAULT_CONFIG = "experiments/fashion_mnist.toml"
DEFAULT_OUT = "logs/bench.json"
DEFAULT_COSTS_OUT = "logs/bench_costs.json"


def configure_parser(p: argparse.ArgumentParser) -> None:
    """The `bench` subcommand's options; imports nothing heavy, so `tfsoftmax --help` stays fast."""
    from tfsoftmax.bench.costs import CLASS_COUNTS
    from tfsoftmax.bench.process import SWEEP_EPOCHS, SWEEP_TRIALS

    p.add_argument(
        "config", nargs="?", default=DEFAULT_CONFIG, help=f"experiment TOML file (default: {DEFAULT_CONFIG})"
    )
    common.add_set(p)
    p.add_argument(
        "--epochs",
        type=common.positive_int,
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


def class_counts(text: str) -> tuple[int, ...]:
    """--classes as a tuple of class counts, or a one-line error naming the flag and the value."""
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() and int(part) >= 1 for part in parts):
        raise TfsoftmaxError(
            f"bench: --classes: expected comma-separated integers >= 1 such as 10,100,1000, got '{text}'",
            CONFIG_ERROR,
        )
    return tuple(int(part) for part in parts)


def _classes(args: argparse.Namespace) -> tuple[int, ...]:
    """The class counts for --costs, after refusing flags that the chosen mode would ignore."""
    from tfsoftmax.bench.costs import CLASS_COUNTS

    if not args.costs:
        if args.classes is not None:
            raise TfsoftmaxError(
                "bench: --classes sets the softmax layer's class counts; it needs --costs", CONFIG_ERROR
            )
        return ()
    if args.sweep:
        raise TfsoftmaxError("bench: --costs measures the costs alone; drop --sweep or --costs", CONFIG_ERROR)
    return CLASS_COUNTS if args.classes is None else class_counts(args.classes)


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def command(args: argparse.Namespace) -> int:
    """Time every method (or, with --costs, the costs), print the tables, write the JSON; 0 on success."""
    from tfsoftmax.files import write_json

    classes = _classes(args)
    overrides = list(args.set or [])
    config = common.config(args)
    common.quiet_tensorflow(args)
    from tfsoftmax.bench import report

    if args.costs:
        text, result = report.costs_report(config, args.config, overrides, args.epochs, classes, _progress)
        out = Path(args.out or DEFAULT_COSTS_OUT)
    else:
        text, result = report.methods_report(
            config, args.config, overrides, args.epochs, not args.no_whole_run, args.sweep, _progress
        )
        out = Path(args.out or DEFAULT_OUT)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result)
    print(text)
    print(f"results: {out}")
    return 0
