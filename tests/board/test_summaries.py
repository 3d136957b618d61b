"""Summaries built as protos in NumPy read back as TensorFlow's own summary ops write them."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _events(folder: Path) -> dict[str, object]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    acc.Reload()
    return {tag: acc.Tensors(tag) for tag in acc.Tags()["tensors"]}


def test_scalars_and_histograms_read_back_like_tf_summary_ops(tmp_path: Path) -> None:
    import tensorflow as tf

    from tfsoftmax.board import summaries

    values = np.random.default_rng(0).normal(size=(784, 10)).astype(np.float32)
    ours = tf.summary.create_file_writer(str(tmp_path / "ours"))
    summaries.write(ours, 3, [summaries.scalar("epoch_loss", 0.25), summaries.histogram("dense/kernel", values)])
    ours.close()
    theirs = tf.summary.create_file_writer(str(tmp_path / "theirs"))
    with theirs.as_default():
        tf.summary.scalar("epoch_loss", 0.25, step=3)
        tf.summary.histogram("dense/kernel", values, step=3)
    theirs.close()

    mine, reference = _events(tmp_path / "ours"), _events(tmp_path / "theirs")
    assert sorted(mine) == sorted(reference) == ["dense/kernel", "epoch_loss"]
    for tag in reference:
        (a,), (b,) = mine[tag], reference[tag]
        assert a.step == b.step == 3
        np.testing.assert_allclose(tf.make_ndarray(a.tensor_proto), tf.make_ndarray(b.tensor_proto), rtol=1e-6)
