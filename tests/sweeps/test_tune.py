"""Sweeps on the tiny generated data: space, HParams, batch size, each trial a run, Hyperband, divergence,
the best config and --final, progress. Stopping, resuming and workers are in test_sweep_resume."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tfsoftmax.config import Config, space
from tfsoftmax.config.loader import load_config
from tfsoftmax.errors import TfsoftmaxError
from tfsoftmax.sweeps import estimate, results, tune
from tfsoftmax.training import train

from sweep_helpers import sweep_file, trial_records


def test_space_entries_are_declared_with_their_types(write_config: Callable[..., Path]) -> None:
    import keras_tuner

    config = load_config(
        sweep_file(
            write_config,
            '"train.lr" = { min = 0.01, max = 1.0, sampling = "log" }\n'
            '"data.batch_size" = { values = [8, 32] }\n'
            '"train.epochs" = { min = 1, max = 3 }\n'
            '"train.optimizer" = { values = ["sgd", "adam"] }',
        )
    )
    hp = keras_tuner.HyperParameters()
    values = {e.key: space.declare(hp, e) for e in config.sweep.space}
    kinds = {h.name: type(h).__name__ for h in hp.space}
    assert kinds == {
        "train.lr": "Float",
        "data.batch_size": "Choice",
        "train.epochs": "Int",
        "train.optimizer": "Choice",
    }
    trial = results.config_for(config, values)
    assert trial.data.batch_size == 8 and trial.train.optimizer == "sgd" and trial.train.epochs == 1


BAD_SPACES = [
    ('"train.lrr" = { min = 0.1, max = 1.0 }', "not a config key that can be swept (did you mean 'train.lr'?)"),
    ('"train.lr" = { min = 1.0, max = 0.1 }', "empty range, min 1.0 must be < max 0.1"),
    ('"data.batch_size" = { values = [32, 64.5] }', "data.batch_size: expected an integer, got 64.5"),
    ('"train.optimizer" = { values = ["sgd", "lbfgs"] }', 'train.optimizer: got "lbfgs"; allowed: sgd'),
    ('"train.optimizer" = { min = 1, max = 2 }', "train.optimizer is a string, so it takes { values = [...] }"),
    ('"train.lr" = { min = 0.0, max = 1.0, sampling = "log" }', "train.lr: got 0.0; allowed: a finite number > 0"),
    ('"train.lr" = { min = 0.1, max = 1.0, sampling = "cubic" }', 'sampling: got "cubic"; allowed: linear | log'),
    ('"train.lr" = { values = [] }', "values: expected a non-empty list, got []"),
    ('"train.lr" = 0.1', "expected a table like { min = 0.001, max = 1.0"),
    ('"logging.root" = { values = ["a", "b"] }', "not a config key that can be swept"),
    ('"data.scale" = { values = [true, false] }', "allowed: data.batch_size or a [model] or [train] key"),
]


@pytest.mark.parametrize("space,message", BAD_SPACES)
def test_bad_space_entry_is_one_line_exit_2(write_config: Callable[..., Path], space: str, message: str) -> None:
    with pytest.raises(TfsoftmaxError) as info:
        load_config(sweep_file(write_config, space))
    assert message in str(info.value) and info.value.exit_code == 2


def test_sweep_keys_take_overrides(write_config: Callable[..., Path]) -> None:
    path = sweep_file(write_config, '"train.lr" = { min = 0.01, max = 1.0 }')
    config = load_config(path, ["sweep.max_trials=6", "sweep.space.data.batch_size={values=[8, 16]}"])
    assert config.sweep.max_trials == 6 and [e.key for e in config.sweep.space] == ["train.lr", "data.batch_size"]


@pytest.mark.slow
@pytest.mark.tensorboard
def test_hparams_dashboard_lists_every_trial_with_every_key(
    write_config: Callable[..., Path], tensorboard: Callable
) -> None:
    config = load_config(
        sweep_file(
            write_config,
            '"train.lr" = { min = 0.05, max = 1.0, sampling = "log" }\n"data.batch_size" = { values = [8, 16, 32] }',
            trials=3,
        )
    )
    result = tune.search(config)
    assert [r.status for r in result.rows] == ["completed"] * 3
    board = tensorboard(Path(config.logging.root))
    body = {
        "experimentName": "",
        "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
        "colParams": [],
        "startIndex": 0,
        "sliceSize": 100,
    }
    board.wait_for(lambda: len(board.post("/data/plugin/hparams/session_groups", body)["sessionGroups"]) == 3)
    experiment = board.post("/data/plugin/hparams/experiment", {"experimentName": ""})
    assert {h["name"] for h in experiment["hparamInfos"]} == {"train.lr", "data.batch_size"}
    assert {(m["name"]["group"], m["name"]["tag"]) for m in experiment["metricInfos"]} >= {
        ("validation", "epoch_accuracy"),
        ("train", "epoch_time_s"),
        ("train", "epoch_examples_per_second"),
    }
    groups = board.post("/data/plugin/hparams/session_groups", body)["sessionGroups"]
    by_trial = {g["name"]: g for g in groups}
    assert set(by_trial) == {r.trial_id for r in result.rows}
    for row in result.rows:  # the first trial included: every swept key and the objective
        group = by_trial[row.trial_id]
        assert set(group["hparams"]) == {"train.lr", "data.batch_size"}
        assert group["hparams"]["train.lr"] == pytest.approx(row.values["train.lr"])
        val_acc = [
            m["value"] for m in group["metricValues"] if m["name"] == {"group": "validation", "tag": "epoch_accuracy"}
        ]
        assert val_acc == [pytest.approx(row.score)]
    scalars = board.get("/data/plugin/scalars/tags")
    trial_train = f"sw/{result.rows[0].trial_id}/execution0/train"
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate", "epoch_time_s", "epoch_examples_per_second"} <= set(
        scalars[trial_train]
    )


def test_batch_size_changes_steps_per_epoch(write_config: Callable[..., Path]) -> None:
    config = load_config(sweep_file(write_config, '"data.batch_size" = { values = [8, 54] }', trials=2))
    result = tune.search(config)
    records = trial_records(tune.sweep_dir(config))
    steps = {row.values["data.batch_size"]: records[row.trial_id]["history"]["steps"] for row in result.rows}
    assert steps == {8: [14], 54: [2]}  # 108 training images


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["keras", "scratch"])
def test_each_trial_equals_a_run_of_its_saved_config(write_config: Callable[..., Path], kind: str) -> None:
    """Trials after the first reuse the first one's traced model: its starting state must be reset exactly
    (weights, momentum slots, step count, learning rate), as a fresh run of the trial's config shows."""
    optimizer = "momentum" if kind == "keras" else "sgd"
    config = load_config(
        sweep_file(
            write_config,
            '"train.lr" = { values = [0.3, 0.05, 0.2] }\n"data.batch_size" = { values = [16, 32] }',
            trials=3,
            algorithm="random",
            epochs=2,
            extra=f'[model]\nkind = "{kind}"\n[train]\noptimizer = "{optimizer}"\n',
            pack=1,  # trained alone, a trial is bit for bit its run; packed ones: test_pack.py
        )
    )
    tune.search(config)
    sweep = tune.sweep_dir(config)
    records = trial_records(sweep)
    assert len(records) == 3
    for trial, record in records.items():
        again = train.run(load_config(sweep / trial / "execution0" / "config.toml"))
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "steps"):
            assert again.history[key] == record["history"][key], (trial, key)


