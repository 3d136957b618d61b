"""On the real Fashion-MNIST (../shared/datasets/fashion_mnist): the reference run's accuracy, its
TensorBoard output read back over HTTP, reproducibility across processes, the scratch model, the
overflow lesson and the example sweep's HParams. Slow: about two minutes on 2 cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import ROOT, SHARED_FASHION

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SHARED_FASHION.is_dir(), reason="needs ../shared/datasets/fashion_mnist"),
]


def tfsoftmax(*args: str, timeout: int = 400) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TFSOFTMAX_MANUAL_DIR": str(SHARED_FASHION),
        "PYTHONPATH": str(ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    return subprocess.run(
        [sys.executable, "-m", "tfsoftmax", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def only_run(root: Path, experiment: str) -> Path:
    runs = sorted((root / experiment).iterdir())
    return runs[-1]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("logs")
    for _ in range(2):  # twice, in two processes, for the reproducibility check
        result = tfsoftmax("run", "experiments/fashion_mnist.toml", "--logdir", str(root))
        assert result.returncode == 0, result.stderr[-2000:]
    return root


def test_reference_run_reaches_d2l_accuracy(reference: Path) -> None:
    first, _ = sorted((reference / "fashion_mnist").iterdir())
    metrics = json.loads((first / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs_completed"] == 10
    assert 0.81 <= metrics["test"]["accuracy"] <= 0.86
    assert {"config.toml", "environment.json", "metrics.json", "model.keras"} <= {p.name for p in first.iterdir()}
    env = json.loads((first / "environment.json").read_text())
    assert env["dataset"]["name"] == "fashion_mnist" and env["dataset"]["train_examples"] == 60000


def test_same_config_same_metrics_in_two_processes(reference: Path) -> None:
    first, second = (
        json.loads((run / "metrics.json").read_text()) for run in sorted((reference / "fashion_mnist").iterdir())
    )
    assert first["test"] == second["test"]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert first["history"][key] == second["history"][key]


@pytest.mark.tensorboard
def test_tensorboard_shows_scalars_images_histograms_and_text(reference: Path, tensorboard: Callable) -> None:
    board = tensorboard(reference)
    run = "fashion_mnist/" + sorted((reference / "fashion_mnist").iterdir())[0].name
    board.wait_for(lambda: run in board.get("/data/plugin/images/tags"))
    scalars = board.get("/data/plugin/scalars/tags")
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate", "epoch_time_s", "epoch_examples_per_second"} <= set(
        scalars[f"{run}/train"]
    )
    assert {"epoch_loss", "epoch_accuracy"} <= set(scalars[f"{run}/validation"])
    assert {"test/loss", "test/accuracy"} <= set(scalars[run])
    assert {"test/predictions", "test/confusion_matrix", "model/weight_templates"} <= set(
        board.get("/data/plugin/images/tags")[run]
    )
    assert "config" in board.get("/data/plugin/text/tags")[run]
    histograms = board.get("/data/plugin/histograms/tags")[f"{run}/train"]
    assert {"softmax_regression/dense/kernel/histogram", "softmax_regression/dense/bias/histogram"} <= set(histograms)
    accuracy = board.get(f"/data/plugin/scalars/scalars?run={run}/validation&tag=epoch_accuracy")
    assert len(accuracy) == 10


def test_scratch_model_reaches_the_reference_band(tmp_path: Path) -> None:
    result = tfsoftmax("run", "experiments/fashion_mnist_scratch.toml", "--logdir", str(tmp_path))
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((only_run(tmp_path, "fashion_mnist_scratch") / "metrics.json").read_text())
    assert 0.81 <= metrics["test"]["accuracy"] <= 0.86


def test_naive_softmax_overflows_and_its_stable_twin_completes(tmp_path: Path) -> None:
    naive = tfsoftmax("run", "experiments/naive_softmax_overflow.toml", "--logdir", str(tmp_path / "naive"))
    assert naive.returncode == 1 and "diverged: training loss became" in naive.stderr
    metrics = json.loads((only_run(tmp_path / "naive", "naive_softmax_overflow") / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and metrics["divergence"]["epoch"] == 1
    stable = tfsoftmax(
        "run",
        "experiments/naive_softmax_overflow.toml",
        "--set",
        "model.loss=stable",
        "--logdir",
        str(tmp_path / "stable"),
    )
    assert stable.returncode == 0, stable.stderr[-2000:]


@pytest.mark.tensorboard
def test_example_sweep_lists_six_trials_in_hparams(tmp_path: Path, tensorboard: Callable) -> None:
    result = tfsoftmax(
        "sweep",
        "experiments/fashion_mnist_sweep.toml",
        "--set",
        "sweep.max_trials=6",
        "--set",
        "sweep.epochs=2",
        "--logdir",
        str(tmp_path),
        timeout=500,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    board = tensorboard(tmp_path)
    body = {
        "experimentName": "",
        "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
        "colParams": [],
        "startIndex": 0,
        "sliceSize": 100,
    }
    board.wait_for(lambda: len(board.post("/data/plugin/hparams/session_groups", body)["sessionGroups"]) == 6)
    for group in board.post("/data/plugin/hparams/session_groups", body)["sessionGroups"]:
        assert set(group["hparams"]) == {"train.lr", "data.batch_size"}
        assert any(m["name"] == {"group": "validation", "tag": "epoch_accuracy"} for m in group["metricValues"])
    assert (tmp_path / "fashion_mnist_sweep" / "best.toml").is_file()
