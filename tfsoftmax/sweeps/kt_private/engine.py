"""keras-tuner 1.4.8's engine, where a sweep needs more than its public API: roles, pack slots, the grid's
walking order, one step of its search loop, the best-epoch checkpoint, HParams, trial statuses, and its
state files written atomically."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import keras_tuner
from keras_tuner.src import backend as kt_backend
from keras_tuner.src import utils as kt_utils
from keras_tuner.src.distribute import utils as dist_utils
from keras_tuner.src.engine import trial as trial_module
from keras_tuner.src.engine import tuner_utils

from tfsoftmax.files import write_text

STOPPED, IDLE, RUNNING = (
    trial_module.TrialStatus.STOPPED,
    trial_module.TrialStatus.IDLE,
    trial_module.TrialStatus.RUNNING,
)
SLOT = "+"  # slot k > 0 of a process's trial pack asks the oracle as "<tuner id>+<k>"


def slot_id(tuner_id: str, k: int) -> str:
    """The id a pack's k-th trial is asked for under: the oracle keeps one running trial per id, and in one
    process gives an interrupted one back to the same id, so a resumed pack gets its trials back (a
    distributed chief hands a restarted worker's trials on instead, through its retry queue)."""
    return tuner_id if k == 0 else f"{tuner_id}{SLOT}{k}"


def owner(tuner_id: str) -> str:
    """The process (the worker) behind a pack slot's id."""
    return tuner_id.split(SLOT)[0]


def slot(tuner_id: str) -> int:
    """The pack slot `k` of a `slot_id`; 0 for a process's own id."""
    _, sep, k = tuner_id.partition(SLOT)
    return int(k) if sep and k.isdigit() else 0


def trial_hparams(trial: Any) -> dict:
    """The trial's values keyed as keras-tuner's own TensorBoard callback writes them for HParams."""
    from tensorboard.plugins.hparams import api as hparams_api

    return tuner_utils.convert_hyperparams_to_hparams(trial.hyperparameters, hparams_api)


def unscored_initial_points(oracle: Any) -> int | None:
    """The initial points a Bayesian oracle has yet to score, running or not yet proposed: it proposes at
    random until they have completed (`populate_space`), and each later trial is proposed from a model that
    counts the running trials as scored (keras-tuner's own `_vectorize_trials`). None for other oracles,
    and once the model is in use."""
    if not isinstance(oracle, keras_tuner.oracles.BayesianOptimizationOracle):
        return None
    initial = oracle.num_initial_points or max(3 * len(oracle.hyperparameters.space), 3)
    completed = sum(t.status == trial_module.TrialStatus.COMPLETED for t in oracle.trials.values())
    return None if completed >= initial else initial - completed


def initial_left(oracle: Any) -> int | None:
    """How many more trials a Bayesian oracle may propose at random before its initial points are scored;
    None where any number may be."""
    unscored = unscored_initial_points(oracle)
    if unscored is None:
        return None
    return max(0, unscored - sum(t.status == RUNNING for t in oracle.trials.values()))


def hyperband_round_left(oracle: Any) -> int | None:
    """How many trials a Hyperband oracle can give now without opening another round: those its first open
    round still lacks (a round after the first takes only the promotions its last round's completed trials
    allow), else the first round of the bracket it opens next. Asking no more keeps the order in which
    keras-tuner's own one-at-a-time loop makes its trials, and so its random draws. None for other oracles."""
    if not isinstance(oracle, keras_tuner.oracles.HyperbandOracle):
        return None
    for bracket in oracle._brackets:  # in `populate_space`'s order
        number, rounds = bracket["bracket_num"], bracket["rounds"]
        size = oracle._get_size(number, 0)
        if len(rounds[0]) < size:
            return size - len(rounds[0])
        for r in range(1, len(rounds)):
            size, past_size = oracle._get_size(number, r), oracle._get_size(number, r - 1)
            chosen = {info["past_id"] for info in rounds[r]}
            completed = sum(
                oracle.trials[info["id"]].status == trial_module.TrialStatus.COMPLETED
                for info in rounds[r - 1]
                if info["id"] not in chosen
            )
            promotions = min(size - len(rounds[r]), completed - (past_size - size))
            if promotions > 0:
                return promotions
    following = oracle._current_bracket - 1 if oracle._current_bracket > 0 else oracle._get_num_brackets() - 1
    return oracle._get_size(following, 0)


def round_size(oracle: Any, pack: int) -> int:
    """How many trials to ask for at once: a pack, a Bayesian oracle's initial points left, or a Hyperband
    round's trials left (a distributed chief limits its workers' rounds itself: `chief.LeasingServicer`)."""
    left = initial_left(oracle)
    if left is None:
        left = hyperband_round_left(oracle)
    return pack if left is None else max(1, min(pack, left))


def run_alone(tuner: Any, trial: Any, **fit_kwargs: Any) -> None:
    """A trial that cannot join a pack, run and recorded by keras-tuner's own loop step."""
    tuner._try_run_and_update_trial(trial, **fit_kwargs)


def set_outcome(trial: Any, failure: str | None) -> None:
    """Mark a trial completed, or failed with `failure` as its message (which keras-tuner does not retry)."""
    trial.status = trial_module.TrialStatus.FAILED if failure else trial_module.TrialStatus.COMPLETED
    trial.message = failure


def _save_json_atomically(path: str, obj: Any) -> str:
    """keras-tuner's `utils.save_json`, written beside and renamed: its own writes in place, so a process
    killed mid-write (trials report every epoch) left a truncated oracle or trial file a restart could not
    read."""
    text = json.dumps(obj)
    write_text(Path(path), text)
    return text


kt_utils.save_json = _save_json_atomically  # every oracle, trial and tuner state file goes through it


def has_chief_oracle() -> bool:
    """This process is one side (chief or worker) of a distributed search."""
    return dist_utils.has_chief_oracle()


def is_chief_oracle() -> bool:
    """This process is the distributed search's chief, which holds the oracle and trains nothing."""
    return dist_utils.is_chief_oracle()


def restore_grid_order(oracle: Any) -> None:
    """keras-tuner's grid oracle does not save the order in which it walks the grid, so a resumed grid
    search fails; rebuild that order from the trials on disk, sorted by the oracle's own comparison. A
    worker's oracle is a client of the chief's, which restores its own."""
    if not isinstance(oracle, keras_tuner.oracles.GridSearchOracle) or not oracle.trials or oracle._populate_next:
        return
    order = sorted(
        oracle.trials,
        key=functools.cmp_to_key(
            lambda a, b: oracle._compare(
                oracle.trials[a].hyperparameters.values, oracle.trials[b].hyperparameters.values
            )
        ),
    )
    for trial_id in order:
        oracle._ordered_ids.insert(trial_id)
    oracle._populate_next.extend(order)


class GridOracle(keras_tuner.oracles.GridSearchOracle):
    """keras-tuner's grid oracle proposes the combination after a trial's only once that trial has ended
    (`end_trial` queues it): this one queues each trial as it is proposed, so a pack can take a whole
    round of the grid at once. The order of the walk is keras-tuner's."""

    def populate_space(self, trial_id: str) -> dict:
        response = super().populate_space(trial_id)
        if response["status"] == trial_module.TrialStatus.RUNNING:
            self._populate_next.append(trial_id)  # the oracle has recorded it by the next proposal
        return response


def keep_best_epoch(callbacks: list, earlier: dict[str, list[float]]) -> None:
    """keras-tuner's best-epoch checkpoint starts each fit from scratch: tell it the best score of the
    epochs before a resume, so a worse later epoch does not overwrite the best checkpoint."""
    for callback in callbacks:
        if type(callback).__name__ != "SaveBestEpoch":
            continue
        values = earlier.get(callback.objective.name, [])
        if values:
            best = max(values) if callback.objective.direction == "max" else min(values)
            if callback.objective.better_than(best, callback.best_value):
                callback.best_value = best


def best_epoch_saver(tuner: Any, trial: Any, earlier: dict[str, list[float]]) -> Any:
    """keras-tuner's own best-epoch checkpoint (`SaveBestEpoch`) for a trial trained outside `model.fit`: the
    weights and optimizer state Hyperband's next round continues a promoted trial from. A resumed trial's
    earlier best counts only where its checkpoint was written."""
    saver = tuner_utils.SaveBestEpoch(objective=tuner.oracle.objective, filepath=_checkpoint(tuner, trial.trial_id))
    if Path(saver.filepath).is_file():
        keep_best_epoch([saver], earlier)
    return saver


def improves(saver: Any, logs: dict[str, float]) -> bool:
    """Whether an epoch's logs improve a `best_epoch_saver`'s objective, which then counts them as its best:
    `SaveBestEpoch`'s own rule (an epoch without the objective counts as better)."""
    objective = saver.objective
    if not objective.has_value(logs):
        return True
    value = objective.get_value(logs)
    if not objective.better_than(value, saver.best_value):
        return False
    saver.best_value = value
    return True


def save_best(saver: Any, model: Any) -> None:
    """Write `model` (the best epoch's weights and optimizer state) where `SaveBestEpoch` writes it."""
    saver.set_model(model)
    saver._save_model()


def load_parent(tuner: Any, trial: Any, model: Any) -> bool:
    """Load a promoted Hyperband trial's parent checkpoint into `model` (weights and optimizer state), as
    keras-tuner's Hyperband does (`_build_hypermodel`); False for a trial that starts fresh."""
    parent = trial.hyperparameters.values.get("tuner/trial_id")
    if parent is None:
        return False
    model.load_weights(_checkpoint(tuner, parent))
    return True


def save_build_config(tuner: Any, trial: Any, model: Any) -> None:
    """The build config keras-tuner writes after a trial's fit (`Tuner.run_trial`) and its Hyperband reads
    before loading the trial as a parent (`_build_hypermodel`), for a trial trained outside `model.fit`."""
    if kt_backend.config.multi_backend():
        kt_utils.save_json(tuner._get_build_config_fname(trial.trial_id), model.get_build_config())


def _checkpoint(tuner: Any, trial_id: str) -> str:
    return tuner._get_checkpoint_fname(trial_id)
