"""The training loops `tfsoftmax bench` times, each on the same splits with the same model, batch size, learning
rate and seed: tfsoftmax's own `fit`, a plain hand-written `fit`, D2L's eager GradientTape loop and the NumPy floor.

Each runs one warm-up epoch (tracing, allocation) before the timed ones.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tfsoftmax.config.loader import override

if TYPE_CHECKING:
    import keras

    from tfsoftmax.config import Config
    from tfsoftmax.data import Dataset, Splits


@dataclass
class MethodResult:
    """Timed epochs of one method, after a warm-up epoch that took `warmup_s` (tracing and compiling
    included): `epoch_s` is each epoch's training pass alone, `whole_epoch_s` (for `fit` methods) each
    whole epoch as a run records it in `time_s`: training, validation, callbacks, record, checkpoint."""

    warmup_s: float
    epoch_s: list[float]
    test_accuracy: float
    whole_epoch_s: list[float] | None = None


def _timed(throughput: list[float], whole: list[float], n_train: int, test_accuracy: float) -> MethodResult:
    """Epoch times as `callbacks.EpochStats` measures them: training passes recovered from the training
    throughput, and whole epochs; the first epoch is the warm-up."""
    train_s = [n_train / rate for rate in throughput]
    return MethodResult(warmup_s=whole[0], epoch_s=train_s[1:], whole_epoch_s=whole[1:], test_accuracy=test_accuracy)


def seeded_model(dataset: Dataset, config: Config) -> keras.Model:
    """A fresh model of `config`, seeded as `run` seeds it, so every method starts from the same weights."""
    from tfsoftmax.models.softmax import build_model
    from tfsoftmax.training.train import seed_everything

    seed_everything(config.train.seed)
    return build_model(dataset.image_shape, dataset.num_classes, config.model, config.train)


def _test_accuracy(model: keras.Model, splits: Splits) -> float:
    from tfsoftmax.data import eval_batches

    return float(model.evaluate(eval_batches(*splits.test), verbose=0, return_dict=True)["accuracy"])


def time_run_fit(dataset: Dataset, splits: Splits, config: Config, epochs: int) -> MethodResult:
    """tfsoftmax's own training, with the record, timing and TensorBoard callbacks `run` uses, by the engine
    `run` picks for the config (`train.train_model`)."""
    from tfsoftmax.training import train

    model = seeded_model(dataset, config)
    with tempfile.TemporaryDirectory(prefix="tfsoftmax-bench-") as tmp, contextlib.redirect_stdout(sys.stderr):
        callbacks = train.board_callbacks(Path(tmp), config)
        record, _ = train.train_model(model, splits, config, Path(tmp), callbacks, epochs + 1)
    return _timed(
        record.history["examples_per_second"],
        record.history["time_s"],
        len(splits.train[1]),
        _test_accuracy(model, splits),
    )


def time_plain_fit(dataset: Dataset, splits: Splits, config: Config, epochs: int) -> MethodResult:
    """What a user writes by hand: the decoded images through cache and a full shuffle buffer, Keras'
    default compile (on CPU: no XLA, one step per execution), validation on the same split."""
    import tensorflow as tf

    from tfsoftmax.training.callbacks import EpochStats

    plain = override(config, {"model.kind": "keras", "train.steps_per_execution": 1})
    model = seeded_model(dataset, plain)
    x, y = splits.train
    train_ds = (
        tf.data.Dataset.from_tensor_slices((x, y))
        .cache()
        .shuffle(len(x))
        .batch(config.data.batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )
    val_ds = (
        None if splits.val is None else tf.data.Dataset.from_tensor_slices(splits.val).batch(config.data.batch_size)
    )
    stats = EpochStats(len(x))
    with contextlib.redirect_stdout(sys.stderr):
        # shuffle=False only silences Keras' warning that it cannot shuffle a tf.data.Dataset itself.
        history = model.fit(
            train_ds, validation_data=val_ds, epochs=epochs + 1, verbose=2, shuffle=False, callbacks=[stats]
        )
    return _timed(history.history["examples_per_second"], stats.times, len(x), _test_accuracy(model, splits))


def time_eager(dataset: Dataset, splits: Splits, config: Config, epochs: int) -> MethodResult:
    """D2L's TensorFlow trainer: batch, then shuffle the batches (d2l.FashionMNIST.get_dataloader), and
    an eager GradientTape step per batch with no tf.function. D2L's resize_with_pad to 28x28 is left out:
    on these images it is a no-op."""
    import tensorflow as tf

    from tfsoftmax.models.softmax import make_optimizer

    model = seeded_model(dataset, override(config, {"model.kind": "keras"}))
    optimizer = make_optimizer(config.train)
    x, y = splits.train
    train_ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(config.data.batch_size).shuffle(len(x))
    times = []
    for _ in range(epochs + 1):
        start = time.perf_counter()
        for images, labels in train_ds:
            with tf.GradientTape() as tape:
                loss = model.loss(labels, model(images, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        times.append(time.perf_counter() - start)
    return MethodResult(warmup_s=times[0], epoch_s=times[1:], test_accuracy=_test_accuracy(model, splits))


def _blas_threads(threads: int | None) -> contextlib.AbstractContextManager:
    """The floor on `threads` BLAS threads (None: OpenBLAS's default). On a busy machine OpenBLAS's extra
    threads spin against everything else and make the floor's epochs erratic, so one is the default.
    threadpoolctl (via scikit-learn) is optional."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return contextlib.nullcontext() if threads is None else threadpool_limits(threads, user_api="blas")


def numpy_sgd(dataset: Dataset, splits: Splits, config: Config, epochs: int, threads: int | None = 1) -> MethodResult:
    """The floor: the same model, loss and minibatch SGD in NumPy, shuffled indices gathered per batch."""
    import numpy as np

    x, y = splits.train
    x = x.reshape(len(x), -1)
    classes = dataset.num_classes
    rng = np.random.default_rng(config.train.seed)
    w = rng.normal(0.0, config.model.init_stddev, size=(x.shape[1], classes)).astype(np.float32)
    b = np.zeros(classes, np.float32)
    lr, batch = np.float32(config.train.lr), config.data.batch_size
    times = []
    with _blas_threads(threads):
        for _ in range(epochs + 1):
            start = time.perf_counter()
            order = rng.permutation(len(x))
            for i in range(0, len(x), batch):
                idx = order[i : i + batch]
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
