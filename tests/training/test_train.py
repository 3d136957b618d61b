"""Short runs on generated data: the run directory, the record, reproducibility and divergence."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tfsoftmax.config.loader import load_config
from tfsoftmax.errors import TfsoftmaxError
from tfsoftmax.rundir import checkpoint
from tfsoftmax.training import train

from conftest import event_steps


def _metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def test_short_run_leaves_a_complete_run_directory(write_config: Callable[..., Path]) -> None:
    import keras

    config = load_config(write_config("[train]\nepochs = 3"))
    result = train.run(config)
    run_dir = result.run_dir
    assert run_dir.parent == Path(config.logging.root) / "tiny"
    assert {"config.toml", "environment.json", "metrics.json", "model.keras", "train", "validation"} <= {
        p.name for p in run_dir.iterdir()
    }
    metrics = _metrics(run_dir)
    assert metrics["status"] == "completed" and metrics["epochs_completed"] == 3
    assert set(metrics["test"]) == {"loss", "accuracy"} and metrics["wall_time_s"] > 0
    assert metrics["history"]["steps"] == [7, 7, 7]  # 108 training images in batches of 16
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "time_s", "examples_per_second"):
        assert len(metrics["history"][key]) == 3, key
    assert metrics["history"]["learning_rate"] == [0.5] * 3
    assert metrics["test"]["accuracy"] > 0.5  # the stripes are learnable
    assert load_config(run_dir / "config.toml") == config  # re-runnable as is
    env = json.loads((run_dir / "environment.json").read_text())
    assert env["dataset"] == {
        "name": "fashion_mnist",
        "version": "3.0.1",
        "sha256": "tiny-generated",
        "manual_dir": env["dataset"]["manual_dir"],
        "train_examples": 120,
        "test_examples": 40,
    }
    assert {"python", "tensorflow", "keras", "tfsoftmax"} <= set(env)
    assert env["cores"] == len(os.sched_getaffinity(0))  # a pack's lanes, which set its trials' last bits
    saved = keras.saving.load_model(run_dir / "model.keras")
    x = np.zeros((2, 28, 28, 1), np.float32)
    assert np.allclose(saved.predict(x, verbose=0), result.model.predict(x, verbose=0))


@pytest.mark.slow
def test_new_run_never_overwrites(write_config: Callable[..., Path]) -> None:
    config = load_config(write_config('[train]\nepochs = 1\n[logging]\nrun_name = "same"'))
    first, second = train.run(config).run_dir, train.run(config).run_dir
    assert first.name == "same" and second.name == "same-2"
    assert _metrics(first)["status"] == _metrics(second)["status"] == "completed"


@pytest.mark.slow
def test_same_seed_same_metrics(write_config: Callable[..., Path]) -> None:
    config = load_config(write_config())
    a, b = train.run(config), train.run(config)
    assert a.history["loss"] == b.history["loss"] and a.test == b.test
    other = train.run(load_config(write_config("[train]\nseed = 1")))
    assert other.history["loss"] != a.history["loss"]


def test_divergence_stops_at_once_and_keeps_the_record(write_config: Callable[..., Path]) -> None:
    config = load_config(write_config("[train]\nepochs = 5\nlr = 1e36\n[data]\nscale = false"))
    result = train.run(config)
    metrics = _metrics(result.run_dir)
    assert result.status == metrics["status"] == "diverged"
    assert metrics["divergence"]["epoch"] == 1
    assert "training loss became nan at epoch 1" in metrics["divergence"]["reason"]
    assert metrics["epochs_completed"] == 0 and metrics["test"] is None
    assert (result.run_dir / "train").is_dir() and (result.run_dir / "config.toml").is_file()
    # The half epoch that diverged is neither validated nor logged.
    assert event_steps(result.run_dir / "train", "epoch_loss") == {}
    assert not (result.run_dir / "validation").exists()


@pytest.mark.slow
def test_epoch_time_is_the_whole_epoch_with_its_writes(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`time_s` is what the user waits for per epoch, bookkeeping included; throughput is the training pass."""
    import time

    save = checkpoint.save
    delay = 0.5

    def slow_save(*args: object) -> None:
        time.sleep(delay)
        save(*args)

    monkeypatch.setattr(checkpoint, "save", slow_save)
    result = train.run(load_config(write_config("[train]\nepochs = 3")))
    history = result.history
    # The sleep is outside the training pass and inside the whole epoch, whatever the machine's speed.
    assert all(
        t - 108 / rate >= delay for t, rate in zip(history["time_s"], history["examples_per_second"], strict=True)
    )
    assert event_steps(result.run_dir / "train", "epoch_time_s") == {0: 1, 1: 1, 2: 1}


def test_unwritable_log_root_is_one_line(write_config: Callable[..., Path], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    config = load_config(write_config(f'[logging]\nroot = "{blocker}"'))
    with pytest.raises(TfsoftmaxError, match="logging.root: cannot create a run folder in") as info:
        train.run(config)
    assert info.value.exit_code == 1


@pytest.mark.slow
def test_speed_settings_do_not_change_the_weights(write_config: Callable[..., Path]) -> None:
    fit = '[train]\nepochs = 1\nengine = "fit"\nsteps_per_execution = '
    plain = train.run(load_config(write_config(fit + "1")))
    fast = train.run(load_config(write_config(fit + "64")))
    for a, b in zip(plain.model.get_weights(), fast.model.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _last_histogram(folder: Path, tag: str) -> np.ndarray:
    import tensorflow as tf

    found = [
        tf.make_ndarray(value.tensor)
        for path in sorted(folder.glob("events.out.tfevents.*"))
        for event in tf.compat.v1.train.summary_iterator(str(path))
        for value in event.summary.value
        if value.tag == tag
    ]
    return found[-1]


def test_a_run_writes_its_weight_histograms_once_an_epoch_under_keras_tags(write_config: Callable[..., Path]) -> None:
    """The histograms Keras' TensorBoard callback would write, built in NumPy: one per weight and epoch,
    counting every value of the final weights; none when the config turns them off."""
    result = train.run(load_config(write_config("[train]\nepochs = 3")))
    kernel, bias = result.model.get_weights()
    for tag, weights in (
        ("softmax_regression/dense/kernel/histogram", kernel),
        ("softmax_regression/dense/bias/histogram", bias),
    ):
        assert event_steps(result.run_dir / "train", tag) == {0: 1, 1: 1, 2: 1}
        buckets = _last_histogram(result.run_dir / "train", tag)  # (left edge, right edge, count) rows
        assert buckets[:, 2].sum() == weights.size
        assert buckets[0, 0] == pytest.approx(weights.min()) and buckets[-1, 1] == pytest.approx(weights.max())
    quiet = train.run(load_config(write_config("[train]\nepochs = 1\n[logging]\nhistograms = false")))
    assert event_steps(quiet.run_dir / "train", "softmax_regression/dense/kernel/histogram") == {}
