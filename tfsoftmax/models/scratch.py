"""D2L's from-scratch softmax regression as a Keras model, so it shares `fit`, callbacks and the report.

Only the loop's plumbing is Keras': `fit` compiles `train_step` with tf.function, feeds the batches
and runs the callbacks. The parameters, forward pass, loss, gradient and update are our own
(`tfsoftmax.models.ops`), as in D2L's `softmax-regression-scratch`. Imported by `build_model` only, so
importing the package still loads no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import keras
import tensorflow as tf

from tfsoftmax.config import ModelConfig, TrainConfig
from tfsoftmax.errors import CONFIG_ERROR, TfsoftmaxError
from tfsoftmax.models import ops


def naive_cross_entropy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """D2L's first loss: softmax, then -log of the true class; inf or NaN once float32 exp leaves its
    range, i.e. a logit past ~88.7 or a true class ~87 below its row's max."""
    return ops.cross_entropy(ops.softmax(logits), labels)


_LOSSES = {"stable": ops.cross_entropy_from_logits, "naive": naive_cross_entropy}


class _Parameters(keras.layers.Layer):
    """W and b. A layer only because Keras' TensorBoard callback takes histograms from `model.layers`:
    named "dense" inside a model named "softmax_regression", they get the Keras model's tags
    (softmax_regression/dense/kernel), so the two kinds overlay run against run."""

    def __init__(self, num_inputs: int, num_classes: int, init_stddev: float, seed: int) -> None:
        super().__init__(name="dense")
        # The Keras model's initializer with the same seed: both kinds start from the same W.
        self.kernel = self.add_weight(
            shape=(num_inputs, num_classes),
            name="kernel",
            initializer=keras.initializers.RandomNormal(0.0, init_stddev, seed=seed),
        )
        self.bias = self.add_weight(shape=(num_classes,), name="bias", initializer="zeros")
        self.built = True  # the shapes are known up front: nothing is left for `build`


@keras.saving.register_keras_serializable(package="tfsoftmax")
class ScratchSoftmax(keras.Model):
    """Softmax regression with its own W, b, loss and minibatch SGD.

    `build_model` compiles it like the Keras model; of that, only the optimiser's learning rate
    and step counter are used (train.py and TensorBoard read them), never its update, loss or
    metrics. The logged metrics keep the Keras model's names: `loss` and `accuracy`, each a mean
    over the epoch so far, weighted by batch size as Keras' own are.
    """

    def __init__(
        self, image_shape: tuple[int, ...], num_classes: int, model_cfg: ModelConfig, train: TrainConfig
    ) -> None:
        if train.optimizer != "sgd":
            raise TfsoftmaxError(
                f'model.kind "scratch" trains with its own minibatch SGD; set '
                f'train.optimizer = "sgd" (got "{train.optimizer}")',
                CONFIG_ERROR,
            )
        super().__init__(name="softmax_regression")
        self.image_shape = tuple(image_shape)
        self.num_classes = num_classes
        self.model_cfg = model_cfg
        self.train_cfg = train
        with keras.name_scope(self.name):
            self.params = _Parameters(math.prod(self.image_shape), num_classes, model_cfg.init_stddev, train.seed)
        self.loss_fn = _LOSSES[model_cfg.loss]
        self.loss_mean = keras.metrics.Mean(name="loss")
        self.accuracy_mean = keras.metrics.Mean(name="accuracy")
        self.built = True  # W and b exist already, so a checkpoint can be loaded before the first batch

    @property
    def W(self) -> keras.Variable:  # noqa: N802 (D2L's name)
        return self.params.kernel

    @property
    def b(self) -> keras.Variable:
        return self.params.bias

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        # Listed here so that Keras resets them at each epoch and before each evaluation.
        return [self.loss_mean, self.accuracy_mean]

    def call(self, x: tf.Tensor) -> tf.Tensor:
        """Logits: flatten each image, then X W + b."""
        return tf.matmul(tf.reshape(x, (-1, self.W.shape[0])), self.W) + self.b

    def train_step(self, data: tuple[tf.Tensor, tf.Tensor]) -> dict[str, tf.Tensor]:
        x, y = data
        params = [self.W, self.b]
        with tf.GradientTape() as tape:
            logits = self(x)
            loss = self.loss_fn(logits, y) + self.penalty()
        # The learning rate lives in the compiled optimiser, and its step counter is kept: train.py's
        # per-epoch log and TensorBoard read the value actually used, and a schedule would apply.
        ops.sgd_update(params, tape.gradient(loss, params), self.optimizer.learning_rate)
        self.optimizer.iterations.assign_add(1)
        return self._update_metrics(loss, logits, y)

    def test_step(self, data: tuple[tf.Tensor, tf.Tensor]) -> dict[str, tf.Tensor]:
        x, y = data
        logits = self(x)
        return self._update_metrics(self.loss_fn(logits, y) + self.penalty(), logits, y)

    def penalty(self) -> tf.Tensor:
        """D2L's weight decay, weight_decay / 2 * ||W||^2 (the bias is not decayed): in the loss of every
        step, training and validation alike, as Keras adds its kernel regularizer's."""
        return 0.5 * self.train_cfg.weight_decay * tf.reduce_sum(tf.square(self.W))

    def _update_metrics(self, loss: tf.Tensor, logits: tf.Tensor, y: tf.Tensor) -> dict[str, tf.Tensor]:
        batch = tf.shape(y)[0]
        self.loss_mean.update_state(loss, sample_weight=batch)
        self.accuracy_mean.update_state(ops.accuracy(logits, y), sample_weight=batch)
        return {m.name: m.result() for m in self.metrics}

    def get_config(self) -> dict[str, Any]:
        return {
            "image_shape": list(self.image_shape),
            "num_classes": self.num_classes,
            "model_cfg": dataclasses.asdict(self.model_cfg),
            "train": dataclasses.asdict(self.train_cfg),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ScratchSoftmax:
        return cls(
            tuple(config["image_shape"]),
            config["num_classes"],
            ModelConfig(**config["model_cfg"]),
            TrainConfig(**config["train"]),
        )
