"""The per-epoch methods side by side: every training loop of `loops` on the same splits, the floor first,
then their medians, throughput and ratios to the floor as `tfsoftmax bench` prints and saves them.

Every method trains the same softmax regression on the same training split with the same batch size,
learning rate and seed, in one process; the median of its timed epochs is reported with the test accuracy
reached after them.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tfsoftmax.bench.loops import MethodResult, numpy_sgd, time_eager, time_plain_fit, time_run_fit
from tfsoftmax.config.loader import override
from tfsoftmax.table import format_table

if TYPE_CHECKING:
    from tfsoftmax.config import Config
    from tfsoftmax.data import Dataset, Splits

FLOOR = "numpy"
METHODS = {
    "tfsoftmax": "tfsoftmax's training, as `run` does it",
    "scratch": "tfsoftmax's training, model.kind=scratch (fit)",
    "numpy": "NumPy minibatch SGD (the floor)",
    "eager": "D2L eager GradientTape loop",
    "plain_fit": "plain fit, cached+shuffled tf.data",
}


def measure(
    dataset: Dataset, splits: Splits, config: Config, epochs: int, report: Callable[[str], None]
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