@pytest.mark.slow
def test_hyperband_continues_trials_from_their_initial_epoch(write_config: Callable[..., Path]) -> None:
    config = load_config(
        sweep_file(
            write_config,
            '"train.lr" = { min = 0.05, max = 0.5, sampling = "log" }',
            algorithm="hyperband",
            epochs=4,
            extra='[train]\noptimizer = "momentum"\n',
        )
    )
    result = tune.search(config)
    sweep = tune.sweep_dir(config)
    records = trial_records(sweep)
    assert len(records) == estimate.count_trials(config) == len(result.rows) and result.best_config_path
    assert all(r["status"] == "completed" for r in records.values())
    continued = {t: r for t, r in records.items() if r.get("first_epoch", 0) > 0}
    assert continued  # Hyperband's later brackets train on from where an earlier trial stopped
    for record in continued.values():
        assert len(record["history"]["loss"]) == record["epochs_planned"] - record["first_epoch"]
    assert list(sweep.glob("*/execution0/checkpoint")) == []


def _hyperband(write_config: Callable[..., Path], pack: int) -> Config:
    """A Hyperband sweep of 10 trials (max 4 epochs), trained `pack` at a time, in its own experiment. With
    momentum, a promoted trial must continue its parent's optimizer state too."""
    space = '"train.lr" = { min = 0.002, max = 0.02, sampling = "log" }\n"data.batch_size" = { values = [8, 16] }'
    extra = f'[train]\noptimizer = "momentum"\n[logging]\nexperiment = "pack{pack}"\n'
    return load_config(sweep_file(write_config, space, algorithm="hyperband", epochs=4, extra=extra, pack=pack))


