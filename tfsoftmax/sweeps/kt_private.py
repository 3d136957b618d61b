"""keras-tuner's private API, used here and nowhere else: read from keras-tuner 1.4.8 (constraints.txt;
setup.cfg allows 1.4.7 up to 1.5). An upgrade that moves or renames one of these breaks this module
alone; tests/test_tune.py's resumed-grid, interrupted-sweep and workers tests and tests/test_distributed.py
use each of them.

- `keras_tuner.src.distribute.utils`: the process's role in a distributed search, decided exactly as
  keras-tuner's own search loop decides it (from the variables `distribute` sets).
- The grid oracle's walking order (`_populate_next`, `_ordered_ids`, `_compare`), which it does not save
  and which, left alone, it would extend only as trials end (`GridOracle`).
- One step of the tuner's own search loop (`_try_run_and_update_trial`), for a trial outside any pack.
- The best-epoch checkpoint callback (`SaveBestEpoch`, its `objective` and `best_value`).
- A trial's HParams as keras-tuner's TensorBoard callback logs them (`tuner_utils`), and its status values,
  for the trials `packing` trains outside keras-tuner's `run_trial`.
- `utils.save_json`, through which every state file is written, replaced by an atomic write.
- The distributed mode's gRPC service and client (`distribute.oracle_chief.OracleServicer`,
  `distribute.oracle_client.OracleClient`, `protos`) and the oracle's bookkeeping of running trials
  (`ongoing_trials`, `tuner_ids`, `_retry_queue`), extended with trial leases and a deadline on every call.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import keras_tuner
from keras_tuner.src import protos
from keras_tuner.src import utils as kt_utils
from keras_tuner.src.distribute import oracle_chief, oracle_client
from keras_tuner.src.distribute import utils as dist_utils
from keras_tuner.src.engine import trial as trial_module
from keras_tuner.src.engine import tuner_utils

from tfsoftmax.distributed.lease import Leases
from tfsoftmax.errors import RUNTIME_ERROR, TfsoftmaxError
from tfsoftmax.files import write_text

TUNER_KEY = "tfsoftmax-tuner-id"  # gRPC metadata: which worker sent a call, so the chief can check its lease
IDLE_WAIT_S = 1.0  # a worker told to wait asks again after this long
CHIEF_POLL_S = 1.0  # how often the chief checks leases and whether the search is done
STOPPED, IDLE = trial_module.TrialStatus.STOPPED, trial_module.TrialStatus.IDLE
SLOT = "+"  # slot k > 0 of a process's trial pack asks the oracle as "<tuner id>+<k>"


def slot_id(tuner_id: str, k: int) -> str:
    """The id a pack's k-th trial is asked for under: the oracle keeps one running trial per id, and in one
    process gives an interrupted one back to the same id, so a resumed pack gets its trials back (a
    distributed chief hands a restarted worker's trials on instead, through its retry queue)."""
    return tuner_id if k == 0 else f"{tuner_id}{SLOT}{k}"


def owner(tuner_id: str) -> str:
    """The process (the worker) behind a pack slot's id."""
    return tuner_id.split(SLOT)[0]


def trial_hparams(trial: Any) -> dict:
    """The trial's values keyed as keras-tuner's own TensorBoard callback writes them for HParams."""
    from tensorboard.plugins.hparams import api as hparams_api

    return tuner_utils.convert_hyperparams_to_hparams(trial.hyperparameters, hparams_api)


def round_size(oracle: Any, pack: int) -> int:
    """How many trials to ask for at once. A Bayesian oracle proposes at random until its initial points
    have completed (`populate_space`), so its first round stops at them, and each later round is proposed
    from a model that counts the running trials as scored (keras-tuner's own `_vectorize_trials`)."""
    if not isinstance(oracle, keras_tuner.oracles.BayesianOptimizationOracle):
        return pack
    initial = oracle.num_initial_points or max(3 * len(oracle.hyperparameters.space), 3)
    completed = sum(t.status == trial_module.TrialStatus.COMPLETED for t in oracle.trials.values())
    return pack if completed >= initial else max(1, min(pack, initial - completed))


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


class LeaseLost(Exception):
    """The chief handed this worker's trial to another worker: keras-tuner records the trial as invalid
    here, the chief refuses its end, and the worker asks for another trial."""


class ChiefUnreachable(TfsoftmaxError, keras_tuner.errors.FatalError):
    """The chief did not answer in time: end this worker with one line instead of waiting an hour."""


class _Stub:
    """keras-tuner's gRPC stub with `timeout_s` on every call (its own is an hour) and this worker's id."""

    def __init__(self, stub: Any, timeout_s: float, tuner_id: str, address: str) -> None:
        self.stub, self.timeout_s, self.tuner_id, self.address = stub, timeout_s, tuner_id, address

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.stub, name)

        def with_deadline(request: Any, **kwargs: Any) -> Any:
            deadline = time.monotonic() + self.timeout_s
            while True:
                # Waiting for a chief that is not up yet, or restarting, for as long as the deadline allows;
                # a call cut by a lost connection fails at once even so, and is sent again.
                left = max(deadline - time.monotonic(), 0.0)
                kwargs.update(wait_for_ready=True, timeout=left, metadata=((TUNER_KEY, self.tuner_id),))
                try:
                    return call(request, **kwargs)
                except grpc.RpcError as e:
                    if e.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline:
                        time.sleep(IDLE_WAIT_S)
                        continue
                    raise self._failure(name, e) from None

        return with_deadline

    def _failure(self, name: str, e: grpc.RpcError) -> Exception:
        if e.code() == grpc.StatusCode.FAILED_PRECONDITION:
            return LeaseLost(e.details())
        if e.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
            return ChiefUnreachable(
                f"sweep worker: the chief at {self.address} did not answer within {self.timeout_s:g} s "
                "(sweep.chief_timeout_s); start its `tfsoftmax sweep --role chief` again (it resumes), "
                "check that the port is reachable from here, then start this worker again",
                RUNTIME_ERROR,
            )
        return ChiefUnreachable(
            f"sweep worker: the chief at {self.address} failed on {name}: {e.details()}", RUNTIME_ERROR
        )


