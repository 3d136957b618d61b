"""TensorBoard summaries built as protos in NumPy and written as one event per writer and step: a packed
trial's epoch writes a few scalars and two histograms, and TensorFlow's summary ops would cost an op each.
The tags and plugins are those `tf.summary.scalar` and Keras' TensorBoard callback write."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf


def write(writer: Any, step: int, protos: list[Any]) -> None:
    """Summary protos written as one event: built in NumPy, they cost no TensorFlow op per value. Two
    serialized Summary messages joined are one Summary with both's values (protobuf merges them)."""
    with writer.as_default():
        tf.summary.experimental.write_raw_pb(b"".join(proto.SerializeToString() for proto in protos), step=step)


def scalar(tag: str, value: float) -> Any:
    """A scalar summary as `tf.summary.scalar` writes it (TensorBoard's scalars plugin), built in NumPy."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.scalar import metadata
    from tensorboard.util import tensor_util

    value_pb = summary_pb2.Summary.Value(
        tag=tag,
        tensor=tensor_util.make_tensor_proto(np.float32(value)),
        metadata=metadata.create_summary_metadata(display_name=tag, description=""),
    )
    return summary_pb2.Summary(value=[value_pb])


def histogram(tag: str, values: np.ndarray) -> Any:
    """A histogram summary as `tf.summary.histogram` writes it (TensorBoard's histograms plugin)."""
    from tensorboard.plugins.histogram.summary_v2 import histogram_pb

    return histogram_pb(tag, values)
