"""Epoch time of tfsoftmax's training against the NumPy floor, the D2L eager loop and plain `model.fit`.

Every method trains the same softmax regression on the same training split with the same batch size,
learning rate and seed, in one process. Each gets one warm-up epoch (tracing, allocation), then the
median of the timed epochs is reported with the test accuracy reached after them. Speed is reported
here and never asserted in tests.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from tfsoftmax.config import Config, SpaceEntry, load_config, override, to_toml
from tfsoftmax.errors import CONFIG_ERROR, RUNTIME_ERROR, TfsoftmaxError
from tfsoftmax.files import write_json, write_text

if TYPE_CHECKING:
    import keras

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
# A fixed sweep: seeded random search over the learning rate. Not a grid: keras-tuner's distributed
# GridSearch handed out one trial at a time after the first two, and its workers took ~24 s to exit
# (measured: 12 trials, 2 workers, 62 s grid vs 29 s random).
SWEEP_SPACE = SpaceEntry(key="train.lr", min=0.01, max=1.0, sampling="log")
SWEEP_TRIALS = 12
SWEEP_EPOCHS = 3
SWEEP_WORKERS = (1, 2)


@dataclass
class MethodResult:
    """Timed epochs of one method, after a warm-up epoch that took `warmup_s` (tracing and compiling
    included): `epoch_s` is each epoch's training pass alone, `whole_epoch_s` (for `fit` methods) each
    whole epoch as a run records it in `time_s`: training, validation, callbacks, record, checkpoint."""

    warmup_s: float
    epoch_s: list[float]
    test_accuracy: float
    whole_epoch_s: list[float] | None = None


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got '{text}'")
    return int(text)


def configure_parser(p: argparse.ArgumentParser) -> None:
    """The `bench` subcommand's options; imports nothing heavy, so `tfsoftmax --help` stays fast."""
    p.add_argument("config", nargs="?", default=DEFAULT_CONFIG, help=f"experiment TOML file (default: {DEFAULT_CONFIG})")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="override a config key; the value is read as TOML (repeatable)")
    p.add_argument("--epochs", type=_positive_int, default=5,
                   help="timed epochs per method, after one warm-up epoch; the median is reported (default: 5)")
    p.add_argument("--out", default=DEFAULT_OUT, metavar="FILE", help=f"JSON results (default: {DEFAULT_OUT})")
    p.add_argument("--no-whole-run", action="store_true",
                   help="skip timing a whole `tfsoftmax run` of the config in a subprocess")
    p.add_argument("--sweep", action="store_true",
                   help=f"also time a {SWEEP_TRIALS}-trial x {SWEEP_EPOCHS}-epoch sweep with 1 and 2 workers "
                        "(minutes)")


def _timed(throughput: list[float], whole: list[float], n_train: int, test_accuracy: float) -> MethodResult:
    """Epoch times as `train.epoch_stats` measures them: training passes recovered from the training
    throughput, and whole epochs; the first epoch is the warm-up."""
    train_s = [n_train / rate for rate in throughput]
    return MethodResult(warmup_s=whole[0], epoch_s=train_s[1:], whole_epoch_s=whole[1:], test_accuracy=test_accuracy)


def _build(dataset: Dataset, config: Config) -> keras.Model:
    from tfsoftmax.model import build_model
    from tfsoftmax.train import seed_everything

    seed_everything(config.train.seed)
    return build_model(dataset.image_shape, dataset.num_classes, config.model, config.train)


def _test_accuracy(model: keras.Model, splits: Splits) -> float:
    from tfsoftmax.data import eval_batches

    return float(model.evaluate(eval_batches(*splits.test), verbose=0, return_dict=True)["accuracy"])


