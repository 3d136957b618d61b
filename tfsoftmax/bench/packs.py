"""A sweep's packed pass against the arithmetic it does, in one process: one training pass of a pack of
trials at the sweep's batch sizes, and the same FLOPs done as two wide matmuls over the training split
(the forward `X @ W` and the weight gradient `X^T @ G`, one column block per trial)."""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING

from tfsoftmax.config.loader import override
from tfsoftmax.sweeps.estimate import batch_sizes

if TYPE_CHECKING:
    from tfsoftmax.config import Config
    from tfsoftmax.data import Dataset, Splits


def pack_pass_s(dataset: Dataset, splits: Splits, config: Config, size: int, passes: int = 4) -> float:
    """Median seconds of a training pass (no validation) of `size` trials of the sweep's optimizer, at its
    batch sizes in turn, after a first pass that compiles."""
    import numpy as np

    from tfsoftmax.sweeps.packing import family
    from tfsoftmax.training.pack import Pack
    from tfsoftmax.training.packed_trial import member

    sizes = batch_sizes(config)
    members = [member(override(config, {"data.batch_size": sizes[i % len(sizes)]})) for i in range(size)]
    inputs = int(np.prod(dataset.image_shape))
    start = np.zeros((inputs, dataset.num_classes), np.float32), np.zeros(dataset.num_classes, np.float32)
    pack = Pack(splits.train, config.train.seed, members, family(config), [start] * size)
    return statistics.median(pack.timed_passes(passes + 1, None)[1:])


def two_matmuls_s(dataset: Dataset, splits: Splits, size: int, turns: int = 5) -> float:
    """Best-of-`turns` seconds of the pass's FLOPs as two wide matmuls: the training split times a weight
    matrix of `size` trials' columns, and its transpose times a gradient of that width."""
    import numpy as np
    import tensorflow as tf

    x = tf.reshape(tf.constant(splits.train[0]), (len(splits.train[0]), -1))
    width = size * dataset.num_classes
    rng = np.random.default_rng(0)
    w = tf.constant(rng.normal(size=(x.shape[1], width)).astype(np.float32))
    g = tf.constant(rng.normal(size=(x.shape[0], width)).astype(np.float32))

    @tf.function
    def both() -> tf.Tensor:
        return tf.reduce_sum(tf.matmul(x, w)) + tf.reduce_sum(tf.matmul(x, g, transpose_a=True))

    both()
    times = []
    for _ in range(turns):
        began = time.perf_counter()
        both().numpy()
        times.append(time.perf_counter() - began)
    return min(times)
