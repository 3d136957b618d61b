"""The one model builder: D2L's Flatten + Dense, its initialisation and its output."""

from __future__ import annotations

import numpy as np

from tfsoftmax.config import ModelConfig, TrainConfig
from tfsoftmax.models.softmax import build_model


def test_output_shape_is_logits_per_class() -> None:
    model = build_model((28, 28, 1), 10, ModelConfig(), TrainConfig())
    out = model.predict(np.zeros((5, 28, 28, 1), np.float32), verbose=0)
    assert out.shape == (5, 10)
    assert [type(layer).__name__ for layer in model.layers] == ["Flatten", "Dense"]


def test_initial_weights_are_normal_0_01_and_zero_bias() -> None:
    model = build_model((28, 28, 1), 10, ModelConfig(init_stddev=0.01), TrainConfig(seed=1))
    kernel, bias = model.get_weights()
    assert kernel.shape == (784, 10) and bias.shape == (10,)
    assert abs(kernel.mean()) < 0.001
    assert 0.0095 < kernel.std() < 0.0105
    assert np.all(bias == 0)


def test_same_seed_same_weights() -> None:
    a = build_model((4, 4, 1), 3, ModelConfig(), TrainConfig(seed=7)).get_weights()[0]
    b = build_model((4, 4, 1), 3, ModelConfig(), TrainConfig(seed=7)).get_weights()[0]
    assert np.array_equal(a, b)


def test_optimizer_and_loss_follow_config() -> None:
    model = build_model((4, 4, 1), 3, ModelConfig(), TrainConfig(optimizer="momentum", lr=0.3, momentum=0.5))
    assert type(model.optimizer).__name__ == "SGD"
    assert float(model.optimizer.learning_rate) == np.float32(0.3) and model.optimizer.momentum == 0.5
    assert model.loss.get_config()["from_logits"] is True
    adam = build_model((4, 4, 1), 3, ModelConfig(), TrainConfig(optimizer="adam"))
    assert type(adam.optimizer).__name__ == "Adam"
