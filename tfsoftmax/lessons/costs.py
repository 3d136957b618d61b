"""D2L's cost questions, measured: what the definition-based cross-entropy costs against the fused one
(softmax-regression-scratch, exercise 2) and what a softmax layer costs as the class count grows (exercise 4,
"a large vocabulary"). Times are reported, never asserted.

Everything runs as plain `tf.function` graphs without XLA, as `build_model` compiles the models, so each
loss runs as the separate kernels a real run executes. Only imported when measuring, so TensorFlow is
imported at the top.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from tfsoftmax.config import DataConfig, ModelConfig, TrainConfig
from tfsoftmax.data import preprocess, steps_per_epoch
from tfsoftmax.models import ops
from tfsoftmax.models.scratch import naive_cross_entropy
from tfsoftmax.table import format_table

LossFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def definition_cross_entropy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """The exercise's literal definition, -sum_j y_j log(yhat_j) with one-hot y: it takes the log of every
    class's probability, not just the true one's, and 0 * log(0) is NaN as soon as any probability underflows."""
    onehot = tf.one_hot(tf.cast(labels, tf.int64), tf.shape(logits)[-1], dtype=logits.dtype)
    return -tf.reduce_mean(tf.reduce_sum(onehot * tf.math.log(ops.softmax(logits)), axis=-1))


def fused_cross_entropy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """TensorFlow's one-kernel softmax cross-entropy, what Keras' from_logits loss runs."""
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(labels, tf.int64), logits))


FUSED = "fused"
LOSSES: dict[str, tuple[LossFn, str]] = {
    "definition": (definition_cross_entropy, "-sum(onehot * log(softmax))"),
    "naive": (naive_cross_entropy, "softmax, then -log(true class), D2L's"),
    "stable": (ops.cross_entropy_from_logits, "log-sum-exp from logits, scratch's"),
    FUSED: (fused_cross_entropy, "tf.nn.sparse_softmax_cross_entropy_with_logits"),
}


@dataclass
class LossCost:
    """One loss's training epochs: `epoch_s` after a warm-up epoch (tracing included), the last epoch's mean
    loss (equal across losses when they do the same work), and whether an epoch on unscaled 0..255 pixels
    kept every batch's loss finite."""

    loss: str
    formula: str
    warmup_s: float
    epoch_s: list[float]
    median_epoch_s: float
    ratio_to_fused: float
    last_epoch_loss: float
    finite_unscaled: bool


@dataclass
class LayerCost:
    """One training step (forward and backward) of a Dense(num_classes) + fused cross-entropy layer.

    flops: 2*B*D*K for the forward matmul plus 2*B*D*K for the kernel's gradient; the input needs no
    gradient (it is data). weight_bytes: float32 kernel and bias; SGD with momentum keeps one more copy
    (momentum_bytes), Adam two. logits_bytes: one batch's logits; the softmax and its gradient are as large.
    """

    num_classes: int
    input_dim: int
    batch_size: int
    warmup_s: float
    step_s: list[float]
    median_step_s: float
    us_per_class: float
    flops: int
    gflop_per_s: float
    weight_bytes: int
    momentum_bytes: int
    logits_bytes: int


CostRow = LossCost | LayerCost


