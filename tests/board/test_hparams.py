"""Every run is a row of TensorBoard's HParams dashboard, so D2L's separate exercise runs compare there."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tfsoftmax.board import hparams
from tfsoftmax.config import Config
from tfsoftmax.config.loader import load_config, override
from tfsoftmax.training import train

from conftest import ROOT, write_tiny_cache

SESSIONS = {
    "experimentName": "",
    "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
    "colParams": [],
    "startIndex": 0,
    "sliceSize": 100,
}


def test_session_holds_the_standard_keys_and_what_differs_from_the_defaults() -> None:
    config = override(Config(), {"train.lr": 0.3, "model.init_stddev": 0.05, "data.data_dir": "/somewhere"})
    values = hparams.run_hparams(config)
    assert list(values)[: len(hparams.STANDARD_KEYS)] == list(hparams.STANDARD_KEYS)
    assert values["train.lr"] == 0.3 and values["model.init_stddev"] == 0.05
    assert "data.data_dir" not in values and "data.validation_fraction" not in values


def test_best_metrics_are_the_best_epochs_and_absent_without_validation() -> None:
    history = {"val_accuracy": [0.5, 0.8, 0.7], "val_loss": [1.0, 0.4, 0.6], "loss": [1.0, 0.5, 0.4]}
    assert hparams.best_metrics(history) == {"best/val_accuracy": 0.8, "best/val_loss": 0.4}
    assert hparams.best_metrics({"loss": [1.0]}) == {}


@pytest.mark.slow
@pytest.mark.tensorboard
def test_the_five_d2l_learning_rate_runs_are_five_sessions(tmp_path: Path, tensorboard: Callable) -> None:
    write_tiny_cache(tmp_path / "tfds")
    files = sorted((ROOT / "experiments").glob("d2l_lr_*.toml"))
    assert len(files) == 5
    runs = {}
    for path in files:
        config = load_config(
            path,
            [
                f'data.data_dir="{tmp_path / "tfds"}"',
                f'logging.root="{tmp_path / "logs"}"',
                "train.epochs=2",
                "data.batch_size=16",
                "logging.num_images=4",
            ],
        )
        runs[config.logging.run_name] = train.run(config)
    board = tensorboard(tmp_path / "logs" / "d2l_lr")
    board.wait_for(lambda: len(board.post("/data/plugin/hparams/session_groups", SESSIONS)["sessionGroups"]) == 5)
    experiment = board.post("/data/plugin/hparams/experiment", {"experimentName": ""})
    assert set(hparams.STANDARD_KEYS) <= {h["name"] for h in experiment["hparamInfos"]}
    metrics = {(m["name"]["group"], m["name"]["tag"]) for m in experiment["metricInfos"]}
    assert {("", "test/accuracy"), ("", "best/val_accuracy"), ("validation", "epoch_accuracy")} <= metrics
    for group in board.post("/data/plugin/hparams/session_groups", SESSIONS)["sessionGroups"]:
        experiment, name = group["name"].split("/")
        assert experiment == "d2l_lr"
        result = runs[name]
        assert group["hparams"]["train.lr"] == pytest.approx(load_config(result.run_dir / "config.toml").train.lr)
        values = {(m["name"]["group"], m["name"]["tag"]): m["value"] for m in group["metricValues"]}
        assert values[("", "test/accuracy")] == pytest.approx(result.test["accuracy"])
        assert values[("", "best/val_accuracy")] == pytest.approx(max(result.history["val_accuracy"]))
