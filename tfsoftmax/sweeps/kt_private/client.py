"""keras-tuner 1.4.8's worker side of a distributed search (`distribute.oracle_client.OracleClient`, its gRPC
stub and `protos`), extended with the sweep's token and this worker's id on every call, a deadline on every
call (keras-tuner's is an hour), a heartbeat that keeps the worker's lease while it computes, and
a lost lease or a refusal as errors of their own."""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import keras_tuner
from keras_tuner.src import protos
from keras_tuner.src.distribute import oracle_client

from tfsoftmax.distributed import token
from tfsoftmax.errors import RUNTIME_ERROR, TfsoftmaxError
from tfsoftmax.sweeps.kt_private.engine import IDLE, slot

TUNER_KEY = "tfsoftmax-tuner-id"  # gRPC metadata: which worker sent a call, so the chief can check its lease
TOKEN_KEY = "tfsoftmax-token"  # gRPC metadata: the sweep's token, without which the chief answers nothing
IDLE_WAIT_S = 1.0  # a worker told to wait asks again after this long
BEATS_PER_LEASE = 4  # a worker's heartbeats per lease: three may go missing before the chief gives up on it


class LeaseLost(Exception):
    """The chief handed this worker's trial to another worker: keras-tuner records the trial as invalid
    here, the chief refuses its end, and the worker asks for another trial."""


class ChiefUnreachable(TfsoftmaxError, keras_tuner.errors.FatalError):
    """The chief did not answer in time, or refused this worker: end it with one line instead of waiting
    an hour."""


class _Stub:
    """keras-tuner's gRPC stub with `timeout_s` on every call (its own is an hour), this worker's id and the
    sweep's token, read from `folder` (again once when refused: the chief may have been restarted)."""

    def __init__(self, stub: Any, timeout_s: float, tuner_id: str, address: str, folder: Path) -> None:
        self.stub, self.timeout_s, self.tuner_id, self.address = stub, timeout_s, tuner_id, address
        self.folder, self.token = folder, token.read(folder)

    def __getattr__(self, name: str) -> Any:
        call = getattr(self.stub, name)

        def with_deadline(request: Any, **kwargs: Any) -> Any:
            deadline, reread = time.monotonic() + self.timeout_s, False
            while True:
                # Waiting for a chief that is not up yet, or restarting, for as long as the deadline allows;
                # a call cut by a lost connection fails at once even so, and is sent again.
                left = max(deadline - time.monotonic(), 0.0)
                metadata = ((TUNER_KEY, self.tuner_id), (TOKEN_KEY, self.token))
                kwargs.update(wait_for_ready=True, timeout=left, metadata=metadata)
                try:
                    return call(request, **kwargs)
                except grpc.RpcError as e:
                    if e.code() == grpc.StatusCode.UNAVAILABLE and time.monotonic() < deadline:
                        time.sleep(IDLE_WAIT_S)
                        continue
                    if e.code() == grpc.StatusCode.UNAUTHENTICATED and not reread:
                        self.token, reread = token.read(self.folder), True
                        continue
                    raise self._failure(name, e) from None

        return with_deadline

    def _failure(self, name: str, e: grpc.RpcError) -> Exception:
        if e.code() == grpc.StatusCode.FAILED_PRECONDITION:
            return LeaseLost(e.details())
        if e.code() == grpc.StatusCode.UNAUTHENTICATED:
            return ChiefUnreachable(
                f"sweep worker: the chief at {self.address} refused this worker: it holds no token of that "
                f"chief's sweep ({self.folder / token.FILE}); the worker's logging.root must be the chief's, "
                "readable by the same user",
                RUNTIME_ERROR,
            )
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
    """keras-tuner's worker-side oracle with a deadline and the token on every call, and a pause before
    asking again when told to wait for trials other workers hold."""

    def __init__(self, oracle: Any, timeout_s: float, folder: Path) -> None:
        super().__init__(oracle)
        address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
        self.stub = _Stub(self.stub, timeout_s, self.tuner_id, address, folder)

    def create_trial(self, tuner_id: str) -> Any:
        trial = super().create_trial(tuner_id)
        if trial.status == IDLE and slot(tuner_id) == 0:  # a later slot refused: the pack trains what it got
            time.sleep(IDLE_WAIT_S)
        return trial

    def report(self, trial_id: str, step: int) -> None:
        """Renew this worker's lease on `trial_id`; raises LeaseLost where the chief gave it away."""
        self.stub.UpdateTrial(protos.get_service().UpdateTrialRequest(trial_id=trial_id, metrics={}, step=step))


class Heartbeat:
    """A worker's report every quarter lease from a background thread, from the moment it joins until it
    ends: loading data, a first pass that compiles, or a slow epoch keep its lease and its share."""

    def __init__(self, stub: _Stub, every_s: float) -> None:
        self.stub, self.stopped = stub, threading.Event()
        threading.Thread(target=self._beat, args=(every_s,), daemon=True).start()
        atexit.register(self.close)

    def _beat(self, every_s: float) -> None:
        while not self.stopped.wait(every_s):
            with contextlib.suppress(Exception):  # the search loop meets the same failure and reports it
                self.stub.GetSpace(protos.get_service().GetSpaceRequest())

    def close(self) -> None:
        """Stop reporting. Not joined: a beat may be waiting on a dead chief."""
        self.stopped.set()


def announce(timeout_s: float, lease_s: float, folder: Path) -> Heartbeat:
    """Tell the chief this worker has joined, before it spends seconds loading data (the chief shares the
    trials among the workers it knows of when the first one asks), and keep telling it. A worker without
    the sweep's token is refused here, in one line, before it loads anything."""
    address = f"{os.environ['KERASTUNER_ORACLE_IP']}:{os.environ['KERASTUNER_ORACLE_PORT']}"
    plain = protos.get_service_grpc().OracleStub(grpc.insecure_channel(address))
    stub = _Stub(plain, timeout_s, os.environ["KERASTUNER_TUNER_ID"], address, folder)
    stub.GetSpace(protos.get_service().GetSpaceRequest())
    return Heartbeat(stub, lease_s / BEATS_PER_LEASE)


def use_leased_client(tuner: Any, timeout_s: float, folder: Path) -> None:
    """Swap the worker tuner's keras-tuner client for the leased one, with the token of the sweep in `folder`."""
    tuner.oracle = LeasedClient(tuner.oracle._oracle, timeout_s, folder)
