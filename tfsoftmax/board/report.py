"""TensorBoard extras for a finished run: test scalars, prediction grid, confusion matrix, weight
templates, calibration (ECE, NLL, reliability, accuracy per coverage, per-class PR curves) and the config
as text. Written to the run folder itself, beside Keras' train/validation runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tfsoftmax.analysis import calibration, figures
from tfsoftmax.config import Config, to_toml
from tfsoftmax.data import EVAL_BATCH, Splits

if TYPE_CHECKING:
    import keras


CELL_PX = 144  # a grid cell's image, drawn at figures.DPI
TITLE_PX = 26  # the band above it for a two-line title at font size 7
GAP_PX = 6


def _mosaic(cells: Sequence[np.ndarray], titles: Sequence[str], colours: Sequence[str], cols: int) -> bytes:
    """RGB cells in [0, 1] as one image on one axes, each titled in the band above it: a grid of pictures
    costs one image and its titles to draw, not one set of axes per picture."""
    from matplotlib.figure import Figure

    rows = -(-len(cells) // cols)
    h, w = cells[0].shape[:2]
    scale = CELL_PX / max(h, w)
    band, gap = round(TITLE_PX / scale), max(1, round(GAP_PX / scale))
    pitch_y, pitch_x = band + h + gap, w + gap
    canvas = np.ones((rows * pitch_y, cols * pitch_x, 3))
    fig = Figure(figsize=(canvas.shape[1] * scale / figures.DPI, canvas.shape[0] * scale / figures.DPI))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.axis("off")
    for k, (cell, title, colour) in enumerate(zip(cells, titles, colours, strict=True)):
        top, left = (k // cols) * pitch_y + band, (k % cols) * pitch_x
        canvas[top : top + h, left : left + w] = cell
        ax.text(left + w / 2, top - 0.5, title, ha="center", va="bottom", fontsize=7, color=colour)
    ax.imshow(
        canvas,
        interpolation="nearest",
        aspect="auto",
        extent=(-0.5, canvas.shape[1] - 0.5, canvas.shape[0] - 0.5, -0.5),
    )
    return figures.png(fig, tight=False)


def _rgb(image: np.ndarray, span: float) -> np.ndarray:
    """A grayscale image stretched to its own range (as `imshow`'s gray map draws one), an RGB one scaled by
    the grid's largest value."""
    if image.shape[-1] == 1:
        low, high = float(image.min()), float(image.max())
        return np.repeat((image - low) / max(high - low, 1e-12), 3, axis=-1)
    return np.clip(image[..., :3] / span, 0, 1)


def prediction_grid(
    images: np.ndarray, labels: np.ndarray, predictions: np.ndarray, class_names: Sequence[str]
) -> bytes:
    """D2L's `predict_ch3`: test images titled true / predicted, wrong ones in red."""
    span = max(float(images.max()), 1e-12)
    return _mosaic(
        [_rgb(image, span) for image in images],
        [f"{class_names[true]}\n{class_names[pred]}" for true, pred in zip(labels, predictions, strict=True)],
        ["black" if true == pred else "red" for true, pred in zip(labels, predictions, strict=True)],
        min(6, len(images)),
    )


def confusion_figure(matrix: np.ndarray, class_names: Sequence[str]) -> bytes:
    """The test set's confusion matrix with counts; rows are true classes."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 6.3), layout="constrained")  # margins fitted to the class names
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    ticks = range(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=90, fontsize=7)
    ax.set_yticks(ticks, class_names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(class_names) <= 20:
        threshold = matrix.max() / 2
        for (i, j), count in np.ndenumerate(matrix):
            ax.text(
                j, i, str(count), ha="center", va="center", fontsize=6, color="white" if count > threshold else "black"
            )
    return figures.png(fig, tight=False)


def colour_template(weights: np.ndarray) -> np.ndarray:
    """One class's (H, W, 3) weights as an RGB image in [0, 1]: zero is mid-grey in every class, and a
    channel is brighter where a larger value of that colour raises the class's score. All three channels
    share one scale, so the hue is the colour the class responds to."""
    return 0.5 + weights / (2 * max(float(np.abs(weights).max()), 1e-12))


def weight_templates(kernel: np.ndarray, image_shape: tuple[int, ...], class_names: Sequence[str]) -> bytes:
    """Each class's weights as an image: for a linear model, exactly what it has learned to look for.
    Grayscale inputs use a diverging colour map; RGB inputs are drawn in their own colours."""
    from matplotlib import colormaps

    templates = kernel.reshape(*image_shape, len(class_names))
    cells = []
    for k in range(len(class_names)):
        t = templates[..., k]
        if t.shape[-1] == 1:
            t = (t - t.min()) / max(float(t.max() - t.min()), 1e-12)
            cells.append(colormaps["RdBu_r"](t[..., 0])[..., :3])
        else:
            cells.append(colour_template(t))
    return _mosaic(cells, list(class_names), ["black"] * len(class_names), min(5, len(class_names)))


PR_THRESHOLDS = 101  # TensorBoard's PR curves: one point per percent of confidence


def _logits(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """The model's outputs on `x`, called eagerly a batch at a time: `model.predict` would trace a graph
    for a single pass over the split, which costs more than the pass."""
    return np.concatenate(
        [np.asarray(model(x[i : i + EVAL_BATCH], training=False)) for i in range(0, len(x), EVAL_BATCH)]
    )


def calibrate(model: keras.Model, splits: Splits, test_logits: np.ndarray) -> calibration.Calibration | None:
    """How far the test confidences can be trusted, the temperature fitted on validation only; None for a
    run with no validation split (a `--final` run), where nothing may be fitted."""
    if splits.val is None:
        return None
    val_logits = _logits(model, splits.val[0])
    return calibration.summarize(val_logits, splits.val[1], test_logits, splits.test[1])


def _pr_curves(probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str], step: int) -> None:
    """One PR curve per class (that class against the rest), for TensorBoard's PR-curve dashboard."""
    import tensorflow as tf
    from tensorboard.plugins.pr_curve import summary as pr_summary

    for k, name in enumerate(class_names):
        pb = pr_summary.pb(
            f"test/{name}",
            labels == k,
            probs[:, k].astype(np.float32),
            num_thresholds=PR_THRESHOLDS,
            description=f"test split: {name} against the rest",
        )
        tf.summary.experimental.write_raw_pb(pb.SerializeToString(), step=step)


def write_report(
    run_dir: Path,
    model: keras.Model,
    splits: Splits,
    class_names: Sequence[str],
    config: Config,
    test_metrics: dict[str, float],
    step: int,
) -> calibration.Calibration | None:
    """Write the report summaries into `run_dir`'s own event file; return the test split's calibration."""
    import tensorflow as tf

    x, y = splits.test
    logits = _logits(model, x)
    predictions = np.argmax(logits, axis=1)
    matrix = tf.math.confusion_matrix(y, predictions, num_classes=len(class_names)).numpy()
    kernel = model.get_weights()[0]
    n = config.logging.num_images
    calibrated = calibrate(model, splits, logits) if test_metrics else None

    def image(name: str, png: bytes, description: str) -> None:
        tf.summary.image(name, tf.expand_dims(tf.io.decode_png(png, channels=4), 0), step=step, description=description)

    writer = tf.summary.create_file_writer(str(run_dir))
    with writer.as_default():
        for name, value in test_metrics.items():
            tf.summary.scalar(f"test/{name}", value, step=step, description=f"final test {name}")
        if n:
            image(
                "test/predictions",
                prediction_grid(x[:n], y[:n], predictions[:n], class_names),
                "first test images, titled true / predicted (red: wrong)",
            )
        image("test/confusion_matrix", confusion_figure(matrix, class_names), "rows: true class")
        image(
            "model/weight_templates",
            weight_templates(kernel, x.shape[1:], class_names),
            "the Dense kernel reshaped to the image, one picture per class",
        )
        if calibrated is not None:
            _write_calibration(calibrated, logits, y, class_names, step, image)
        tf.summary.text(
            "config",
            "    " + to_toml(config).replace("\n", "\n    "),
            step=step,
            description="the resolved config of this run",
        )
    writer.close()
    return calibrated


def _write_calibration(
    calibrated: calibration.Calibration,
    logits: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    step: int,
    image: Any,
) -> None:
    import tensorflow as tf

    scalars = {
        "ece": (calibrated.ece, "expected calibration error, 15 confidence bins"),
        "ece_calibrated": (calibrated.ece_calibrated, "ECE after temperature scaling (fitted on validation)"),
        "nll": (calibrated.nll, "negative log-likelihood"),
        "nll_calibrated": (calibrated.nll_calibrated, "NLL after temperature scaling"),
        "temperature": (calibrated.temperature, "the one scalar T fitted on validation: softmax(z / T)"),
    }
    for coverage, accuracy in calibrated.accuracy_at.items():
        scalars[f"accuracy_at_{round(coverage * 100)}pct"] = (
            accuracy,
            f"accuracy on the {coverage:.0%} most confident test inputs",
        )
    for name, (value, description) in scalars.items():
        tf.summary.scalar(f"calibration/{name}", value, step=step, description=description)
    image(
        "test/reliability",
        figures.reliability_figure(logits, labels, calibrated),
        "accuracy per confidence bin against the diagonal, raw and temperature-scaled",
    )
    image(
        "test/coverage",
        figures.coverage_figure(logits, labels, calibrated),
        "accuracy on the most confident inputs as coverage grows; the star: the threshold chosen on validation for 95%",
    )
    _pr_curves(calibration.softmax(logits), labels, class_names, step)
