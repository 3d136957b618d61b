"""TensorBoard extras for a finished run: test scalars, prediction grid, confusion matrix, weight
templates and the config as text. Written to the run folder itself, beside Keras' train/validation runs."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tfsoftmax.config import Config, to_toml
from tfsoftmax.data import EVAL_BATCH

if TYPE_CHECKING:
    import keras
    from matplotlib.figure import Figure


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return buf.getvalue()


def _figure(rows: int, cols: int, cell: float = 1.6):  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=(cols * cell, rows * (cell + 0.3)), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return plt, fig, axes


def _show(ax, image: np.ndarray) -> None:  # noqa: ANN001
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray")
    else:
        ax.imshow(np.clip(image, 0, 1))


def prediction_grid(images: np.ndarray, labels: np.ndarray, predictions: np.ndarray,
                    class_names: Sequence[str]) -> bytes:
    """D2L's `predict_ch3`: test images titled true / predicted, wrong ones in red."""
    cols = min(6, len(images))
    plt, fig, axes = _figure(-(-len(images) // cols), cols)
    span = max(float(images.max()), 1e-12)
    for ax, image, true, pred in zip(axes.flat, images, labels, predictions, strict=False):
        _show(ax, image / span)
        ax.set_title(f"{class_names[true]}\n{class_names[pred]}", fontsize=7,
                     color="black" if true == pred else "red")
    data = _png(fig)
    plt.close(fig)
    return data


def confusion_figure(matrix: np.ndarray, class_names: Sequence[str]) -> bytes:
    """The test set's confusion matrix with counts; rows are true classes."""
    plt, fig, axes = _figure(1, 1, cell=6.0)
    ax = axes[0, 0]
    ax.axis("on")
    ax.imshow(matrix, cmap="Blues")
    ticks = range(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=90, fontsize=7)
    ax.set_yticks(ticks, class_names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(class_names) <= 20:
        threshold = matrix.max() / 2
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=6,
                    color="white" if count > threshold else "black")
    data = _png(fig)
    plt.close(fig)
    return data


def colour_template(weights: np.ndarray) -> np.ndarray:
    """One class's (H, W, 3) weights as an RGB image in [0, 1]: zero is mid-grey in every class, and a
    channel is brighter where a larger value of that colour raises the class's score. All three channels
    share one scale, so the hue is the colour the class responds to."""
    return 0.5 + weights / (2 * max(float(np.abs(weights).max()), 1e-12))


def weight_templates(kernel: np.ndarray, image_shape: tuple[int, ...], class_names: Sequence[str]) -> bytes:
    """Each class's weights as an image: for a linear model, exactly what it has learned to look for.
    Grayscale inputs use a diverging colour map; RGB inputs are drawn in their own colours."""
    cols = min(5, len(class_names))
    plt, fig, axes = _figure(-(-len(class_names) // cols), cols)
    templates = kernel.reshape(*image_shape, len(class_names))
    for k, (ax, name) in enumerate(zip(axes.flat, class_names, strict=False)):
        t = templates[..., k]
        if t.shape[-1] == 1:
            t = (t - t.min()) / max(float(t.max() - t.min()), 1e-12)
            ax.imshow(t[..., 0], cmap="RdBu_r")
        else:
            ax.imshow(colour_template(t))
        ax.set_title(name, fontsize=7)
    data = _png(fig)
    plt.close(fig)
    return data


def write_report(run_dir: Path, model: keras.Model, test: tuple[np.ndarray, np.ndarray],
                 class_names: Sequence[str], config: Config, test_metrics: dict[str, float], step: int) -> None:
    """Write the report summaries into `run_dir`'s own event file."""
    import tensorflow as tf

    x, y = test
    logits = model.predict(x, batch_size=EVAL_BATCH, verbose=0)
    predictions = np.argmax(logits, axis=1)
    matrix = tf.math.confusion_matrix(y, predictions, num_classes=len(class_names)).numpy()
    kernel = model.get_weights()[0]
    n = config.logging.num_images

    def image(name: str, png: bytes, description: str) -> None:
        tf.summary.image(name, tf.expand_dims(tf.io.decode_png(png, channels=4), 0), step=step,
                         description=description)

    writer = tf.summary.create_file_writer(str(run_dir))
    with writer.as_default():
        for name, value in test_metrics.items():
            tf.summary.scalar(f"test/{name}", value, step=step, description=f"final test {name}")
        if n:
            image("test/predictions", prediction_grid(x[:n], y[:n], predictions[:n], class_names),
                  "first test images, titled true / predicted (red: wrong)")
        image("test/confusion_matrix", confusion_figure(matrix, class_names), "rows: true class")
        image("model/weight_templates", weight_templates(kernel, x.shape[1:], class_names),
              "the Dense kernel reshaped to the image, one picture per class")
        tf.summary.text("config", "    " + to_toml(config).replace("\n", "\n    "), step=step,
                        description="the resolved config of this run")
    writer.close()
