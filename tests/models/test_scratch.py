"""The from-scratch model: same numbers as the Keras model, same run record, D2L's naive-softmax failure."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tfsoftmax.config import ModelConfig, TrainConfig
from tfsoftmax.config.loader import load_config
from tfsoftmax.errors import TfsoftmaxError
from tfsoftmax.models.softmax import build_model
from tfsoftmax.training import train


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def _names(folder: Path) -> set[str]:
    """File names, with TensorBoard's event files (named by time and host) under one name."""
    return {"events" if p.name.startswith("events.out.tfevents.") else p.name for p in folder.iterdir()}


def _tags(folder: Path) -> set[str]:
    """Every summary tag in a folder's TensorBoard event files."""
    import tensorflow as tf

    return {
        value.tag
        for path in folder.glob("events.out.tfevents.*")
        for event in tf.compat.v1.train.summary_iterator(str(path))
        for value in event.summary.value
    }


@pytest.mark.parametrize("loss", ["stable", "naive"])
def test_scratch_and_keras_agree_after_one_epoch_on_the_same_batches(loss: str) -> None:
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.random((96, 6, 6, 1), dtype=np.float32)
    y = rng.integers(0, 4, size=96).astype(np.int32)
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)  # fixed order, no shuffle
    train_cfg = TrainConfig(lr=0.5, seed=3)
    keras_model = build_model((6, 6, 1), 4, ModelConfig(), train_cfg)
    scratch = build_model((6, 6, 1), 4, ModelConfig(kind="scratch", loss=loss), train_cfg)
    for a, b in zip(keras_model.get_weights(), scratch.get_weights(), strict=True):
        assert np.array_equal(a, b)  # seeded alike, so no copy is needed; copy anyway to test only the step
    scratch.set_weights(keras_model.get_weights())
    initial = scratch.get_weights()[0]
    keras_history = keras_model.fit(batches, epochs=1, verbose=0, shuffle=False).history
    scratch_history = scratch.fit(batches, epochs=1, verbose=0, shuffle=False).history
    for a, b in zip(keras_model.get_weights(), scratch.get_weights(), strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
    assert np.abs(scratch.get_weights()[0] - initial).max() > 1e-3  # the epoch did move the weights
    for key in ("loss", "accuracy"):  # epoch means, weighted by batch as Keras' are
        np.testing.assert_allclose(scratch_history[key], keras_history[key], rtol=1e-5)
    assert int(scratch.optimizer.iterations) == int(keras_model.optimizer.iterations) == 6


def test_scratch_kernel_is_inputs_by_classes_and_call_gives_logits() -> None:
    model = build_model((28, 28, 1), 10, ModelConfig(kind="scratch"), TrainConfig())
    kernel, bias = model.get_weights()
    assert kernel.shape == (784, 10) and np.all(bias == 0)
    assert 0.0095 < kernel.std() < 0.0105
    x = np.random.default_rng(0).random((5, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(model.predict(x, verbose=0), x.reshape(5, -1) @ kernel, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # two whole runs, report included
def test_scratch_run_leaves_the_same_run_directory_as_keras(write_config: Callable[..., Path]) -> None:
    import keras

    runs = {
        kind: train.run(load_config(write_config(f'[model]\nkind = "{kind}"\n[train]\nepochs = 2', name=kind)))
        for kind in ("keras", "scratch")
    }
    keras_dir, scratch_dir = runs["keras"].run_dir, runs["scratch"].run_dir
    for folder in (".", "train", "validation"):
        assert _names(scratch_dir / folder) == _names(keras_dir / folder), folder
    keras_metrics, scratch_metrics = _metrics(keras_dir), _metrics(scratch_dir)
    assert scratch_metrics["status"] == "completed" and scratch_metrics["epochs_completed"] == 2
    assert set(scratch_metrics) == set(keras_metrics)
    assert set(scratch_metrics["history"]) == set(keras_metrics["history"])
    assert set(scratch_metrics["test"]) == set(keras_metrics["test"]) == {"loss", "accuracy"}
    assert scratch_metrics["history"]["learning_rate"] == [0.5, 0.5]
    assert scratch_metrics["test"]["accuracy"] > 0.5  # the stripes are learnable
    for folder in (".", "train", "validation"):  # scalars, weight histograms, report images
        assert _tags(scratch_dir / folder) == _tags(keras_dir / folder), folder
    assert "softmax_regression/dense/kernel/histogram" in _tags(scratch_dir / "train")
    saved = keras.saving.load_model(scratch_dir / "model.keras")
    x = np.zeros((2, 28, 28, 1), np.float32)
    np.testing.assert_allclose(saved.predict(x, verbose=0), runs["scratch"].model.predict(x, verbose=0))


@pytest.mark.slow  # two whole runs; test_ops checks both losses on large logits
def test_naive_loss_diverges_on_unscaled_pixels_where_stable_completes(write_config: Callable[..., Path]) -> None:
    text = '[data]\nscale = false\n[model]\nkind = "scratch"\nloss = "{}"\n[train]\nepochs = 1'
    naive = train.run(load_config(write_config(text.format("naive"), name="naive")))
    metrics = _metrics(naive.run_dir)
    assert naive.status == metrics["status"] == "diverged"
    assert metrics["divergence"]["epoch"] == 1 and "training loss became" in metrics["divergence"]["reason"]
    assert metrics["epochs_completed"] == 0 and metrics["test"] is None
    stable = train.run(load_config(write_config(text.format("stable"), name="stable")))
    assert stable.status == _metrics(stable.run_dir)["status"] == "completed"
    assert np.isfinite(stable.history["loss"]).all()


@pytest.mark.parametrize("optimizer", ["momentum", "adam"])
def test_scratch_rejects_optimizers_other_than_sgd(write_config: Callable[..., Path], optimizer: str) -> None:
    message = (
        f'model.kind "scratch" trains with its own minibatch SGD; set train.optimizer = "sgd" \\(got "{optimizer}"\\)'
    )
    with pytest.raises(TfsoftmaxError, match=message) as info:
        build_model((4, 4, 1), 3, ModelConfig(kind="scratch"), TrainConfig(optimizer=optimizer))
    assert info.value.exit_code == 2
    path = write_config(f'[model]\nkind = "scratch"\n[train]\noptimizer = "{optimizer}"')
    with pytest.raises(TfsoftmaxError, match=message) as info:
        train.run(load_config(path))  # refused in the config or at build, before any training
    assert info.value.exit_code == 2
