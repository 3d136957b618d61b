"""Trial leases, the chief's answer to a worker that died: who reported last when, and how often each
trial was handed on. keras-tuner's oracle has no notion of a dead process (a dead worker's trial stays
RUNNING forever and the chief waits for it), so the chief's gRPC service (`kt_private.LeasingServicer`)
asks this bookkeeping which workers to give up on and which trials to record as failed.

A worker reports after every epoch and at every call to the chief; one that has not reported for
`sweep.lease_s` is presumed dead, and its trial goes to the next worker that asks. A trial handed on more
than `sweep.max_retries` times is recorded as failed with its reason.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tfsoftmax.config import SweepConfig


@dataclass
class Leases:
    """The last report of each worker and the hand-on count of each trial, in the chief's memory (a
    restarted chief starts both afresh: keras-tuner re-queues the trials that were running)."""

    lease_s: float
    max_retries: int
    clock: Callable[[], float] = time.monotonic
    seen: dict[str, float] = field(default_factory=dict)
    handed_on: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, sweep: SweepConfig) -> Leases:
        return cls(lease_s=sweep.lease_s, max_retries=sweep.max_retries)

    def report(self, tuner_id: str) -> None:
        """`tuner_id` is alive now."""
        if tuner_id:
            self.seen[tuner_id] = self.clock()

    def expired(self, tuner_ids: Iterable[str]) -> list[str]:
        """The workers among `tuner_ids` with no report for longer than the lease; a worker never seen
        (one the oracle knew before this chief started) gets its lease from now."""
        now = self.clock()
        for tuner_id in tuner_ids:
            self.seen.setdefault(tuner_id, now)
        return sorted(t for t in tuner_ids if now - self.seen[t] > self.lease_s)

    def forget(self, tuner_id: str) -> None:
        self.seen.pop(tuner_id, None)

    def hand_on(self, trial_id: str) -> bool:
        """Count one more hand-on of `trial_id`; True while it may run again, False once it has been
        handed on more than `max_retries` times and is to be recorded as failed."""
        self.handed_on[trial_id] += 1
        return self.handed_on[trial_id] <= self.max_retries
