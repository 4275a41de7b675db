"""Failure classification on real Batch job descriptions (the Cause of a failed batch:submitJob.sync),
and the retry decision that follows."""

from __future__ import annotations

import json

import pytest

from stepspot.agent_exit_codes import EXIT_SPOT_NOTICE
from stepspot.failures import Classification, classify, decide
from stepspot.policy import DEFAULT_POLICY, FailureClass

# As Step Functions puts them in Cause (PascalCase), trimmed to the fields that matter.
SPOT_RECLAIMED = {
    "Attempts": [
        {
            "Container": {
                "ContainerInstanceArn": "arn:aws:ecs:us-east-1:123456789012:container-instance/abc",
                "LogStreamName": "stepspot/default/1f2e",
                "NetworkInterfaces": [],
            },
            "StartedAt": 1700000000000,
            "StatusReason": "Host EC2 (instance i-0a1b2c3d4e5f67890) terminated.",
            "StoppedAt": 1700000600000,
        }
    ],
    "JobId": "8b4c2f1e-1111-2222-3333-444455556666",
    "JobName": "production-run-wf-a1",
    "JobQueue": "arn:aws:batch:us-east-1:123456789012:job-queue/stepspot-dev-spot",
    "Status": "FAILED",
    "StatusReason": "Host EC2 (instance i-0a1b2c3d4e5f67890) terminated.",
    "Container": {"Command": ["stepspot-agent", "run", "--", "gmx", "mdrun"]},
}
CAPACITY_CANCELLED = {
    "Attempts": [],
    "JobId": "0c9d8e7f-aaaa-bbbb-cccc-ddddeeeeffff",
    "JobName": "equilibration-wf-a1",
    "Status": "FAILED",
    "StatusReason": "Canceled by JobStateTimeLimit action due to reason: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
}
IMAGE_PULL_FAILED = {
    "Attempts": [
        {
            "Container": {
                "Reason": "CannotPullContainerError: pull image manifest has been retried 5 time(s): "
                "failed to resolve ref 123456789012.dkr.ecr.us-east-1.amazonaws.com/md:latest: not found"
            },
            "StatusReason": "Task failed to start",
        }
    ],
    "JobId": "1d2e3f40-1234-5678-9abc-def012345678",
    "Status": "FAILED",
    "StatusReason": "Task failed to start",
}
NON_ZERO_EXIT = {
    "Attempts": [
        {
            "Container": {"ExitCode": 2, "LogStreamName": "stepspot/default/9a"},
            "StatusReason": "Essential container in task exited",
        }
    ],
    "JobId": "2e3f4051-aaaa-4bbb-8ccc-123456789abc",
    "Status": "FAILED",
    "StatusReason": "Essential container in task exited",
    "Container": {"ExitCode": 2},
}
# The checkpoint agent stopped on a Spot notice and the host was not reclaimed in time (exit 79).
STOPPED_ON_SPOT_NOTICE = {
    "Attempts": [
        {
            "Container": {
                "ContainerInstanceArn": "arn:aws:ecs:us-east-1:123456789012:container-instance/stepspot-dev/9f8e",
                "ExitCode": 79,
                "LogStreamName": "stepspot/default/5c6d7e8f",
                "NetworkInterfaces": [],
                "TaskArn": "arn:aws:ecs:us-east-1:123456789012:task/stepspot-dev/5c6d7e8f",
            },
            "StartedAt": 1700000000000,
            "StatusReason": "Essential container in task exited",
            "StoppedAt": 1700000750000,
        }
    ],
    "Container": {
        "Command": ["stepspot-agent", "run", "--", "gmx", "mdrun"],
        "ExitCode": 79,
        "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/md:2024.3",
        "LogStreamName": "stepspot/default/5c6d7e8f",
    },
    "JobId": "4a516273-cccc-4ddd-8eee-3456789abcde",
    "JobName": "production-run-wf-a2",
    "JobQueue": "arn:aws:batch:us-east-1:123456789012:job-queue/stepspot-dev-spot",
    "Status": "FAILED",
    "StatusReason": "Essential container in task exited",
}
OUT_OF_MEMORY = {
    "Attempts": [
        {
            "Container": {"ExitCode": 137, "Reason": "OutOfMemoryError: Container killed due to memory usage"},
            "StatusReason": "Essential container in task exited",
        }
    ],
    "JobId": "3f405162-bbbb-4ccc-8ddd-23456789abcd",
    "Status": "FAILED",
    "StatusReason": "Essential container in task exited",
}


def _cause(job: dict) -> str:
    return json.dumps(job)


