"""A sweep's packed pass against the arithmetic it does, in one process: one training pass of a pack of
trials at the sweep's batch sizes, the same FLOPs done as two wide matmuls over the training split
(the forward `X @ W` and the weight gradient `X^T @ G`, one column block per trial), and the same two
matmuls at the pack's micro-batch, one step after another in each of the pass's lanes, the lanes side by
side, as the pass must do them."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tfsoftmax.sweeps.estimate import spread_members

if TYPE_CHECKING:
    from tfsoftmax.config import Config
    from tfsoftmax.data import Dataset, Splits

PASSES = 4  # timed after the first, which compiles; the median is reported
MATMUL_TURNS = 5  # the best is reported: the floor is what the machine can do


def pack_pass_s(dataset: Dataset, splits: Splits, config: Config, size: int) -> float:
    """Median seconds of a training pass (no validation) of `size` trials of the sweep's optimizer, at its
    batch sizes in turn, after a first pass that compiles."""
    import numpy as np

    from tfsoftmax.training.compiled_packs import timed_passes
    from tfsoftmax.training.pack import Pack
    from tfsoftmax.training.packed_trial import family

    members = spread_members(config, size)
    inputs = int(np.prod(dataset.image_shape))
    start = np.zeros((inputs, dataset.num_classes), np.float32), np.zeros(dataset.num_classes, np.float32)
    pack = Pack(splits.train, config.train.seed, members, family(config), [start] * size)
    return statistics.median(timed_passes(pack, PASSES + 1, None)[1:])


def two_matmuls_s(dataset: Dataset, splits: Splits, size: int) -> float:
    """Best-of-MATMUL_TURNS seconds of the pass's FLOPs as two wide matmuls: the training split times a weight
    matrix of `size` trials' columns, and its transpose times a gradient of that width."""
    import numpy as np
    import tensorflow as tf

    x = _flat_train(splits)
    width = size * dataset.num_classes
    rng = np.random.default_rng(0)
    w = tf.constant(rng.normal(size=(x.shape[1], width)).astype(np.float32))
    g = tf.constant(rng.normal(size=(x.shape[0], width)).astype(np.float32))

    @tf.function
    def both() -> tf.Tensor:
        return tf.reduce_sum(tf.matmul(x, w)) + tf.reduce_sum(tf.matmul(x, g, transpose_a=True))

    return _best_of(both)


def micro_matmuls_s(dataset: Dataset, splits: Splits, size: int, micro: int) -> float:
    """Best-of-MATMUL_TURNS seconds of the pass's two matmuls alone, at micro-batch `micro`, in the pass's
    lanes: per lane, one XLA loop of a forward and a weight-gradient matmul per `micro` rows of the
    training split, the weights held as a pack holds them and changed every step, so no step can start
    before the last ends; the lanes run side by side. No softmax, no bookkeeping: what any pass stepping
    every `micro` examples in these lanes pays at least."""
    import numpy as np
    import tensorflow as tf

    from tfsoftmax.training import lane

    x = _flat_train(splits)
    steps = len(splits.train[0]) // micro

    @tf.function(jit_compile=True, autograph=False)
    def one_lane(start: tf.Tensor) -> tf.Tensor:
        def step(j: tf.Tensor, w: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            rows = tf.slice(x, [j * micro, 0], [micro, x.shape[1]])
            delta = tf.matmul(rows, w, transpose_b=True) * 1e-6
            return j + 1, w - tf.matmul(delta, rows, transpose_a=True)

        return tf.reduce_sum(tf.while_loop(lambda j, _: j < steps, step, (tf.constant(0), start))[1])

    # Each lane starts from other weights: lanes of equal inputs could be merged into one computation.
    starts = [
        tf.constant(np.full(((b - a) * dataset.num_classes, x.shape[1]), i, np.float32))
        for i, (a, b) in enumerate(lane.ranges(size))
    ]

    @tf.function(autograph=False)
    def lanes() -> tf.Tensor:
        return tf.add_n([one_lane(start) for start in starts])

    return _best_of(lanes)


def _flat_train(splits: Splits) -> Any:
    """The training images as TensorFlow's (examples, inputs) matrix, the pass's X."""
    import tensorflow as tf

    return tf.reshape(tf.constant(splits.train[0]), (len(splits.train[0]), -1))


def _best_of(compiled: Callable[[], Any]) -> float:
    """The fastest of MATMUL_TURNS calls of `compiled` after one that traces it: the floor is what the
    machine can do."""
    compiled()
    times = []
    for _ in range(MATMUL_TURNS):
        began = time.perf_counter()
        compiled().numpy()
        times.append(time.perf_counter() - began)
    return min(times)
