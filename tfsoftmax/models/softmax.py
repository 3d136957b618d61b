"""The one place a model is built, for runs and sweeps alike: D2L's softmax regression."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tfsoftmax.config import ModelConfig, TrainConfig

if TYPE_CHECKING:
    import keras


def make_optimizer(train: TrainConfig) -> keras.optimizers.Optimizer:
    """The optimiser named by the config."""
    import keras

    if train.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=train.lr)
    momentum = train.momentum if train.optimizer == "momentum" else 0.0
    return keras.optimizers.SGD(learning_rate=train.lr, momentum=momentum)


def build_model(
    image_shape: tuple[int, ...], num_classes: int, model_cfg: ModelConfig, train: TrainConfig
) -> keras.Model:
    """Flatten + Dense(num_classes), weights N(0, init_stddev), zero biases, compiled for `fit`; with
    `train.weight_decay`, the loss adds weight_decay / 2 * ||W||^2 (D2L's weight decay, biases exempt).

    The Dense layer outputs logits and the loss takes `from_logits=True`: Keras then uses log-sum-exp
    instead of a softmax followed by a log, which is D2L's cure for the naive softmax's overflow.
    """
    import keras

    if model_cfg.kind == "scratch":
        from tfsoftmax.models.scratch import ScratchSoftmax

        model: keras.Model = ScratchSoftmax(image_shape, num_classes, model_cfg, train)
    else:
        model = keras.Sequential(
            [
                keras.Input(shape=image_shape),
                keras.layers.Flatten(),
                # Named, not numbered: Keras would call the second model in a process "dense_1", and the
                # TensorBoard weight tags (softmax_regression/dense/kernel) must match across runs.
                keras.layers.Dense(
                    num_classes,
                    name="dense",
                    kernel_initializer=keras.initializers.RandomNormal(
                        mean=0.0, stddev=model_cfg.init_stddev, seed=train.seed
                    ),
                    bias_initializer="zeros",
                    # Keras adds the penalty to `loss` and `val_loss`, as the scratch model does.
                    kernel_regularizer=keras.regularizers.L2(train.weight_decay / 2) if train.weight_decay else None,
                ),
            ],
            name="softmax_regression",
        )
    model.compile(
        optimizer=make_optimizer(train),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=train.steps_per_execution,
        # Keras turns XLA off under deterministic ops, which reproducible runs need.
        jit_compile=False,
    )
    # Built now rather than at the first step, so every model has its optimizer state from the start: a
    # sweep's reused model and a fresh one then load Hyperband's or a checkpoint's weights alike.
    model.optimizer.build(model.trainable_variables)
    return model


def graph_key(model_cfg: ModelConfig, train: TrainConfig) -> tuple:
    """What a compiled model's traced training step depends on. Models equal in these differ only in
    values a trial resets (weights, learning rate), so a sweep can reuse one instead of tracing anew."""
    return (
        model_cfg.kind,
        model_cfg.loss,
        train.optimizer,
        train.momentum,
        train.weight_decay,
        train.steps_per_execution,
    )


def reset_optimizer(model: keras.Model, lr: float) -> None:
    """Zero the optimizer's state and step count and set its learning rate: a never-trained optimizer."""
    import keras

    for variable in model.optimizer.variables:
        variable.assign(keras.ops.zeros(variable.shape, variable.dtype))
    model.optimizer.learning_rate = lr


def reset_to(model: keras.Model, fresh: keras.Model) -> keras.Model:
    """Give `model` (compiled, maybe trained) the exact starting state of `fresh` (built from the same
    graph key, never trained): weights, zeroed optimizer state and step count, learning rate, config."""
    import keras

    model.set_weights(fresh.get_weights())
    reset_optimizer(model, float(keras.ops.convert_to_numpy(fresh.optimizer.learning_rate)))
    if model_cfg := getattr(fresh, "model_cfg", None):  # the scratch model saves its configs with itself
        model.model_cfg, model.train_cfg = model_cfg, fresh.train_cfg
    return model