def _epoch_fn(params: list[tf.Variable], loss_fn: LossFn, batch_size: int, lr: float) -> Callable:
    """One whole epoch in one graph: Python's per-step call overhead would otherwise hide the losses' cost."""
    w, b = params

    @tf.function
    def epoch(images: tf.Tensor, labels: tf.Tensor, order: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        total, finite = tf.constant(0.0), tf.constant(True)
        n = order.shape[0]
        for i in tf.range(steps_per_epoch(n, batch_size)):
            rows = order[i * batch_size : (i + 1) * batch_size]
            x, y = tf.gather(images, rows), tf.gather(labels, rows)
            with tf.GradientTape() as tape:
                loss = loss_fn(tf.matmul(x, w) + b, y)
            ops.sgd_update(params, tape.gradient(loss, params), lr)
            total += loss * tf.cast(tf.shape(rows)[0], tf.float32)
            finite = tf.logical_and(finite, tf.math.is_finite(loss))
        return total / n, finite

    return epoch


def cross_entropy_epochs(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int = DataConfig.batch_size,
    epochs: int = 3,
    lr: float = TrainConfig.lr,
    seed: int = TrainConfig.seed,
    init_stddev: float = ModelConfig.init_stddev,
) -> list[LossCost]:
    """Train softmax regression with each loss of LOSSES from the same weights on the same batches.

    Args:
        images: pixels as stored, 0..255 (uint8 or any number type); timed epochs scale them as data.preprocess
            does, one more epoch trains on them unscaled to see which losses overflow.
        labels: class ids.
        epochs: timed epochs per loss, after one warm-up epoch; the median is reported.

    Returns:
        One LossCost per loss, in LOSSES' order, ratios against the fused loss.
    """
    flat = images.reshape(len(images), -1)
    scaled, unscaled = tf.constant(preprocess(flat, True)), tf.constant(preprocess(flat, False))
    y = tf.constant(labels.astype(np.int64))
    num_classes = int(labels.max()) + 1
    rng = np.random.default_rng(seed)
    w0 = rng.normal(0.0, init_stddev, (flat.shape[1], num_classes)).astype(np.float32)
    orders = [tf.constant(rng.permutation(len(flat))) for _ in range(epochs + 1)]
    params = [tf.Variable(w0), tf.Variable(tf.zeros(num_classes))]

    def reset() -> None:
        params[0].assign(w0)
        params[1].assign(tf.zeros(num_classes))

    measured = []
    for name, (loss_fn, formula) in LOSSES.items():
        epoch = _epoch_fn(params, loss_fn, batch_size, lr)
        reset()
        times, loss = [], 0.0
        for order in orders:
            start = time.perf_counter()
            loss = float(epoch(scaled, y, order)[0])
            times.append(time.perf_counter() - start)
        reset()
        finite = bool(epoch(unscaled, y, orders[0])[1])
        measured.append((name, formula, times, loss, finite))
    fused = statistics.median(next(t for name, _, t, _, _ in measured if name == FUSED)[1:])
    return [
        LossCost(
            loss=name,
            formula=formula,
            warmup_s=times[0],
            epoch_s=times[1:],
            median_epoch_s=statistics.median(times[1:]),
            ratio_to_fused=statistics.median(times[1:]) / fused,
            last_epoch_loss=loss,
            finite_unscaled=finite,
        )
        for name, formula, times, loss, finite in measured
    ]


def _layer_step(num_classes: int, input_dim: int, batch_size: int, seed: int) -> Callable[[], Any]:
    """A compiled forward and backward pass on one fixed random batch, returning the gradients so
    none of the work is pruned from the graph."""
    w = tf.Variable(tf.random.stateless_normal((input_dim, num_classes), (seed, 0), stddev=0.01))
    b = tf.Variable(tf.zeros(num_classes))
    x = tf.random.stateless_uniform((batch_size, input_dim), (seed, 1))
    y = tf.random.stateless_uniform((batch_size,), (seed, 2), maxval=num_classes, dtype=tf.int64)

    @tf.function
    def step() -> list[tf.Tensor]:
        with tf.GradientTape() as tape:
            loss = fused_cross_entropy(tf.matmul(x, w) + b, y)
        return tape.gradient(loss, [w, b])

    return step


def softmax_layer_cost(
    num_classes: Sequence[int],
    input_dim: int = 784,
    batch_size: int = DataConfig.batch_size,
    repeats: int = 10,
    budget_s: float = 3.0,
    seed: int = TrainConfig.seed,
) -> list[LayerCost]:
    """Time, FLOPs and memory of one softmax layer's training step per class count: all grow linearly in K.

    Args:
        num_classes: class counts to measure; 100,000 needs ~0.7 GB (kernel and its gradient).
        repeats: timed steps per class count after one warm-up step, cut short once `budget_s` seconds are
            spent (but never below 3), so large K stays within a minute on two cores.

    Returns:
        One LayerCost per class count, in the given order.
    """
    rows = []
    for k in num_classes:
        step = _layer_step(k, input_dim, batch_size, seed)
        start = time.perf_counter()
        step()
        warmup = time.perf_counter() - start
        times: list[float] = []
        while len(times) < repeats and (len(times) < 3 or sum(times) < budget_s):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        median, flops = statistics.median(times), 4 * batch_size * input_dim * k
        weights = (input_dim * k + k) * 4
        rows.append(
            LayerCost(
                num_classes=k,
                input_dim=input_dim,
                batch_size=batch_size,
                warmup_s=warmup,
                step_s=times,
                median_step_s=median,
                us_per_class=median / k * 1e6,
                flops=flops,
                gflop_per_s=flops / median / 1e9,
                weight_bytes=weights,
                momentum_bytes=weights,
                logits_bytes=batch_size * k * 4,
            )
        )
    return rows


def _mb(n: int) -> str:
    return f"{n / 1e6:,.2f}"


def format_costs(rows: Sequence[CostRow]) -> str:
    """An aligned text table of rows of one kind, numbers right-aligned."""
    if rows and isinstance(rows[0], LossCost):
        header = ["loss", "formula", "warm-up s", "epoch s", "x fused", "last-epoch loss", "finite on 0..255"]
        cells = [
            [
                r.loss,
                r.formula,
                f"{r.warmup_s:.2f}",
                f"{r.median_epoch_s:.3f}",
                f"{r.ratio_to_fused:.2f}",
                f"{r.last_epoch_loss:.4f}",
                "yes" if r.finite_unscaled else "no",
            ]
            for r in rows
        ]
        return format_table(header, cells, right=range(2, 6))
    header = ["classes", "step ms", "us/class", "GFLOP", "GFLOP/s", "weights MB", "+momentum MB", "logits MB"]
    cells = [
        [
            f"{r.num_classes:,}",
            f"{r.median_step_s * 1e3:.2f}",
            f"{r.us_per_class:.2f}",
            f"{r.flops / 1e9:.3f}",
            f"{r.gflop_per_s:.1f}",
            _mb(r.weight_bytes),
            _mb(r.momentum_bytes),
            _mb(r.logits_bytes),
        ]
        for r in rows
    ]
    return format_table(header, cells, right=range(len(header)))


def costs_json(rows: Sequence[CostRow]) -> list[dict[str, Any]]:
    """The rows as plain dicts, ready for json.dump."""
    return [dataclasses.asdict(r) for r in rows]
