"""keras-tuner's private API, used here and nowhere else: read from keras-tuner 1.4.8 (constraints.txt;
setup.cfg allows 1.4.7 up to 1.5). An upgrade that moves or renames one of these breaks this adapter alone;
tests/distributed/test_kt_private.py, tests/sweeps/test_sweep_resume.py's resumed-grid, interrupted-sweep
and workers tests and tests/distributed/test_distributed.py use each of them.

- `engine`: the process's role in a distributed search, decided exactly as keras-tuner's own search loop
  decides it (`distribute.utils`); the grid oracle's walking order (`_populate_next`, `_ordered_ids`,
  `_compare`), which it does not save and which, left alone, it would extend only as trials end; the
  Hyperband oracle's brackets and rounds (`_brackets`, `_get_size`, `_current_bracket`,
  `_get_num_brackets`), so a pack asks for one round; one step of the tuner's own search loop
  (`_try_run_and_update_trial`), for a trial outside any pack; the best-epoch checkpoint callback
  (`SaveBestEpoch`, its `objective`, `best_value` and `_save_model`) and where it writes (`_get_checkpoint_fname`),
  which Hyperband's next round loads a promoted trial from, and the build config it reads first
  (`_get_build_config_fname`, `backend.config`); a trial's HParams as keras-tuner's TensorBoard callback
  logs them (`tuner_utils`), and its status values; `utils.save_json`, through which every state file is
  written, replaced by an atomic write.
- `client`: the distributed mode's gRPC client (`distribute.oracle_client.OracleClient`, `protos`), with
  the sweep's token, a deadline on every call and a heartbeat.
- `chief`: its gRPC service (`distribute.oracle_chief.OracleServicer`) and the oracle's bookkeeping of
  running trials (`ongoing_trials`, `tuner_ids`, `_retry_queue`), extended with the token check, trial
  leases and fair shares.
"""

from tfsoftmax.sweeps.kt_private.chief import CHIEF_POLL_S, LeasingServicer, TokenCheck, serve, start
from tfsoftmax.sweeps.kt_private.client import (
    IDLE_WAIT_S,
    TOKEN_KEY,
    TUNER_KEY,
    ChiefUnreachable,
    Heartbeat,
    LeasedClient,
    LeaseLost,
    announce,
    use_leased_client,
)
from tfsoftmax.sweeps.kt_private.engine import (
    IDLE,
    RUNNING,
    SLOT,
    STOPPED,
    GridOracle,
    best_epoch_saver,
    has_chief_oracle,
    improves,
    initial_left,
    is_chief_oracle,
    keep_best_epoch,
    load_parent,
    owner,
    restore_grid_order,
    round_size,
    run_alone,
    save_best,
    save_build_config,
    set_outcome,
    slot,
    slot_id,
    trial_hparams,
    unscored_initial_points,
)

__all__ = [
    "CHIEF_POLL_S",
    "IDLE",
    "IDLE_WAIT_S",
    "RUNNING",
    "SLOT",
    "STOPPED",
    "TOKEN_KEY",
    "TUNER_KEY",
    "ChiefUnreachable",
    "GridOracle",
    "Heartbeat",
    "LeaseLost",
    "LeasedClient",
    "LeasingServicer",
    "TokenCheck",
    "announce",
    "best_epoch_saver",
    "has_chief_oracle",
    "improves",
    "initial_left",
    "is_chief_oracle",
    "keep_best_epoch",
    "load_parent",
    "owner",
    "restore_grid_order",
    "round_size",
    "run_alone",
    "save_best",
    "save_build_config",
    "serve",
    "set_outcome",
    "slot",
    "slot_id",
    "start",
    "trial_hparams",
    "unscored_initial_points",
    "use_leased_client",
]
