"""The circuit breaker's transitions (pure)."""

from __future__ import annotations

from stepspot.breaker import Admission, BreakerState, BreakerStatus, admit, record_failure, record_success
from stepspot.policy import Breaker

POLICY = Breaker(failure_threshold=3, window_seconds=600, cooldown_seconds=300, trial_timeout_seconds=900)


def _failures(state: BreakerState, times: list[float]) -> BreakerState:
    for t in times:
        state = record_failure(state, t, POLICY)
    return state


def test_closed_breaker_admits_spot():
    assert admit(BreakerState(), 0, POLICY)[0] is Admission.SPOT


def test_threshold_failures_within_the_window_open_it():
    state = _failures(BreakerState(), [0, 100, 200])
    assert state.status is BreakerStatus.OPEN and state.opened_at == 200
    assert admit(state, 250, POLICY)[0] is Admission.ON_DEMAND


def test_failures_spread_beyond_the_window_do_not_open_it():
    state = _failures(BreakerState(), [0, 100, 700, 800])
    assert state.status is BreakerStatus.CLOSED
    assert state.failures == 2  # the window restarted at 700


def test_after_the_cooldown_exactly_one_trial_goes_to_spot():
    opened = _failures(BreakerState(), [0, 1, 2])
    admission, half_open = admit(opened, 2 + 300, POLICY)
    assert admission is Admission.TRIAL and half_open.status is BreakerStatus.HALF_OPEN
    assert admit(half_open, 303, POLICY)[0] is Admission.ON_DEMAND


def test_trial_success_closes_and_trial_failure_reopens():
    _, half_open = admit(_failures(BreakerState(), [0, 1, 2]), 400, POLICY)
    assert record_success(half_open, 500, POLICY).status is BreakerStatus.CLOSED
    reopened = record_failure(half_open, 500, POLICY)
    assert reopened.status is BreakerStatus.OPEN and reopened.opened_at == 500


def test_a_silent_trial_is_abandoned_after_its_timeout():
    _, half_open = admit(_failures(BreakerState(), [0, 1, 2]), 400, POLICY)
    admission, retried = admit(half_open, 400 + 900, POLICY)
    assert admission is Admission.TRIAL and retried.trial_started_at == 1300


def test_success_while_closed_changes_nothing():
    state = _failures(BreakerState(), [0])
    assert record_success(state, 10, POLICY) is state


def test_item_round_trip_keeps_every_field():
    state = BreakerState(BreakerStatus.HALF_OPEN, 2, 10.5, 20.25, 30.0, 7)
    assert BreakerState.from_item(state.to_item()) == state
