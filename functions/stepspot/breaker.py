"""Circuit breaker per Spot queue: a pure state machine. The DynamoDB store is
``stepspot.aws.breaker_store`` (optimistic concurrency on ``version``, conditional writes).

closed    -> attempts go to Spot; Spot failures (reclaim, capacity) are counted in a fixed window;
             ``failure_threshold`` failures within ``window_seconds`` open it.
open      -> attempts go to On-Demand; after ``cooldown_seconds`` the next request becomes the one
             trial on Spot (half-open). Exactly one caller wins that transition (conditional write).
half_open -> the trial runs on Spot, everyone else goes On-Demand. Trial success closes the breaker,
             trial failure opens it again; a trial that never reports is abandoned after
             ``trial_timeout_seconds`` so the breaker cannot stick half-open.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any

from stepspot.policy import Breaker as BreakerPolicy


class BreakerStatus(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Admission(StrEnum):
    """Where an attempt may run according to the breaker."""

    SPOT = "spot"  # breaker closed
    TRIAL = "trial"  # half-open: this attempt is the one Spot trial
    ON_DEMAND = "on_demand"  # open, or a trial is already running


@dataclass(frozen=True)
class BreakerState:
    status: BreakerStatus = BreakerStatus.CLOSED
    failures: int = 0
    window_start: float = 0.0
    opened_at: float = 0.0
    trial_started_at: float = 0.0
    version: int = 0  # incremented by every write; the store's condition

    def to_item(self) -> dict[str, Any]:
        """DynamoDB attributes (numbers as Decimal, which is what boto3 accepts)."""
        data: dict[str, Any] = {
            key: Decimal(str(value)) if isinstance(value, float) else value for key, value in asdict(self).items()
        }
        data["status"] = self.status.value
        return data

    @classmethod
    def from_item(cls, item: dict[str, Any] | None) -> BreakerState:
        if not item:
            return cls()
        return cls(
            status=BreakerStatus(str(item.get("status", "closed"))),
            failures=int(item.get("failures", 0)),
            window_start=float(item.get("window_start", 0)),
            opened_at=float(item.get("opened_at", 0)),
            trial_started_at=float(item.get("trial_started_at", 0)),
            version=int(item.get("version", 0)),
        )


def admit(state: BreakerState, now: float, policy: BreakerPolicy) -> tuple[Admission, BreakerState]:
    """Where the next attempt may run, and the state to write (the same object when nothing changes)."""
    if state.status is BreakerStatus.CLOSED:
        return Admission.SPOT, state
    if state.status is BreakerStatus.OPEN:
        if now - state.opened_at >= policy.cooldown_seconds:
            return Admission.TRIAL, replace(state, status=BreakerStatus.HALF_OPEN, trial_started_at=now)
        return Admission.ON_DEMAND, state
    # half-open: one trial at a time, unless the running trial has gone silent for too long
    if now - state.trial_started_at >= policy.trial_timeout_seconds:
        return Admission.TRIAL, replace(state, trial_started_at=now)
    return Admission.ON_DEMAND, state


def record_failure(state: BreakerState, now: float, policy: BreakerPolicy) -> BreakerState:
    """A Spot attempt failed for a Spot reason (reclaim or capacity)."""
    if state.status is BreakerStatus.HALF_OPEN:
        return replace(state, status=BreakerStatus.OPEN, opened_at=now, failures=0, window_start=now)
    if state.status is BreakerStatus.OPEN:
        return state  # already open: late reports of attempts started before it opened change nothing
    if now - state.window_start > policy.window_seconds or state.failures == 0:
        failures, window_start = 1, now
    else:
        failures, window_start = state.failures + 1, state.window_start
    if failures >= policy.failure_threshold:
        return replace(state, status=BreakerStatus.OPEN, failures=failures, window_start=window_start, opened_at=now)
    return replace(state, failures=failures, window_start=window_start)


def record_success(state: BreakerState, now: float, policy: BreakerPolicy) -> BreakerState:
    """A Spot attempt succeeded: a half-open trial closes the breaker; closed stays closed."""
    del now, policy  # part of the uniform transition signature
    if state.status is BreakerStatus.HALF_OPEN:
        return replace(state, status=BreakerStatus.CLOSED, failures=0, window_start=0.0, trial_started_at=0.0)
    return state