def _oracle_trials(sweep: Path) -> dict[str, tuple[dict, float | None]]:
    """Each trial's values (Hyperband's own included: bracket, round, epochs, parent) and score, as the
    oracle saved them."""
    found = {}
    for path in (sweep / "tuner").glob("trial_*/trial.json"):
        saved = json.loads(path.read_text())
        values = saved["hyperparameters"]["values"]
        found[saved["trial_id"]] = (values, saved["score"])
    return found


@pytest.mark.slow
def test_packed_hyperband_promotes_and_continues_the_trials_keras_tuners_own_loop_does(
    write_config: Callable[..., Path],
) -> None:
    alone, packed = _hyperband(write_config, 1), _hyperband(write_config, 16)
    tune.search(alone)
    tune.search(packed)
    one_by_one, in_packs = (_oracle_trials(tune.sweep_dir(c)) for c in (alone, packed))
    assert len(in_packs) == estimate.count_trials(packed) == 10
    # The same trials, made in the same order from the same random draws, promoted from the same parents.
    assert {t: v for t, (v, _) in in_packs.items()} == {t: v for t, (v, _) in one_by_one.items()}
    for trial, (_, score) in in_packs.items():  # scores to float rounding
        assert score == pytest.approx(one_by_one[trial][1], abs=1e-6), trial
    records, alone_records = trial_records(tune.sweep_dir(packed)), trial_records(tune.sweep_dir(alone))
    assert all("trials" in r["packed"] for r in records.values())  # trained in packs, not one by one
    continued = [t for t, (values, _) in in_packs.items() if "tuner/trial_id" in values]
    assert continued
    for trial in in_packs:  # what keras-tuner's Hyperband reads of a parent, whichever way it trained
        folder = tune.sweep_dir(packed) / "tuner" / f"trial_{trial}"
        assert (folder / "checkpoint.weights.h5").is_file() and (folder / "build_config.json").is_file()
    for trial in continued:  # each continues its parent's best epoch, as keras-tuner's Hyperband loads it
        history, alone_history = records[trial]["history"], alone_records[trial]["history"]
        assert records[trial]["first_epoch"] == in_packs[trial][0]["tuner/initial_epoch"] > 0
        assert history["loss"] == pytest.approx(alone_history["loss"], rel=1e-4), trial


@pytest.mark.slow
def test_diverging_trial_is_recorded_and_the_sweep_goes_on(write_config: Callable[..., Path]) -> None:
    config = load_config(
        sweep_file(
            write_config,
            '"train.lr" = { values = [0.5, 1e36, 0.2] }',
            trials=3,
            algorithm="grid",
            extra="[data]\nscale = false\n",
        )
    )
    result = tune.search(config)
    statuses = {row.values["train.lr"]: row.status for row in result.rows}
    assert statuses == {0.5: "completed", 1e36: "diverged", 0.2: "completed"}
    diverged = next(r for r in result.rows if r.status == "diverged")
    assert "training loss became nan" in diverged.reason and diverged.score is None
    assert result.rows[-1] is diverged  # ranked last, never the best
    best = load_config(result.best_config_path)
    assert best.train.lr != 1e36 and best.sweep.space == ()
    saved = json.loads((tune.sweep_dir(config) / "results.json").read_text())
    assert [t["status"] for t in saved["trials"]][-1] == "diverged"
    assert (tune.sweep_dir(config) / "results.csv").read_text().count("\n") == 4