def time_run_fit(dataset: Dataset, splits: Splits, config: Config, epochs: int) -> MethodResult:
    """tfsoftmax's own training: `train.fit` with the record, timing and TensorBoard callbacks `run` uses."""
    from tfsoftmax import train

    model = _build(dataset, config)
    with tempfile.TemporaryDirectory(prefix="tfsoftmax-bench-") as tmp, contextlib.redirect_stdout(sys.stderr):
        run_dir = Path(tmp)
        record = train.fit(model, splits, config, run_dir, [train.tensorboard_callback(run_dir, config)],
                           epochs + 1)
    return _timed(record.history["examples_per_second"], record.history["time_s"], len(splits.train[1]),
                  _test_accuracy(model, splits))


def time_plain_fit(dataset: Dataset, splits: Splits, config: Config, epochs: int) -> MethodResult:
    """What a user writes by hand: the decoded images through cache and a full shuffle buffer, Keras'
    default compile (on CPU: no XLA, one step per execution), validation on the same split."""
    import tensorflow as tf

    from tfsoftmax import train

    plain = override(config, {"model.kind": "keras", "train.steps_per_execution": 1})
    model = _build(dataset, plain)
    x, y = splits.train
    train_ds = (tf.data.Dataset.from_tensor_slices((x, y)).cache().shuffle(len(x))
                .batch(config.data.batch_size).prefetch(tf.data.AUTOTUNE))
    val_ds = None if splits.val is None else tf.data.Dataset.from_tensor_slices(splits.val).batch(
        config.data.batch_size)
    stats = train.epoch_stats(len(x))
    with contextlib.redirect_stdout(sys.stderr):
        # shuffle=False only silences Keras' warning that it cannot shuffle a tf.data.Dataset itself.
        history = model.fit(train_ds, validation_data=val_ds, epochs=epochs + 1, verbose=2, shuffle=False,
                            callbacks=[stats])
    return _timed(history.history["examples_per_second"], stats.times, len(x), _test_accuracy(model, splits))


