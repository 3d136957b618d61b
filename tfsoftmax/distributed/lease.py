"""Trial leases and fair shares, the chief's answers to a worker that died and to a worker that asks
first: who reported last when, how often each trial was handed on, and how many trials one worker may
hold. keras-tuner's oracle has no notion of a dead process (a dead worker's trial stays RUNNING forever
and the chief waits for it), nor of a fair split (the first worker to ask for a pack takes it all), so the
chief's gRPC service (`kt_private.LeasingServicer`) asks this bookkeeping.

A worker reports at every call to the chief and, from a background thread, every quarter lease; one that
has not reported for `sweep.lease_s` is presumed dead, and its trials go to the next workers that ask. A
trial handed on more than `sweep.max_retries` times is recorded as failed with its reason.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tfsoftmax.config import SweepConfig


@dataclass
class Leases:
    """The last report of each worker and the hand-on count of each trial, in the chief's memory (a
    restarted chief starts both afresh: keras-tuner re-queues the trials that were running). `expected`
    is how many workers a launcher started, so the first to ask does not take the others' shares; workers
    started by hand are learned as they ask."""

    lease_s: float
    max_retries: int
    expected: int
    clock: Callable[[], float] = time.monotonic
    seen: dict[str, float] = field(default_factory=dict)
    handed_on: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, sweep: SweepConfig, expected: int) -> Leases:
        return cls(lease_s=sweep.lease_s, max_retries=sweep.max_retries, expected=expected)

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

    def live(self) -> int:
        """Workers that reported within the lease."""
        now = self.clock()
        return sum(now - last <= self.lease_s for last in self.seen.values())

    def share(self, remaining: int) -> int:
        """The most trials one worker may hold: the `remaining` (unfinished) trials divided among the live
        workers, or the expected ones while fewer have asked, rounded up; never below one."""
        return max(1, math.ceil(remaining / max(self.live(), self.expected, 1)))

    def hand_on(self, trial_id: str) -> bool:
        """Count one more hand-on of `trial_id`; True while it may run again, False once it has been
        handed on more than `max_retries` times and is to be recorded as failed."""
        self.handed_on[trial_id] += 1
        return self.handed_on[trial_id] <= self.max_retries
