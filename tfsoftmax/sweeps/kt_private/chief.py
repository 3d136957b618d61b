"""keras-tuner 1.4.8's chief side of a distributed search (`distribute.oracle_chief.OracleServicer`, the
oracle's bookkeeping of running trials: `ongoing_trials`, `tuner_ids`, `_retry_queue`), extended with the
sweep's token, trial leases and fair shares."""

from __future__ import annotations

import hmac
import os
import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from keras_tuner.src import protos
from keras_tuner.src.distribute import oracle_chief
from keras_tuner.src.engine import trial as trial_module

from tfsoftmax.distributed.lease import Leases
from tfsoftmax.errors import RUNTIME_ERROR, TfsoftmaxError
from tfsoftmax.sweeps.kt_private.client import TOKEN_KEY, TUNER_KEY
from tfsoftmax.sweeps.kt_private.engine import (
    IDLE,
    RUNNING,
    STOPPED,
    initial_left,
    owner,
    slot,
    unscored_initial_points,
)

CHIEF_POLL_S = 1.0  # how often the chief checks leases and whether the search is done


class LeasingServicer(oracle_chief.OracleServicer):
    """keras-tuner's chief service with trial leases and fair shares: every call from a worker renews its
    lease; a trial whose worker has not reported for the lease, or whose worker asks for it again (it was
    restarted), goes back to the queue, or ends as failed once handed on too often; a report or end from a
    worker that no longer holds the trial is refused; no worker gets more than its share of the `total`
    trials' unfinished ones (`Leases.share`), and a Bayesian search proposes no more at random than its
    initial points; a worker asking while others still hold trials waits, since a held trial may yet come
    back."""

    def __init__(self, oracle: Any, leases: Leases, total: int) -> None:
        super().__init__(oracle)
        self.leases, self.total, self.lock = leases, total, threading.Lock()

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

    def remaining(self) -> int:
        """The trials of the search not yet finished, running ones included; while a Bayesian oracle's
        initial points are unscored, only those (its first round, shared too)."""
        left = self.total - sum(t.status != RUNNING for t in self.oracle.trials.values())
        unscored = unscored_initial_points(self.oracle)
        return left if unscored is None else min(left, unscored)

    def refused(self, k: int) -> bool:
        """Slot `k` is past the worker's share, or would be one more random proposal of a Bayesian oracle
        whose initial points are all running (a trial to hand on is never held back)."""
        held_back = initial_left(self.oracle) == 0 and not self.oracle._retry_queue
        return k >= self.leases.share(self.remaining()) or held_back

    def CreateTrial(self, request: Any, context: Any) -> Any:
        with self.lock:
            tuner_id = request.tuner_id
            worker, k = owner(tuner_id), slot(tuner_id)
            self.leases.report(worker)
            self._enter(context)
            # A worker asks for slot k holding slots 0 to k-1 of this round: whatever it holds in a later
            # slot is from before it was restarted.
            for held in [t for t in self.oracle.ongoing_trials if owner(t) == worker and slot(t) >= k]:
                self._hand_on(held, f"{worker} started again")
            if self.refused(k):  # its pack trains what it has, and it asks again
                trial = trial_module.Trial(self.oracle.get_space(), "", IDLE)
                return protos.get_service().CreateTrialResponse(trial=trial.to_proto())
            trial = self.oracle.create_trial(tuner_id)
            if trial.status == STOPPED and self.oracle.ongoing_trials:
                self.oracle.tuner_ids.add(tuner_id)
                trial = trial_module.Trial(self.oracle.get_space(), "", IDLE)
            elif trial.status == STOPPED:
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


class TokenCheck(grpc.ServerInterceptor):
    """Refuse every call without the sweep's token before the service sees it: the oracle stays as it was."""

    def __init__(self, token: str) -> None:
        self.token = token.encode()

        def refuse(request: Any, context: Any) -> None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "this call does not carry the sweep's token")

        self.refused = grpc.unary_unary_rpc_method_handler(refuse)

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        sent = dict(details.invocation_metadata).get(TOKEN_KEY, "")
        return continuation(details) if hmac.compare_digest(sent.encode(), self.token) else self.refused


def start(oracle: Any, leases: Leases, total: int, token: str) -> tuple[grpc.Server, LeasingServicer]:
    """keras-tuner's service with leases, shares and the token check, listening on the address given
    (`KERASTUNER_ORACLE_IP`, never all interfaces unless asked)."""
    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1), interceptors=[TokenCheck(token)])
    servicer = LeasingServicer(oracle, leases, total)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    try:
        server.add_insecure_port(address)
    except RuntimeError as e:
        raise TfsoftmaxError(f"sweep chief: cannot listen on {address}: {e}", RUNTIME_ERROR) from None
    server.start()
    return server, servicer


def serve(oracle: Any, leases: Leases, total: int, token: str, stopped: Callable[[], bool]) -> None:
    """The chief: serve the search of `total` trials until it is done; KeyboardInterrupt once `stopped()`."""
    server, servicer = start(oracle, leases, total, token)
    try:
        while not servicer.done():
            if stopped():
                raise KeyboardInterrupt
            time.sleep(CHIEF_POLL_S)
    finally:
        server.stop(grace=None)
