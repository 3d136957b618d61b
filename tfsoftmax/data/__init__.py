"""Data: TFDS loading, offline via the manual directory (`source`), the decoded-array cache and its index
(`cache`), the arrays (`dataset`), and the splits and tf.data pipelines built on them (`pipeline`).

Decoding a prepared TFDS split costs seconds, so the decoded arrays are cached on disk beside TFDS's copy
and held in memory once per process. Pipelines shuffle indices and gather batches from in-memory tensors:
images are never decoded or copied through a shuffle buffer again.
"""

from tfsoftmax.data import cache, dataset, pipeline, source
from tfsoftmax.data.cache import CACHE_NAME
from tfsoftmax.data.dataset import Dataset, Splits
from tfsoftmax.data.pipeline import (
    EVAL_BATCH,
    as_tensor,
    epoch_order,
    eval_batches,
    preprocess,
    split,
    steps_per_epoch,
    train_batches,
)
from tfsoftmax.data.source import load_dataset

__all__ = [
    "CACHE_NAME",
    "EVAL_BATCH",
    "Dataset",
    "Splits",
    "as_tensor",
    "cache",
    "dataset",
    "epoch_order",
    "eval_batches",
    "load_dataset",
    "pipeline",
    "preprocess",
    "source",
    "split",
    "steps_per_epoch",
    "train_batches",
]
