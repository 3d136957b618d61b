"""The report of a finished run: calibration in metrics.json and TensorBoard, fitted on validation only."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tfsoftmax import data
from tfsoftmax.analysis import calibration
from tfsoftmax.config.loader import load_config
from tfsoftmax.training import train

from conftest import event_steps

CALIBRATION_KEYS = {
    "ece",
    "ece_calibrated",
    "nll",
    "nll_calibrated",
    "temperature",
    "accuracy_at",
    "threshold_95",
    "coverage_95",
    "accuracy_95",
    "reliability",
    "reliability_calibrated",
}


def test_a_run_records_its_calibration_with_the_temperature_fitted_on_validation(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fitted_on: list[np.ndarray] = []
    fit = calibration.fit_temperature

    def spy(logits: np.ndarray, labels: np.ndarray) -> float:
        fitted_on.append(labels)
        return fit(logits, labels)

    monkeypatch.setattr(calibration, "fit_temperature", spy)
    config = load_config(write_config("[train]\nepochs = 3"))
    result = train.run(config)
    record = json.loads((result.run_dir / "metrics.json").read_text())
    calibrated = record["calibration"]
    assert set(calibrated) == CALIBRATION_KEYS
    assert list(calibrated["accuracy_at"]) == ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1"]
    assert calibrated["accuracy_at"]["1"] == pytest.approx(record["test"]["accuracy"])
    splits = data.split(data.load_dataset(config.data), config.data)
    val_logits = result.model.predict(splits.val[0], verbose=0)
    test_logits = result.model.predict(splits.test[0], verbose=0)
    assert len(fitted_on) == 1 and np.array_equal(fitted_on[0], splits.val[1])  # never on test
    assert calibrated["temperature"] == pytest.approx(fit(val_logits, splits.val[1]))
    probs = calibration.softmax(test_logits)
    assert calibrated["ece"] == pytest.approx(calibration.expected_calibration_error(probs, splits.test[1]))
    for tag in (
        "calibration/ece",
        "calibration/ece_calibrated",
        "calibration/nll",
        "calibration/temperature",
        "calibration/accuracy_at_80pct",
        "test/reliability",
        "test/coverage",
        "test/T-shirt/top/pr_curves",
        "test/Ankle boot/pr_curves",
    ):
        assert event_steps(result.run_dir, tag) == {3: 1}, tag


@pytest.mark.slow  # a second whole run; report.calibrate returns None without a validation split
def test_a_run_without_a_validation_split_fits_nothing(write_config: Callable[..., Path]) -> None:
    result = train.run(load_config(write_config("[train]\nepochs = 1\n[data]\nvalidation_fraction = 0.0")))
    assert "calibration" not in json.loads((result.run_dir / "metrics.json").read_text())
    assert event_steps(result.run_dir, "calibration/temperature") == {}


@pytest.mark.slow
@pytest.mark.tensorboard
def test_calibration_is_served_by_tensorboard(write_config: Callable[..., Path], tensorboard: Callable) -> None:
    run_dir = train.run(load_config(write_config("[train]\nepochs = 2"))).run_dir
    board = tensorboard(run_dir.parent)
    run = run_dir.name
    board.wait_for(lambda: run in board.get("/data/plugin/scalars/tags"))
    scalars = board.get("/data/plugin/scalars/tags")[run]
    assert {
        "calibration/ece",
        "calibration/ece_calibrated",
        "calibration/nll",
        "calibration/temperature",
        "calibration/accuracy_at_80pct",
    } <= set(scalars)
    images = board.get("/data/plugin/images/tags")[run]
    assert {"test/reliability", "test/coverage"} <= set(images)
    curves = board.get("/data/plugin/pr_curves/tags")[run]
    assert len(curves) == 10 and "test/Ankle boot/pr_curves" in curves
    ece = board.get(f"/data/plugin/scalars/scalars?run={run}&tag=calibration/ece")
    recorded = json.loads((run_dir / "metrics.json").read_text())["calibration"]["ece"]
    assert np.isclose(ece[0][2], recorded, rtol=1e-6)


def _red_pixels(png: bytes) -> int:
    import io

    import matplotlib.image

    rgb = matplotlib.image.imread(io.BytesIO(png))[..., :3]
    return int(((rgb[..., 0] > 0.8) & (rgb[..., 1] < 0.3) & (rgb[..., 2] < 0.3)).sum())


def test_the_prediction_grid_titles_wrong_predictions_in_red_and_grows_a_row_per_six_images() -> None:
    from io import BytesIO

    import matplotlib.image

    from tfsoftmax.board import report

    images = np.random.default_rng(0).random((7, 28, 28, 1)).astype(np.float32) * 0.1  # dark: stretched
    labels = np.arange(7) % 3
    wrong = labels.copy()
    wrong[2] = (wrong[2] + 1) % 3
    names = ["a", "b", "c"]
    right_png, wrong_png = (report.prediction_grid(images, labels, p, names) for p in (labels, wrong))
    assert _red_pixels(right_png) == 0 and _red_pixels(wrong_png) > 10
    one_row = matplotlib.image.imread(BytesIO(report.prediction_grid(images[:6], labels[:6], labels[:6], names)))
    two_rows = matplotlib.image.imread(BytesIO(right_png))
    assert two_rows.shape[1] == one_row.shape[1] and two_rows.shape[0] > 1.8 * one_row.shape[0]
    stretched = report._rgb(images[0], span=1.0)  # over its own range, as imshow's gray map drew it
    assert stretched.shape == (28, 28, 3) and stretched.min() == 0.0 and stretched.max() == 1.0
