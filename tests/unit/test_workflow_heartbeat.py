"""The workflow's heartbeat (StartWorkflow's HeartbeatSeconds): one scheduler container sends at most one per
``policy.workflow_heartbeat_interval_seconds`` for a token, so a wide fan-out does not send one per task
event; local mode compresses the interval with the time scale, as the interpreter compresses the limit."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from stepspot.aws.stepfunctions import StepFunctions
from stepspot.local.engine import local_policy
from stepspot.policy import DEFAULT_POLICY, Policy
from stepspot.workflow_limits import MARGIN_SECONDS

ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:task"


class FakeClient:
    def __init__(self) -> None:
        self.heartbeats: list[str] = []
        self.throttle = False

    def send_task_heartbeat(self, taskToken: str) -> None:
        if self.throttle:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "SendTaskHeartbeat")
        self.heartbeats.append(taskToken)


def _adapter(interval: float) -> tuple[StepFunctions, FakeClient, list[float]]:
    client, now = FakeClient(), [1000.0]
    return StepFunctions(client, ARN, heartbeat_interval_seconds=interval, clock=lambda: now[0]), client, now


def test_one_heartbeat_per_interval_per_token() -> None:
    sfn, client, now = _adapter(60.0)
    sfn.workflow_heartbeat("a")
    now[0] += 59.0
    sfn.workflow_heartbeat("a")  # within the interval: skipped
    sfn.workflow_heartbeat("b")  # another workflow's token: its own first
    now[0] += 1.0
    sfn.workflow_heartbeat("a")  # the interval has passed
    assert client.heartbeats == ["a", "b", "a"]


def test_interval_zero_sends_one_on_every_event() -> None:
    sfn, client, _ = _adapter(0.0)
    for _ in range(3):
        sfn.workflow_heartbeat("a")
    assert client.heartbeats == ["a", "a", "a"]


def test_a_throttled_heartbeat_does_not_count_as_sent() -> None:
    sfn, client, now = _adapter(60.0)
    client.throttle = True
    sfn.workflow_heartbeat("a")  # skipped quietly (best effort)
    client.throttle = False
    now[0] += 1.0
    sfn.workflow_heartbeat("a")  # the next event sends it
    assert client.heartbeats == ["a"]


def test_the_interval_stays_inside_the_heartbeat_limit_s_margin() -> None:
    assert DEFAULT_POLICY.workflow_heartbeat_interval_seconds == 60.0
    assert Policy(workflow_heartbeat_interval_seconds=600).workflow_heartbeat_interval_seconds < MARGIN_SECONDS
    with pytest.raises(ValueError, match="less than or equal to 600"):
        Policy(workflow_heartbeat_interval_seconds=601)


def test_local_mode_compresses_the_interval_with_the_time_scale() -> None:
    scaled: Any = local_policy(Policy(workflow_heartbeat_interval_seconds=60), time_scale=600)
    assert scaled.workflow_heartbeat_interval_seconds == pytest.approx(0.1)
