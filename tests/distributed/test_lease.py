"""The chief's bookkeeping of live workers, shares and hand-ons, on a clock the test moves."""

from __future__ import annotations

from tfsoftmax.config import SweepConfig
from tfsoftmax.distributed.lease import Leases


def _leases(expected: int = 0, lease_s: float = 10.0, max_retries: int = 1) -> tuple[Leases, list[float]]:
    now = [0.0]
    return Leases(lease_s=lease_s, max_retries=max_retries, expected=expected, clock=lambda: now[0]), now


def test_a_worker_expires_only_after_a_whole_lease_without_a_report() -> None:
    leases, now = _leases()
    leases.report("w0")
    now[0] = 10.0
    assert leases.expired(["w0"]) == []
    now[0] = 10.5
    assert leases.expired(["w0"]) == ["w0"]
    leases.report("w0")
    assert leases.expired(["w0"]) == []


def test_a_worker_never_seen_gets_its_lease_from_the_first_look() -> None:
    leases, now = _leases()
    now[0] = 100.0
    assert leases.expired(["w9"]) == []  # known to the oracle before this chief started
    now[0] = 111.0
    assert leases.expired(["w9"]) == ["w9"]
    leases.forget("w9")
    assert leases.live() == 0


def test_live_workers_are_those_that_reported_within_the_lease() -> None:
    leases, now = _leases()
    leases.report("w0")
    now[0] = 6.0
    leases.report("w1")
    leases.report("")  # a caller without an id is nobody
    assert leases.live() == 2
    now[0] = 12.0
    assert leases.live() == 1


def test_a_share_is_the_remaining_trials_over_the_live_or_expected_workers_rounded_up() -> None:
    leases, now = _leases()
    assert leases.share(8) == 8  # nobody known yet: the one who asks
    leases.report("w0")
    leases.report("w1")
    assert [leases.share(n) for n in (8, 7, 1, 0)] == [4, 4, 1, 1]
    launched, _ = _leases(expected=2)
    launched.report("w0")
    assert launched.share(8) == 4  # the launcher's second worker has not asked yet
    now[0] = 20.0
    assert leases.share(8) == 8  # both silent for a lease: whoever asks next is all there is


def test_a_trial_is_handed_on_at_most_max_retries_times() -> None:
    leases, _ = _leases(max_retries=2)
    assert [leases.hand_on("3") for _ in range(3)] == [True, True, False]
    assert leases.hand_on("4")


def test_leases_take_the_sweeps_lease_and_retries() -> None:
    sweep = SweepConfig()
    leases = Leases.of(sweep, expected=3)
    assert (leases.lease_s, leases.max_retries, leases.expected) == (sweep.lease_s, sweep.max_retries, 3)
