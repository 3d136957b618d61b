"""What the in-memory arrays become for training: float32 splits, and the batches an epoch reads, in an
order the seed and the epoch decide (the packed pass reads the same order)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tfsoftmax.config import DataConfig
from tfsoftmax.data.dataset import Dataset, Splits

if TYPE_CHECKING:
    import tensorflow as tf

EVAL_BATCH = 2048  # evaluation has no gradient: big batches cost little and mean few steps.

_TENSORS: dict[int, tuple[np.ndarray, tf.Tensor]] = {}
_TENSORS_KEPT = 8  # train, validation and test images and labels of the split in use, with room to spare
ALIGN = 64  # bytes: where TensorFlow's CPU kernels need a buffer to start (Eigen's widest vectors)


def aligned_empty(shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """An uninitialised array whose data starts on an ALIGN-byte boundary, so that TensorFlow can use its
    memory as it is (`as_tensor`)."""
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.empty(size + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start : start + size].view(dtype).reshape(shape)


def preprocess(images: np.ndarray, scale: bool) -> np.ndarray:
    """float32 once, up front, so no batch pays for it; scaled to [0, 1] unless the config says not."""
    out = aligned_empty(images.shape, np.float32)
    np.copyto(out, images, casting="unsafe")  # uint8 to float32: every value exact
    if scale:
        out /= 255.0
    return out


def split(dataset: Dataset, cfg: DataConfig) -> Splits:
    """Carve the validation split from train with `shuffle_seed`; fraction 0 trains on all of train and
    validates on nothing, so no curve labelled validation is ever a test curve."""
    test = (preprocess(dataset.test_x, cfg.scale), dataset.test_y)
    if cfg.validation_fraction == 0:
        return Splits(train=(preprocess(dataset.train_x, cfg.scale), dataset.train_y), val=None, test=test)
    order = np.random.default_rng(cfg.shuffle_seed).permutation(len(dataset.train_x))
    n_val = max(1, round(len(dataset.train_x) * cfg.validation_fraction))
    val, train = order[:n_val], order[n_val:]
    # Rows picked from the uint8 images, then converted: a quarter of the bytes to move, the same floats.
    x = dataset.train_x
    return Splits(
        train=(preprocess(x[train], cfg.scale), dataset.train_y[train]),
        val=(preprocess(x[val], cfg.scale), dataset.train_y[val]),
        test=test,
    )


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Batches in one epoch; the last one may be smaller."""
    return -(-n // batch_size)


def as_tensor(array: np.ndarray) -> tf.Tensor:
    """The array as a TensorFlow tensor, made once per process (sweep trials share it). An aligned array
    (`preprocess` makes the images so) lends TensorFlow its memory through DLPack instead of being copied:
    the splits are never written once made, and the tensor keeps the array alive."""
    import tensorflow as tf

    hit = _TENSORS.get(id(array))
    if hit is None or hit[0] is not array:
        while len(_TENSORS) >= _TENSORS_KEPT:
            _TENSORS.pop(next(iter(_TENSORS)))
        lent = array.size and array.flags.c_contiguous and array.flags.writeable and array.ctypes.data % ALIGN == 0
        tensor = tf.experimental.dlpack.from_dlpack(array.__dlpack__()) if lent else tf.constant(array)
        hit = _TENSORS[id(array)] = (array, tensor)
    return hit[1]


def epoch_order(n: int, seed: int, epoch: tf.Tensor) -> tf.Tensor:
    """The example order of one pass, a stateless function of (seed, epoch): runs and packed sweep trials
    (`pack`) read the same order, whatever their batch size."""
    import tensorflow as tf

    seeds = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
    return tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=seeds)


def train_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int, first_epoch: int = 0) -> tf.data.Dataset:
    """Batches reshuffled at each pass; the order of a pass is a stateless function of (seed, epoch), the
    epoch counting passes from `first_epoch`: a run resumed at epoch k sees exactly the batches an
    uninterrupted run sees from epoch k on. Indices are shuffled and sliced; rows are gathered from
    in-memory tensors, so no image goes through a shuffle buffer."""
    import tensorflow as tf

    images, labels = as_tensor(x), as_tensor(y)
    n, steps = len(x), steps_per_epoch(len(x), batch_size)
    # Keras starts a new pass over the dataset at each epoch; the pass reads and advances this counter.
    epoch = tf.Variable(first_epoch, dtype=tf.int64, trainable=False)

    # The dataset's functions are plain TensorFlow, so autograph is told not to convert them: converting
    # costs tracing time and changes nothing.
    @tf.autograph.experimental.do_not_convert
    def epoch_batches(_: tf.Tensor) -> tf.data.Dataset:
        order = epoch_order(n, seed, epoch.assign_add(1) - 1)

        @tf.autograph.experimental.do_not_convert
        def batch(i: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            rows = order[i * batch_size : (i + 1) * batch_size]
            return tf.gather(images, rows), tf.gather(labels, rows)

        # Images and labels gathered in one map stage: every further stage costs time on each batch.
        return tf.data.Dataset.range(steps).map(batch)

    return (
        tf.data.Dataset.range(1)
        .flat_map(epoch_batches)
        .apply(tf.data.experimental.assert_cardinality(steps))  # lets Keras count steps up front
        .prefetch(tf.data.AUTOTUNE)
    )


def eval_batches(x: np.ndarray, y: np.ndarray) -> tf.data.Dataset:
    """Unshuffled large batches for evaluation."""
    import tensorflow as tf

    images, labels = as_tensor(x), as_tensor(y)

    @tf.autograph.experimental.do_not_convert
    def gather(i: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return tf.gather(images, i), tf.gather(labels, i)

    return tf.data.Dataset.range(len(x)).batch(EVAL_BATCH).map(gather).prefetch(tf.data.AUTOTUNE)