def time_eager(dataset: Dataset, splits: Splits, config: Config, epochs: int) -> MethodResult:
    """D2L's TensorFlow trainer: batch, then shuffle the batches (d2l.FashionMNIST.get_dataloader), and
    an eager GradientTape step per batch with no tf.function. D2L's resize_with_pad to 28x28 is left out:
    on these images it is a no-op."""
    import tensorflow as tf

    from tfsoftmax.model import make_optimizer

    model = _build(dataset, override(config, {"model.kind": "keras"}))
    optimizer = make_optimizer(config.train)
    loss_fn = model.loss
    x, y = splits.train
    train_ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(config.data.batch_size).shuffle(len(x))
    times = []
    for _ in range(epochs + 1):
        start = time.perf_counter()
        for images, labels in train_ds:
            with tf.GradientTape() as tape:
                loss = loss_fn(labels, model(images, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
        times.append(time.perf_counter() - start)
    return MethodResult(warmup_s=times[0], epoch_s=times[1:], test_accuracy=_test_accuracy(model, splits))


def _one_blas_thread() -> contextlib.AbstractContextManager:
    """On 2 busy cores OpenBLAS's second thread spins against everything else: measured 0.05-1.6 s per
    floor epoch with 2 threads, a steady 0.053 s with 1. threadpoolctl (via scikit-learn) is optional."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def numpy_sgd(dataset: Dataset, splits: Splits, config: Config, epochs: int) -> MethodResult:
    """The floor: the same model, loss and minibatch SGD in NumPy, shuffled indices gathered per batch."""
    with _one_blas_thread():
        return _numpy_sgd(dataset, splits, config, epochs)


def _numpy_sgd(dataset: Dataset, splits: Splits, config: Config, epochs: int) -> MethodResult:
    import numpy as np

    x, y = splits.train
    x = x.reshape(len(x), -1)
    classes = dataset.num_classes
    rng = np.random.default_rng(config.train.seed)
    w = rng.normal(0.0, config.model.init_stddev, size=(x.shape[1], classes)).astype(np.float32)
    b = np.zeros(classes, np.float32)
    lr, batch = np.float32(config.train.lr), config.data.batch_size
    times = []
    for _ in range(epochs + 1):
        start = time.perf_counter()
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            xb, yb = x[idx], y[idx]
            logits = xb @ w + b
            logits -= logits.max(axis=1, keepdims=True)  # the stable softmax: exp never overflows
            probs = np.exp(logits)
            probs /= probs.sum(axis=1, keepdims=True)
            # d(mean cross-entropy)/d(logits) = (softmax - onehot) / batch
            probs[np.arange(len(yb)), yb] -= 1.0
            probs /= len(yb)
            w -= lr * (xb.T @ probs)
            b -= lr * probs.sum(axis=0)
        times.append(time.perf_counter() - start)
    test_x, test_y = splits.test
    predicted = (test_x.reshape(len(test_x), -1) @ w + b).argmax(axis=1)
    return MethodResult(warmup_s=times[0], epoch_s=times[1:], test_accuracy=float((predicted == test_y).mean()))


def measure(dataset: Dataset, splits: Splits, config: Config, epochs: int,
            report: Callable[[str], None] = lambda s: None) -> dict[str, MethodResult]:
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
        out[name] = {"label": METHODS[name], "warmup_s": r.warmup_s, "epoch_s": r.epoch_s, "median_epoch_s": median,
                     "images_per_s": n_train / median, "ratio_to_floor": median / floor,
                     "whole_epoch_s": r.whole_epoch_s, "median_whole_epoch_s": whole,
                     "whole_epoch_ratio_to_floor": None if whole is None else whole / floor,
                     "test_accuracy": r.test_accuracy}
    return out


def format_table(report: dict[str, Any]) -> str:
    """The methods as an aligned text table, then the whole run and the sweep if they were timed."""
    header = ["method", "warm-up s", "train pass s", "train images/s", "x floor", "whole epoch s", "x floor",
              "test acc"]
    rows = [[m["label"], f"{m['warmup_s']:.2f}", f"{m['median_epoch_s']:.3f}", f"{m['images_per_s']:,.0f}",
             f"{m['ratio_to_floor']:.2f}",
             "-" if m["median_whole_epoch_s"] is None else f"{m['median_whole_epoch_s']:.3f}",
             "-" if m["whole_epoch_ratio_to_floor"] is None else f"{m['whole_epoch_ratio_to_floor']:.2f}",
             f"{m['test_accuracy']:.4f}"] for m in report["methods"].values()]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [header, *rows]]
    lines.append(f"\nmedian of {report['epochs']} epochs after 1 warm-up, {report['train_examples']} training "
                 f"images, batch {report['batch_size']}; train pass: the training steps alone; whole epoch: "
                 "`time_s` as a run records it (training, validation, callbacks, record, checkpoint, TensorBoard); "
                 "x floor: against the NumPy floor's training pass")
    whole = report.get("whole_run")
    if whole:
        lines.append(f"whole `tfsoftmax run` process (start-up and imports included): {whole['wall_s']:.1f} s wall "
                     f"({whole['epochs']} epochs, test accuracy {whole['test_accuracy']:.4f})")
    for sweep in report.get("sweep") or []:
        lines.append(f"sweep, {sweep['workers']} worker(s): {sweep['completed']}/{sweep['trials']} trials x "
                     f"{sweep['epochs']} epochs in {sweep['wall_s']:.1f} s = {sweep['trials_per_min']:.2f} trials/min")
    return "\n".join(lines)


def _child(argv: list[str]) -> float:
    """Run `python -m tfsoftmax ARGV`; its wall time, or its last error line as a TfsoftmaxError."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tfsoftmax", *argv], capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise TfsoftmaxError(f"bench: `tfsoftmax {argv[0]}` exited with {proc.returncode}: {last}", RUNTIME_ERROR)
    return wall


def whole_run(config_path: str, overrides: list[str]) -> dict[str, Any]:
    """Wall time of `tfsoftmax run` in a fresh process: start-up, data, build, epochs, evaluation, report."""
    with tempfile.TemporaryDirectory(prefix="tfsoftmax-bench-run-") as tmp:
        sets = [a for text in overrides for a in ("--set", text)]
        wall = _child(["run", config_path, *sets, "--logdir", tmp])
        record = json.loads(next(Path(tmp).glob("*/*/metrics.json")).read_text())
    return {"wall_s": wall, "in_run_wall_s": record["wall_time_s"], "epochs": record["epochs_completed"],
            "test_accuracy": record["test"]["accuracy"]}


def sweep_throughput(config: Config) -> list[dict[str, Any]]:
    """Trials per minute of the same sweep with 1 worker (in process) and with 2 worker processes."""
    out = []
    with tempfile.TemporaryDirectory(prefix="tfsoftmax-bench-sweep-") as tmp:
        for workers in SWEEP_WORKERS:
            sweep_config = dataclasses.replace(
                config, logging=dataclasses.replace(config.logging, root=tmp, experiment=f"sweep_{workers}w"),
                sweep=dataclasses.replace(config.sweep, algorithm="random", max_trials=SWEEP_TRIALS,
                                          epochs=SWEEP_EPOCHS, space=(SWEEP_SPACE,)))
            path = Path(tmp) / f"sweep_{workers}w.toml"
            write_text(path, to_toml(sweep_config, "Generated by tfsoftmax bench --sweep."))
            wall = _child(["sweep", str(path), *(["--workers", str(workers)] if workers > 1 else [])])
            trials = json.loads((Path(tmp) / f"sweep_{workers}w" / "results.json").read_text())["trials"]
            completed = sum(t["status"] == "completed" for t in trials)
            out.append({"workers": workers, "trials": SWEEP_TRIALS, "completed": completed,
                        "epochs": SWEEP_EPOCHS, "wall_s": wall, "trials_per_min": completed / wall * 60})
    return out


def _machine() -> dict[str, Any]:
    import platform

    import tensorflow as tf

    return {"cpus": os.cpu_count(), "loadavg_at_start": list(os.getloadavg()), "platform": platform.platform(),
            "python": platform.python_version(), "tensorflow": tf.__version__,
            "floor_blas_threads": 1 if importlib.util.find_spec("threadpoolctl") else "OpenBLAS default"}


def command(args: argparse.Namespace) -> int:
    """`tfsoftmax bench`: time every method, print the table, write the JSON; 0 on success."""
    overrides = list(args.set or [])
    config = load_config(args.config, overrides)
    if config.train.optimizer != "sgd":
        raise TfsoftmaxError(f"{args.config}: train.optimizer: bench compares minibatch SGD loops, got "
                             f"\"{config.train.optimizer}\"; allowed: \"sgd\"", CONFIG_ERROR)
    from tfsoftmax import data as data_lib

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    machine = _machine()
    dataset = data_lib.load_dataset(config.data)
    splits = data_lib.split(dataset, config.data)
    n_train = len(splits.train[1])
    report: dict[str, Any] = {"config": args.config, "overrides": overrides, "epochs": args.epochs,
                              "warmup_epochs": 1, "train_examples": n_train, "batch_size": config.data.batch_size,
                              "lr": config.train.lr, "steps_per_execution": config.train.steps_per_execution,
                              "machine": machine}
    report["methods"] = summarize(measure(dataset, splits, config, args.epochs, progress), n_train)
    report["whole_run"] = None
    if not args.no_whole_run:
        progress("bench: whole `tfsoftmax run` in a subprocess ...")
        report["whole_run"] = whole_run(args.config, overrides)
    report["sweep"] = None
    if args.sweep:
        progress(f"bench: sweeps with {' and '.join(map(str, SWEEP_WORKERS))} worker(s) ...")
        report["sweep"] = sweep_throughput(config)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, report)
    print(format_table(report))
    print(f"results: {out}")
    return 0
