"""keras-tuner's private API, used here and nowhere else: read from keras-tuner 1.4.8 (constraints.txt;
setup.cfg allows 1.4.7 up to 1.5). An upgrade that moves or renames one of these breaks this module
alone; tests/test_tune.py's resumed-grid, interrupted-sweep and workers tests use each of them.

- `keras_tuner.src.distribute.utils`: the process's role in a distributed search, decided exactly as
  keras-tuner's own search loop decides it (from the variables `distribute` sets).
- The grid oracle's walking order (`_populate_next`, `_ordered_ids`, `_compare`), which it does not save.
- The best-epoch checkpoint callback (`SaveBestEpoch`, its `objective` and `best_value`).
"""

from __future__ import annotations

import functools
from typing import Any

import keras_tuner
from keras_tuner.src.distribute import utils as dist_utils


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