def _camel(value):  # what moto's interpreter hands over: the SDK's camelCase
    if isinstance(value, dict):
        return {k[0].lower() + k[1:]: _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


@pytest.mark.parametrize("casing", [lambda j: j, _camel], ids=["aws-pascal", "sdk-camel"])
def test_spot_reclaim_is_recognised_with_the_instance(casing):
    # Given the description of a job whose Spot host was reclaimed
    # When it is classified
    found = classify("States.TaskFailed", _cause(casing(SPOT_RECLAIMED)))
    # Then it is a Spot reclaim on that instance
    assert found.failure_class is FailureClass.SPOT_RECLAIM
    assert found.instance_id == "i-0a1b2c3d4e5f67890"
    assert found.reason == "Host EC2 (instance i-0a1b2c3d4e5f67890) terminated."
    assert found.job_id == "8b4c2f1e-1111-2222-3333-444455556666"


@pytest.mark.parametrize("casing", [lambda j: j, _camel], ids=["aws-pascal", "sdk-camel"])
def test_agent_exit_after_a_spot_notice_is_a_spot_reclaim_not_an_application_error(casing):
    # Given a job whose container ended with the agent's "stopped on a Spot interruption notice" code
    assert EXIT_SPOT_NOTICE == 79
    # When it is classified
    found = classify("States.TaskFailed", _cause(casing(STOPPED_ON_SPOT_NOTICE)))
    # Then it is a Spot reclaim (moves toward On-Demand) with the code kept, not an app error
    assert found == Classification(
        FailureClass.SPOT_RECLAIM,
        "exit code 79: the checkpoint agent stopped on a Spot interruption notice",
        79,
        None,
        "4a516273-cccc-4ddd-8eee-3456789abcde",
    )


def test_job_state_time_limit_cancellation_is_a_capacity_failure():
    found = classify("States.TaskFailed", _cause(CAPACITY_CANCELLED))
    assert found.failure_class is FailureClass.CAPACITY
    assert "JobStateTimeLimit" in found.reason


def test_image_pull_failure_is_transient_infrastructure():
    found = classify("States.TaskFailed", _cause(IMAGE_PULL_FAILED))
    assert found.failure_class is FailureClass.INFRA_TRANSIENT
    assert found.reason.startswith("CannotPullContainerError")


def test_non_zero_exit_is_an_application_error_with_its_code():
    found = classify("States.TaskFailed", _cause(NON_ZERO_EXIT))
    assert found == Classification(FailureClass.APP_ERROR, "exit code 2", 2, None, NON_ZERO_EXIT["JobId"])


def test_out_of_memory_is_an_application_error_not_infrastructure():
    found = classify("States.TaskFailed", _cause(OUT_OF_MEMORY))
    assert found.failure_class is FailureClass.APP_ERROR
    assert "OutOfMemoryError" in found.reason


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("Batch.AWSBatchException", FailureClass.INFRA_TRANSIENT),
        ("Lambda.TooManyRequestsException", FailureClass.INFRA_TRANSIENT),
        ("States.Timeout", FailureClass.APP_ERROR),
        ("SomethingNobodyKnows", FailureClass.APP_ERROR),
    ],
)
def test_call_errors_without_a_job_description(error, expected):
    assert classify(error, "Rate exceeded").failure_class is expected


def test_a_cause_that_is_not_json_is_kept_as_the_reason():
    found = classify("Batch.AWSBatchException", "Rate exceeded (Service: AWSBatch; Status Code: 429)")
    assert found.reason == "Batch.AWSBatchException: Rate exceeded (Service: AWSBatch; Status Code: 429)"


# --------------------------------------------------------------------------------------- decisions


def _decide(found: Classification, n: int, **overrides):
    arguments = {
        "task_retry_attempts": 3,
        "task_backoff_multiplier": 2.0,
        "use_spot": True,
        "on_demand_now": False,
        "policy": DEFAULT_POLICY,
        "jitter_key": ("wf", "task"),
    }
    arguments.update(overrides)
    return decide(found, n, **arguments)


RECLAIM = classify("States.TaskFailed", _cause(SPOT_RECLAIMED))
CAPACITY = classify("States.TaskFailed", _cause(CAPACITY_CANCELLED))
APP = classify("States.TaskFailed", _cause(NON_ZERO_EXIT))


def test_first_reclaim_retries_on_spot_at_once_second_moves_to_on_demand():
    first, second = _decide(RECLAIM, 1), _decide(RECLAIM, 2)
    assert (first.retry, first.on_demand, first.wait_seconds) == (True, False, 0)
    assert (second.retry, second.on_demand) == (True, True)
    assert "moved to On-Demand" in second.reason


def test_capacity_failure_moves_to_on_demand_immediately():
    decision = _decide(CAPACITY, 1)
    assert decision.retry and decision.on_demand and decision.wait_seconds == 0


def test_application_errors_back_off_and_never_change_capacity():
    decisions = [
        _decide(
            APP,
            n,
            policy=DEFAULT_POLICY.model_copy(
                update={"backoff": DEFAULT_POLICY.backoff.model_copy(update={"jitter": False})}
            ),
        )
        for n in (1, 2, 3)
    ]
    assert [d.wait_seconds for d in decisions] == [30, 60, 120]  # base 30 s, task multiplier 2.0
    assert not any(d.on_demand for d in decisions)


def test_application_errors_use_the_tasks_own_budget_then_give_up():
    decision = _decide(APP, 2, task_retry_attempts=1)
    assert not decision.retry
    assert decision.action == "give_up"
    assert decision.reason == "app_error: exit code 2; budget of 1 retry used up"


def test_jitter_is_reproducible_for_the_same_task_and_attempt():
    assert _decide(APP, 2).wait_seconds == _decide(APP, 2).wait_seconds
    assert 0 <= _decide(APP, 2).wait_seconds <= 60


def test_a_task_not_allowed_on_spot_stays_on_demand():
    assert _decide(APP, 1, use_spot=False).on_demand