@pytest.mark.slow
def test_best_toml_runs_as_is_and_final_uses_train_plus_validation(write_config: Callable[..., Path]) -> None:
    from tfsoftmax.training import train

    config = load_config(sweep_file(write_config, '"train.lr" = { values = [0.05, 0.5] }', trials=2, algorithm="grid"))
    result = tune.search(config)
    best = load_config(result.best_config_path)
    assert best.train.lr == result.rows[0].values["train.lr"] and best.train.epochs == 1
    final = tune.final_config(result.best_config_path)
    assert final.data.validation_fraction == 0.0
    run = train.run(final)
    assert run.status == "completed"
    batch = final.data.batch_size
    # The optimizer's steps say how many images the model saw: all 120 for --final, the sweep's 108 before.
    trial_steps = trial_records(tune.sweep_dir(config))["0"]["history"]["steps"]
    assert trial_steps == [-(-108 // batch)] and run.history["steps"] == [-(-120 // batch)] * final.train.epochs
    # No validation split: nothing is recorded, or shown in TensorBoard, as validation.
    assert not any(key.startswith("val_") for key in run.history)
    assert not (run.run_dir / "validation").exists()


@pytest.mark.slow
def test_overwrite_leaves_no_stale_runs(write_config: Callable[..., Path]) -> None:
    config = load_config(
        sweep_file(write_config, '"train.lr" = { values = [0.1, 0.2, 0.3] }', trials=3, algorithm="grid")
    )
    tune.search(config)
    smaller = load_config(sweep_file(write_config, '"train.lr" = { values = [0.1] }', trials=1, algorithm="grid"))
    tune.search(smaller, overwrite=True)
    assert sorted(trial_records(tune.sweep_dir(config))) == ["0"]


@pytest.mark.slow
def test_scratch_model_sweeps_like_the_keras_one(write_config: Callable[..., Path]) -> None:
    config = load_config(
        sweep_file(
            write_config,
            '"train.lr" = { values = [0.2, 0.5] }',
            trials=2,
            algorithm="grid",
            extra='[model]\nkind = "scratch"\n',
        )
    )
    result = tune.search(config)
    assert [r.status for r in result.rows] == ["completed", "completed"]
    records = trial_records(tune.sweep_dir(config))
    assert all(r["history"]["val_accuracy"] for r in records.values())
    assert load_config(result.best_config_path).model.kind == "scratch"


@pytest.mark.slow
def test_progress_is_one_line_per_trial_with_the_best_so_far(
    write_config: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    import re

    config = load_config(
        sweep_file(
            write_config,
            '"train.lr" = { values = [0.01, 1e36] }',
            trials=2,
            algorithm="grid",
            extra="[data]\nscale = false\n",
            pack=1,  # in trial order; packed, the diverged trial ends (and prints) first
        )
    )
    tune.search(config)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("trial ")]
    assert len(lines) == 2 and "Running Trial" not in out and "Epoch 1/1" not in out, out
    assert re.fullmatch(
        r"trial 1/2 \(id 0\) train\.lr=0\.01: val_accuracy (\d\.\d{4}) \| best \1 \(trial 0\) \| "
        r"\d+ s elapsed, ~\d+ s left",
        lines[0],
    ), lines[0]
    assert re.fullmatch(
        r"trial 2/2 \(id 1\) train\.lr=1e\+36: diverged: training loss became \S+ at "
        r"epoch 1, batch \d+ \| best \d\.\d{4} \(trial 0\) \| \d+ s elapsed, ~0 s left",
        lines[1],
    ), lines[1]
