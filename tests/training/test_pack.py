"""Trial packing: a pack's arithmetic is Keras' (weights, losses and accuracies against `model.fit`), packed
trials reproduce standalone runs of their saved configs in another process, a diverging trial ends alone,
early stopping stops where an unpacked trial stops, and an interrupted packed sweep resumes in a new
process with no trial repeated."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tfsoftmax import data as data_lib
from tfsoftmax.config import Config
from tfsoftmax.config.loader import load_config, override
from tfsoftmax.models.softmax import build_model
from tfsoftmax.sweeps import tune, tuners
from tfsoftmax.training import train
from tfsoftmax.training.compiled_packs import engine
from tfsoftmax.training.pack import Member, Pack
from tfsoftmax.training.packed_trial import family, member

from conftest import child_env, interruptible_child, striped, tfsoftmax_command
from sweep_helpers import sweep_file, trial_records

# (optimizer, lr, batch size, weight decay): batch sizes 8..32 leave a short last batch of 108 examples.
MEMBERS = {
    "sgd": [("sgd", 0.3, 8, 0.0), ("sgd", 0.1, 16, 1e-3), ("momentum", 0.05, 32, 0.0), ("momentum", 0.2, 24, 1e-2)],
    "adam": [("adam", 0.01, 8, 0.0), ("adam", 0.003, 32, 1e-3), ("adam", 0.03, 16, 0.0)],
    # Plain SGD alone: the pass keeps no velocity.
    "plain sgd": [("sgd", 0.3, 8, 0.0), ("sgd", 0.1, 16, 1e-3), ("sgd", 0.05, 24, 0.0)],
}


@pytest.mark.parametrize("members", list(MEMBERS))
def test_a_pack_steps_every_trial_as_keras_fit_does(members: str) -> None:
    train_xy, val_xy = striped(108), striped(40, seed=1)
    configs = [
        override(Config(), {"train.optimizer": o, "train.lr": lr, "data.batch_size": b, "train.weight_decay": wd})
        for o, lr, b, wd in MEMBERS[members]
    ]
    shape, epochs = train_xy[0].shape[1:], 3
    histories, kernels, starts = [], [], []
    for c in configs:
        train.seed_everything(c.train.seed)
        model = build_model(shape, 10, c.model, c.train)
        starts.append(tuple(model.get_weights()))
        fit = model.fit(
            data_lib.train_batches(*train_xy, c.data.batch_size, c.train.seed),
            validation_data=data_lib.eval_batches(*val_xy),
            epochs=epochs,
            verbose=0,
            shuffle=False,
        )
        histories.append(fit.history)
        kernels.append(model.get_weights()[0])
    pack = Pack(train_xy, 0, [member(c) for c in configs], family(configs[0]), starts)
    assert pack.micro == 8
    for epoch in range(epochs):
        result = pack.epoch(epoch)
        val_loss, val_acc = pack.evaluate(*val_xy)
        for i, h in enumerate(histories):
            assert result.loss[i] == pytest.approx(h["loss"][epoch], rel=1e-4), (i, epoch)
            assert result.accuracy[i] == pytest.approx(h["accuracy"][epoch], abs=1e-6), (i, epoch)
            assert val_loss[i] == pytest.approx(h["val_loss"][epoch], rel=1e-4), (i, epoch)
            assert val_acc[i] == pytest.approx(h["val_accuracy"][epoch], abs=1e-6), (i, epoch)
            assert result.steps[i] == -(-108 // configs[i].data.batch_size) and result.diverged_at[i] == 0
    for i, kernel in enumerate(kernels):
        np.testing.assert_allclose(pack.weights(i)[0], kernel, atol=1e-5)


def test_a_pack_is_reused_only_for_trials_its_compiled_pass_can_step() -> None:
    """A plain-SGD pack keeps no velocity, so members of the same shape with momentum get a pack of their
    own, and the next plain-SGD members get the first one back, reset."""
    xy = striped(108)
    start = (np.zeros((784, 10), np.float32), np.zeros(10, np.float32))
    plain = engine(xy, 0, [Member(0.1, 16), Member(0.2, 16)], "sgd", [start, start])
    moving = engine(xy, 0, [Member(0.1, 16, momentum=0.9), Member(0.2, 16)], "sgd", [start, start])
    assert moving is not plain and moving.lane.moves and not plain.lane.moves
    again = engine(xy, 0, [Member(0.3, 16), Member(0.2, 16)], "sgd", [start, start])
    assert again is plain and np.allclose(again.lr.numpy().ravel(), [0.3, 0.2])


def test_a_stopped_trial_keeps_its_weights_while_its_pack_mates_train_on() -> None:
    xy = striped(108)
    start = (np.zeros((784, 10), np.float32), np.zeros(10, np.float32))
    pack = Pack(xy, 0, [Member(0.1, 16), Member(0.1, 16)], "sgd", [start, start])
    pack.epoch(0)
    pack.stop(0)
    kept = pack.weights(0)[0].copy()
    pack.epoch(1)
    np.testing.assert_array_equal(pack.weights(0)[0], kept)
    assert not np.array_equal(pack.weights(1)[0], kept)
    # Saved and put back, a trial's state continues exactly.
    other = Pack(xy, 0, [Member(0.1, 16)], "sgd", [start])
    other.load(0, pack.state(1))
    pack.epoch(2)
    other.epoch(2)
    np.testing.assert_allclose(other.weights(0)[0], pack.weights(1)[0], atol=1e-6)


def _standalone(configs: list[Path]) -> list[dict]:
    """Each config trained by `tfsoftmax.run` in one new process (never this one): test metrics, run folder."""
    script = (
        "import json, sys\nfrom tfsoftmax import load_config, run\n"
        "runs = [run(load_config(p)) for p in sys.argv[1:]]\n"
        "print(json.dumps([{'test': r.test, 'dir': str(r.run_dir)} for r in runs]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, *map(str, configs)], env=child_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _trial_test_accuracy(run_dir: Path, config_path: Path) -> float:
    import keras

    config = load_config(config_path)
    splits = data_lib.split(data_lib.load_dataset(config.data), config.data)
    model = keras.saving.load_model(run_dir / "model.keras")
    return float(model.evaluate(data_lib.eval_batches(*splits.test), verbose=0, return_dict=True)["accuracy"])


@pytest.mark.slow
def test_packed_trials_reproduce_standalone_runs_of_their_configs(write_config: Callable[..., Path]) -> None:
    path = sweep_file(
        write_config,
        '"train.lr" = { min = 0.01, max = 0.5, sampling = "log" }\n"data.batch_size" = { values = [8, 16, 32] }\n'
        '"train.optimizer" = { values = ["sgd", "momentum", "adam"] }',
        trials=6,
        epochs=3,
    )
    swept = subprocess.run(tfsoftmax_command("sweep", str(path)), env=child_env(), capture_output=True, text=True)
    assert swept.returncode == 0, swept.stderr[-3000:]
    sweep = tune.sweep_dir(load_config(path))
    records = trial_records(sweep)
    assert len(records) == 6 and all(len(r["packed"]["trials"]) >= 1 for r in records.values())
    assert max(len(r["packed"]["trials"]) for r in records.values()) > 1
    trials = sorted(records)
    configs = [sweep / t / "execution0" / "config.toml" for t in trials]
    runs = _standalone(configs)
    for trial, config_path, run in zip(trials, configs, runs, strict=True):
        record = records[trial]
        again = json.loads((Path(run["dir"]) / "metrics.json").read_text())
        assert abs(again["history"]["val_accuracy"][-1] - record["history"]["val_accuracy"][-1]) <= 1e-3, trial
        assert again["history"]["steps"] == record["history"]["steps"], trial
        trial_test = _trial_test_accuracy(sweep / trial / "execution0", config_path)
        assert abs(run["test"]["accuracy"] - trial_test) <= 1e-3, trial


@pytest.mark.parametrize("pack", [1, 3])
def test_a_diverging_trial_ends_alone_and_its_pack_mates_complete(write_config: Callable[..., Path], pack: int) -> None:
    config = load_config(
        sweep_file(
            write_config,
            '"train.lr" = { values = [0.5, 1e36, 0.2] }',
            trials=3,
            epochs=3,
            algorithm="grid",
            extra="[data]\nscale = false\n",
            pack=pack,
        )
    )
    result = tune.search(config)
    statuses = {row.values["train.lr"]: row.status for row in result.rows}
    assert statuses == {0.5: "completed", 1e36: "diverged", 0.2: "completed"}
    records = trial_records(tune.sweep_dir(config))
    diverged = next(r for r in records.values() if r["status"] == "diverged")
    assert diverged["divergence"]["epoch"] == 1 and diverged["epochs_completed"] == 0
    assert "training loss became nan" in diverged["divergence"]["reason"]
    assert all(r["epochs_completed"] == 3 for r in records.values() if r["status"] == "completed")
    if pack > 1:
        assert [r["packed"]["trials"] for r in records.values()] == [["0", "1", "2"]] * 3, records


def test_early_stopping_in_a_pack_stops_where_an_unpacked_trial_stops(write_config: Callable[..., Path]) -> None:
    kept = {}
    for pack in (1, 4):
        config = load_config(
            sweep_file(
                write_config,
                '"train.lr" = { values = [0.002, 0.3, 0.01, 1.0] }',
                trials=4,
                epochs=12,
                algorithm="grid",
                extra="[train]\nearly_stopping = 2\n",
                pack=pack,
            )
        )
        config = override(config, {"logging.experiment": f"es{pack}"})
        tune.search(config)
        records = trial_records(tune.sweep_dir(config))
        kept[pack] = {
            t: (r["epochs_completed"], r.get("kept_epoch"), round(r["best"]["val_accuracy"], 6))
            for t, r in records.items()
        }
    assert kept[1] == kept[4]
    assert any(done < 12 for done, _, _ in kept[4].values())  # some trial did stop early


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_an_interrupted_packed_sweep_resumes_with_no_trial_repeated(
    write_config: Callable[..., Path], sig: signal.Signals
) -> None:
    path = sweep_file(
        write_config, '"train.lr" = { values = [0.1, 0.2, 0.3, 0.4] }', trials=4, epochs=150, algorithm="grid", pack=3
    )
    sweep = tune.sweep_dir(load_config(path))
    process = interruptible_child(tfsoftmax_command("sweep", str(path)))
    deadline = time.monotonic() + 240

    def mid_pack() -> bool:  # the first pack's three trials part-way
        records = trial_records(sweep).values()
        return len(records) == 3 and all(r["status"] == "running" and r["epochs_completed"] >= 2 for r in records)

    while not mid_pack():
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.05)
    process.send_signal(sig)
    err = process.communicate(timeout=60)[1]
    if sig == signal.SIGINT:
        assert process.returncode == 130 and "tfsoftmax: error: interrupted" in err, err[-3000:]
        assert [r["status"] for r in trial_records(sweep).values()] == ["interrupted"] * 3
    resumed = subprocess.run(tfsoftmax_command("sweep", str(path)), env=child_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    records = trial_records(sweep)
    assert sorted(records) == ["0", "1", "2", "3"]
    assert all(r["status"] == "completed" and r["epochs_completed"] == 150 for r in records.values())
    assert all(r["history"]["steps"] == [7] * 150 for r in records.values())
    # The three cut trials continued from their last finished epoch (a kill may leave one a step behind).
    assert sorted(t for t, r in records.items() if "resumed_at_epochs" in r) == ["0", "1", "2"]
    assert list(sweep.glob("*/execution0/checkpoint")) == []
    oracle = json.loads((sweep / "tuner" / "oracle.json").read_text())
    assert sorted(oracle["end_order"]) == ["0", "1", "2", "3"]  # each trial ended once: none repeated
    again = subprocess.run(tfsoftmax_command("sweep", str(path)), env=child_env(), capture_output=True, text=True)
    assert again.returncode == 0 and "trial 1/4" not in again.stdout  # a finished sweep trains nothing


def test_packed_trials_log_what_trials_trained_alone_log(write_config: Callable[..., Path]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = {}
    for pack in (1, 2):
        path = sweep_file(
            write_config, '"train.lr" = { values = [0.1, 0.2] }', trials=2, epochs=2, algorithm="grid", pack=pack
        )
        config = override(load_config(path), {"logging.experiment": f"tags{pack}"})
        tune.search(config)
        trial = tune.sweep_dir(config) / "1" / "execution0"
        found = {}
        for run in ("train", "validation"):
            events = EventAccumulator(str(trial / run), size_guidance={"tensors": 0})
            events.Reload()
            found[run] = {t: len(events.Tensors(t)) for t in events.Tags()["tensors"]}
        tags[pack] = found
    assert tags[2]["train"] == tags[1]["train"]  # scalars and histograms, one value per epoch
    # Keras also logs its validation metrics against optimizer steps; every epoch tag is there packed too.
    assert {t: n for t, n in tags[1]["validation"].items() if t.startswith("epoch_")} == tags[2]["validation"]


def test_a_bayesian_sweep_asks_for_its_random_initial_points_first(write_config: Callable[..., Path]) -> None:
    config = load_config(
        sweep_file(
            write_config, '"train.lr" = { min = 0.01, max = 0.5, sampling = "log" }', trials=6, algorithm="bayesian"
        )
    )
    tune.search(config)
    packs = {tuple(r["packed"]["trials"]) for r in trial_records(tune.sweep_dir(config)).values()}
    # 3 initial points for one swept key (keras-tuner's 3 x dimensions), then the guided rest in one round.
    assert sorted(packs) == [("0", "1", "2"), ("3", "4", "5")]


def test_a_pack_stopped_mid_epoch_leaves_every_record_whole(
    write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tfsoftmax.errors import RUNTIME_ERROR, TfsoftmaxError
    from tfsoftmax.rundir import layout as rundir
    from tfsoftmax.sweeps import packing

    def chief_gone(*args: object) -> None:  # as a worker's first report after the chief died
        raise TfsoftmaxError("sweep worker: the chief did not answer", RUNTIME_ERROR)

    monkeypatch.setattr(packing, "report", chief_gone)
    config = load_config(
        sweep_file(write_config, '"train.lr" = { values = [0.1, 0.2] }', trials=2, epochs=3, algorithm="grid")
    )
    with pytest.raises(tuners.SearchStopped):
        tune.search(config)
    sweep = tune.sweep_dir(config)
    # Read back through the record's own schema check: the second trial's epoch was logged, not saved.
    records = {t: rundir.read_record(sweep / t / "execution0") for t in ("0", "1")}
    assert [r["status"] for r in records.values()] == ["failed", "failed"]
    assert [r["epochs_completed"] for r in records.values()] == [1, 0]
