"""D2L's fixes for overfitting: weight decay in both model kinds, early stopping with the best epoch kept."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tfsoftmax.config import ModelConfig, TrainConfig
from tfsoftmax.config.loader import load_config
from tfsoftmax.errors import TfsoftmaxError
from tfsoftmax.models.softmax import build_model
from tfsoftmax.rundir import checkpoint
from tfsoftmax.rundir import layout as rundir
from tfsoftmax.training import train


def _batches() -> tuple[np.ndarray, np.ndarray, object]:
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = rng.random((96, 6, 6, 1), dtype=np.float32)
    y = rng.integers(0, 4, size=96).astype(np.int32)
    return x, y, tf.data.Dataset.from_tensor_slices((x, y)).batch(16)


@pytest.mark.parametrize("kind", ["keras", pytest.param("scratch", marks=pytest.mark.slow)])
def test_weight_decay_adds_half_lambda_squared_norm_and_shrinks_the_kernel(kind: str) -> None:
    x, y, batches = _batches()
    plain = build_model((6, 6, 1), 4, ModelConfig(kind=kind), TrainConfig(lr=0.5, seed=3))
    decayed = build_model((6, 6, 1), 4, ModelConfig(kind=kind), TrainConfig(lr=0.5, seed=3, weight_decay=0.5))
    kernel = plain.get_weights()[0]
    penalty = 0.25 * float(np.sum(kernel.astype(np.float64) ** 2))
    assert decayed.evaluate(x, y, verbose=0)[0] == pytest.approx(plain.evaluate(x, y, verbose=0)[0] + penalty, rel=1e-5)
    for model in (plain, decayed):
        model.fit(batches, epochs=3, verbose=0, shuffle=False)
    assert np.linalg.norm(decayed.get_weights()[0]) < 0.9 * np.linalg.norm(plain.get_weights()[0])
    assert np.allclose(decayed.get_weights()[1] != 0, True)  # the bias still learns


def test_weight_decay_is_the_same_in_both_kinds() -> None:
    _, _, batches = _batches()
    cfg = TrainConfig(lr=0.5, seed=3, weight_decay=0.1)
    keras_model = build_model((6, 6, 1), 4, ModelConfig(), cfg)
    scratch = build_model((6, 6, 1), 4, ModelConfig(kind="scratch"), cfg)
    scratch.set_weights(keras_model.get_weights())
    keras_loss = keras_model.fit(batches, epochs=2, verbose=0, shuffle=False).history["loss"]
    scratch_loss = scratch.fit(batches, epochs=2, verbose=0, shuffle=False).history["loss"]
    for a, b in zip(keras_model.get_weights(), scratch.get_weights(), strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
    np.testing.assert_allclose(scratch_loss, keras_loss, rtol=1e-5)


def _record(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.parametrize("kind", ["keras", pytest.param("scratch", marks=pytest.mark.slow)])
def test_early_stopping_stops_after_patience_and_keeps_the_best_epoch(
    write_config: Callable[..., Path], kind: str
) -> None:
    # lr 3 on the stripes: validation accuracy peaks early, then swings; patience 2 stops it.
    config = load_config(write_config(f'[train]\nepochs = 30\nlr = 3.0\nearly_stopping = 2\n[model]\nkind = "{kind}"'))
    result = train.run(config)
    record = _record(result.run_dir)
    val = record["history"]["val_accuracy"]
    kept = record["kept_epoch"]
    assert kept == rundir.best_epoch(record["history"], "val_accuracy") + 1
    assert record["epochs_completed"] == len(val) < 30  # stopped early
    assert all(v <= val[kept - 1] for v in val[kept:])  # nothing after the kept epoch was better...
    assert len(val) - kept == 2  # ...for exactly `patience` epochs
    # The saved model and the test score are the kept epoch's: its validation accuracy comes back.
    import keras

    from tfsoftmax import data

    splits = data.split(data.load_dataset(config.data), config.data)
    saved = keras.saving.load_model(result.run_dir / "model.keras")
    assert saved.evaluate(*splits.val, verbose=0, return_dict=True)["accuracy"] == pytest.approx(val[kept - 1])


@pytest.mark.slow
def test_early_stopping_resumes_to_the_same_epoch_and_weights(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = '[train]\nepochs = 30\nlr = 3.0\nearly_stopping = 2\n[logging]\nrun_name = "r"'
    whole = train.run(load_config(write_config(text, name="whole")))
    expected = _record(whole.run_dir)
    save = checkpoint.save

    def stop_after_three(model, run_dir, epoch, best=None):  # noqa: ANN001, ANN202
        save(model, run_dir, epoch, best)
        if epoch == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint, "save", stop_after_three)
    config = load_config(write_config(text, name="stopped"))
    with pytest.raises(TfsoftmaxError, match="interrupted"):
        train.run(config)
    monkeypatch.setattr(checkpoint, "save", save)
    resumed = train.resume(Path(config.logging.root) / "stopped" / "r")
    record = _record(resumed.run_dir)
    assert (record["kept_epoch"], record["epochs_completed"]) == (expected["kept_epoch"], expected["epochs_completed"])
    assert record["history"]["val_accuracy"] == expected["history"]["val_accuracy"]
    for a, b in zip(resumed.model.get_weights(), whole.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_needs_a_validation_split(write_config: Callable[..., Path]) -> None:
    with pytest.raises(TfsoftmaxError, match=r"train.early_stopping: got 3, but there is no validation split") as info:
        load_config(write_config("[train]\nearly_stopping = 3\n[data]\nvalidation_fraction = 0.0"))
    assert info.value.exit_code == 2


@pytest.mark.slow
def test_a_sweep_opens_weight_decay_and_early_stopping(write_config: Callable[..., Path]) -> None:
    from tfsoftmax.sweeps import tune

    config = load_config(
        write_config(
            "[train]\nepochs = 4\n[sweep]\nmax_trials = 3\n[sweep.space]\n"
            '"train.weight_decay" = { values = [0.0, 0.01, 0.1] }\n"train.early_stopping" = { values = [1, 2] }'
        )
    )
    result = tune.search(config)
    assert [r.status for r in result.rows] == ["completed"] * 3
    for row in result.rows:
        run_dir = rundir.trial_dir(result.sweep_dir, row.trial_id) / "execution0"
        saved = load_config(run_dir / "config.toml")
        assert (saved.train.weight_decay, saved.train.early_stopping) == (
            row.values["train.weight_decay"],
            row.values["train.early_stopping"],
        )
        assert row.kept_epoch == _record(run_dir)["kept_epoch"]
    # The best trial kept an early epoch: best.toml trains exactly to it, with nothing left to watch.
    best = load_config(result.best_config_path)
    assert (best.train.epochs, best.train.early_stopping) == (result.rows[0].kept_epoch, 0)
    assert best.train.epochs < 4