class LeasedClient(oracle_client.OracleClient):
    """keras-tuner's worker-side oracle with a deadline on every call, a report after every epoch, and a
    pause before asking again when told to wait for trials other workers hold."""

    def __init__(self, oracle: Any, timeout_s: float) -> None:
        super().__init__(oracle)
        address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
        self.stub = _Stub(self.stub, timeout_s, self.tuner_id, address)

    def create_trial(self, tuner_id: str) -> Any:
        trial = super().create_trial(tuner_id)
        if trial.status == trial_module.TrialStatus.IDLE:
            time.sleep(IDLE_WAIT_S)
        return trial

    def report(self, trial_id: str, step: int) -> None:
        """Renew this worker's lease on `trial_id`; raises LeaseLost where the chief gave it away."""
        self.stub.UpdateTrial(protos.get_service().UpdateTrialRequest(trial_id=trial_id, metrics={}, step=step))


def use_leased_client(tuner: Any, timeout_s: float) -> None:
    """Swap the worker tuner's keras-tuner client for the leased one."""
    tuner.oracle = LeasedClient(tuner.oracle._oracle, timeout_s)


class LeasingServicer(oracle_chief.OracleServicer):
    """keras-tuner's chief service with trial leases: every call from a worker renews its lease; a trial
    whose worker has not reported for the lease, or whose worker asks for a trial again (it was restarted),
    goes back to the queue, or ends as failed once handed on too often; a report or end from a worker that
    no longer holds the trial is refused; a worker asking while others still hold trials waits, since a
    held trial may yet come back."""

    def __init__(self, oracle: Any, leases: Leases) -> None:
        super().__init__(oracle)
        self.leases, self.lock = leases, threading.Lock()

    def _holder(self, trial_id: str) -> str | None:
        return next((t for t, trial in self.oracle.ongoing_trials.items() if trial.trial_id == trial_id), None)

    def _hand_on(self, tuner_id: str, reason: str) -> None:
        trial = self.oracle.ongoing_trials.pop(tuner_id, None)
        if trial is None:
            return
        if self.leases.hand_on(trial.trial_id):
            self.oracle._retry_queue.append(trial.trial_id)
            self.oracle.save()
            print(f"chief: trial {trial.trial_id} taken back: {reason}; the next worker continues it", flush=True)
            return
        trial.status = trial_module.TrialStatus.FAILED
        trial.message = f"handed on more than sweep.max_retries = {self.leases.max_retries} times; last: {reason}"
        self.oracle.end_trial(trial)
        print(f"chief: trial {trial.trial_id} failed: {trial.message}", flush=True)

    def expire(self) -> None:
        """Give up on the workers whose lease ran out (every slot of their packs); called with the lock held."""
        ids = set(self.oracle.tuner_ids) | set(self.oracle.ongoing_trials)
        for worker in self.leases.expired({owner(t) for t in ids}):
            for tuner_id in [t for t in ids if owner(t) == worker]:
                self._hand_on(tuner_id, f"no report from {worker} for {self.leases.lease_s:g} s (sweep.lease_s)")
                self.oracle.tuner_ids.discard(tuner_id)
            self.leases.forget(worker)

    def _enter(self, context: Any, trial_id: str | None = None) -> str:
        caller = dict(context.invocation_metadata()).get(TUNER_KEY, "")
        self.leases.report(caller)
        self.expire()
        holder = self._holder(trial_id) if trial_id is not None else None
        if trial_id is not None and caller and (holder is None or owner(holder) != caller):
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"trial {trial_id} is no longer {caller}'s: the chief handed it on after no report "
                f"for {self.leases.lease_s:g} s (sweep.lease_s)",
            )
        return caller

    def CreateTrial(self, request: Any, context: Any) -> Any:
        with self.lock:
            tuner_id = request.tuner_id
            self.leases.report(owner(tuner_id))
            self._enter(context)
            # Our workers ask only between trials: one that asks while holding a trial was restarted.
            self._hand_on(tuner_id, f"{tuner_id} started again")
            trial = self.oracle.create_trial(tuner_id)
            if trial.status == trial_module.TrialStatus.STOPPED and self.oracle.ongoing_trials:
                self.oracle.tuner_ids.add(tuner_id)
                trial = trial_module.Trial(self.oracle.get_space(), "", trial_module.TrialStatus.IDLE)
            elif trial.status == trial_module.TrialStatus.STOPPED:
                self.stop_triggered = True
            return protos.get_service().CreateTrialResponse(trial=trial.to_proto())

    def UpdateTrial(self, request: Any, context: Any) -> Any:
        with self.lock:
            self._enter(context, request.trial_id)
            if not request.metrics:  # a report between epochs: the lease is renewed, nothing to record
                trial = self.oracle.get_trial(request.trial_id)
                return protos.get_service().UpdateTrialResponse(trial=trial.to_proto())
            return super().UpdateTrial(request, context)

    def EndTrial(self, request: Any, context: Any) -> Any:
        with self.lock:
            self._enter(context, request.trial.trial_id)
            response = super().EndTrial(request, context)
            # keras-tuner saves before it drops the trial from the running ones: a chief killed now would
            # come back and run the finished trial again.
            self.oracle.save()
            return response

    def GetTrial(self, request: Any, context: Any) -> Any:
        with self.lock:
            self._enter(context)
            return super().GetTrial(request, context)

    def GetSpace(self, request: Any, context: Any) -> Any:
        with self.lock:
            self._enter(context)
            return super().GetSpace(request, context)

    def UpdateSpace(self, request: Any, context: Any) -> Any:
        with self.lock:
            self._enter(context)
            return super().UpdateSpace(request, context)

    def done(self) -> bool:
        """Every worker was told to stop and no trial is held: what keras-tuner's chief waits for. A worker
        stops once its own id is told to; the ids of its other pack slots are never asked again."""
        with self.lock:
            self.expire()
            searching = [t for t in self.oracle.tuner_ids if owner(t) == t]
            return self.stop_triggered and not self.oracle.ongoing_trials and not searching


def serve(oracle: Any, leases: Leases, stopped: Callable[[], bool]) -> None:
    """The chief: keras-tuner's service with leases, on the address given (`KERASTUNER_ORACLE_IP`, never
    all interfaces unless asked), until the search is done; KeyboardInterrupt once `stopped()`."""
    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = LeasingServicer(oracle, leases)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    try:
        server.add_insecure_port(address)
    except RuntimeError as e:
        raise TfsoftmaxError(f"sweep chief: cannot listen on {address}: {e}", RUNTIME_ERROR) from None
    server.start()
    try:
        while not servicer.done():
            if stopped():
                raise KeyboardInterrupt
            time.sleep(CHIEF_POLL_S)
    finally:
        server.stop(grace=None)
