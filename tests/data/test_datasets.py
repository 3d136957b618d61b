"""MNIST, KMNIST and CIFAR-10 through their experiment files and the real loader, on TFDS's mock examples."""

from __future__ import annotations

import io
import json
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tfsoftmax import data
from tfsoftmax.board import report
from tfsoftmax.config import Config
from tfsoftmax.config.loader import load_config
from tfsoftmax.training import train

from conftest import MOCK_EXAMPLES, ROOT, mock_prepared

SHAPES = {"mnist": (28, 28, 1), "kmnist": (28, 28, 1), "cifar10": (32, 32, 3)}


def mock_config(name: str, tmp_path: Path) -> Config:
    """The experiment file as a user runs it, shrunk to one epoch in `tmp_path`."""
    return load_config(
        ROOT / "experiments" / f"{name}.toml",
        [
            "train.epochs=1",
            "data.batch_size=8",
            f"data.data_dir={tmp_path / 'tfds'}",
            f"logging.root={tmp_path / 'logs'}",
            "logging.num_images=4",
        ],
    )


def mock_run(name: str, tmp_path: Path) -> train.RunResult:
    config = mock_config(name, tmp_path)
    assert config.data.dataset == name
    with mock_prepared(name, Path(config.data.data_dir)):
        return train.run(config)


# CIFAR-10 stays in the fast loop: its RGB images are the shape the other two do not have.
@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) for name in sorted(SHAPES)])
def test_experiment_file_trains_an_epoch_on_tfds_mock_data(name: str, tmp_path: Path) -> None:
    result = mock_run(name, tmp_path)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert result.status == metrics["status"] == "completed" and metrics["epochs_completed"] == 1
    assert result.model.input_shape == (None, *SHAPES[name])
    assert result.model.output_shape == (None, 10)
    assert result.model.get_weights()[0].shape == (int(np.prod(SHAPES[name])), 10)
    env = json.loads((result.run_dir / "environment.json").read_text())["dataset"]
    assert env["name"] == name and env["train_examples"] == env["test_examples"] == MOCK_EXAMPLES
    assert result.run_dir.parent == tmp_path / "logs" / name
    assert len(list((tmp_path / "tfds" / name).glob(f"*/{data.CACHE_NAME}"))) == 1  # beside the metadata


def test_rgb_templates_are_drawn_in_their_own_colours() -> None:
    """A class that looks for red is drawn red, one that looks for green green: no colour map in between."""
    import matplotlib.image

    kernel = np.zeros((8, 8, 3, 2), np.float32)
    kernel[..., 0, 0] = 1.0  # class 0: red raises its score
    kernel[..., 1, 1] = 1.0  # class 1: green
    image = matplotlib.image.imread(
        io.BytesIO(report.weight_templates(kernel.reshape(-1, 2), (8, 8, 3), ["red", "green"]))
    )[..., :3]
    assert np.any(np.all(np.isclose(image, [1.0, 0.5, 0.5], atol=0.02), axis=-1))
    assert np.any(np.all(np.isclose(image, [0.5, 1.0, 0.5], atol=0.02), axis=-1))
    assert np.array_equal(report.colour_template(np.zeros((2, 2, 3))), np.full((2, 2, 3), 0.5))


def _png(board_url: str, path: str) -> bytes:
    with urllib.request.urlopen(f"{board_url}{path}", timeout=30) as r:
        return r.read()


@pytest.mark.slow
@pytest.mark.tensorboard
def test_cifar10_weight_templates_are_colour_images_in_tensorboard(tmp_path: Path, tensorboard: Callable) -> None:
    import matplotlib.image

    result = mock_run("cifar10", tmp_path)
    board = tensorboard(tmp_path / "logs")
    run, tag = f"cifar10/{result.run_dir.name}", "model/weight_templates"
    board.wait_for(lambda: tag in board.get("/data/plugin/images/tags").get(run, {}))
    query = urllib.parse.urlencode({"run": run, "tag": tag})
    (entry,) = board.get(f"/data/plugin/images/images?{query}")
    served = matplotlib.image.imread(
        io.BytesIO(_png(board.url, f"/data/plugin/images/individualImage?{entry['query']}"))
    )
    class_names = data.load_dataset(mock_config("cifar10", tmp_path).data).class_names  # from the array cache
    drawn = matplotlib.image.imread(
        io.BytesIO(report.weight_templates(result.model.get_weights()[0], (32, 32, 3), class_names))
    )
    assert served.ndim == 3 and served.shape[-1] in (3, 4)
    assert np.array_equal(served, drawn)  # what TensorBoard serves is the model's own kernel, drawn
    rgb = served[..., :3]
    assert np.abs(rgb[..., 0] - rgb[..., 1]).max() > 0.1 and np.abs(rgb[..., 1] - rgb[..., 2]).max() > 0.1
