"""Failure classification on real Batch job descriptions (the Cause of a failed batch:submitJob.sync),
and the retry decision that follows."""

from __future__ import annotations

import json

import pytest

from stepspot.agent_exit_codes import EXIT_SPOT_NOTICE
from stepspot.failures import Classification, classify, decide, with_memory
from stepspot.fleet import agent_command
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


def test_a_pull_of_an_image_that_does_not_exist_is_a_misconfiguration():
    found = classify("States.TaskFailed", _cause(IMAGE_PULL_FAILED))
    assert found.failure_class is FailureClass.MISCONFIGURATION
    assert found.reason == (
        "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref "
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/md:latest: not found: the container image cannot be pulled; "
        "fix the task's container_image, or push the image and let the job role pull it"
    )


def test_a_pull_that_timed_out_is_transient_infrastructure():
    job = json.loads(json.dumps(IMAGE_PULL_FAILED))
    job["Attempts"][0]["Container"]["Reason"] = (
        "CannotPullContainerError: failed to copy: httpReadSeeker: failed open: failed to do request: Get "
        '"https://prod-eu-west-1-starport-layer-bucket.s3.eu-west-1.amazonaws.com/...": dial tcp: i/o timeout'
    )
    found = classify("States.TaskFailed", _cause(job))
    assert found.failure_class is FailureClass.INFRA_TRANSIENT
    assert found.reason.startswith("CannotPullContainerError")


# A job whose shape no instance type of its queue holds: RUNNABLE until jobStateTimeLimitActions cancels it
# (Batch JobDetail as DescribeJobs returns it, trimmed; the Batch User Guide's "Job stuck in RUNNABLE").
CANNOT_BE_PLACED = {
    "jobArn": "arn:aws:batch:eu-west-1:123456789012:job/6c7d8e9f-0a1b-4c2d-9e3f-405162738495",
    "jobName": "equilibration-md-1",
    "jobId": "6c7d8e9f-0a1b-4c2d-9e3f-405162738495",
    "jobQueue": "arn:aws:batch:eu-west-1:123456789012:job-queue/stepspot-dev-spot",
    "status": "FAILED",
    "statusReason": "Canceled by JobStateTimeLimit action due to reason: MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
    "attempts": [],
    "createdAt": 1763730420000,
    "container": {
        "image": "scientific-computing:md-simulation",
        "resourceRequirements": [{"value": "8", "type": "VCPU"}, {"value": "16384", "type": "MEMORY"}],
    },
}
ROLE_DENIED = {
    "JobId": "7d8e9f0a-1b2c-4d3e-8f40-516273849506",
    "Status": "FAILED",
    "StatusReason": "Essential container in task exited",
    "Attempts": [
        {
            "Container": {
                "ExitCode": 1,
                "Reason": "ResourceInitializationError: unable to pull secrets or registry auth: "
                "AccessDeniedException: "
                "User: arn:aws:sts::123456789012:assumed-role/stepspot-dev-job/abc is not authorized to perform: "
                "ecr:GetAuthorizationToken",
            },
            "StatusReason": "Task failed to start",
        }
    ],
}
RUNNER_MISCONFIGURED = {
    "JobId": "8e9f0a1b-2c3d-4e4f-9051-627384950617",
    "Status": "FAILED",
    "StatusReason": "Essential container in task exited",
    "Attempts": [{"Container": {"ExitCode": 78}, "StatusReason": "Essential container in task exited"}],
    "Container": {"ExitCode": 78, "Command": agent_command(["python", "train.py"], wrapped=True)},
}
# The container's entry program is not in the image: runc refuses to start it (CannotStartContainerError
# as ECS reports it, e.g. github.com/aws/amazon-ecs-cli/issues/1136 and nextflow-io/nextflow/issues/5657).
PROGRAM_NOT_IN_IMAGE = {
    "JobId": "9f0a1b2c-3d4e-4f50-8162-738495061728",
    "Status": "FAILED",
    "StatusReason": "Task failed to start",
    "Attempts": [
        {
            "Container": {
                "Reason": "CannotStartContainerError: Error response from daemon: failed to create task for container: "
                "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container "
                'process: exec: "gmx": executable file not found in $PATH: unknown'
            },
            "StatusReason": "Task failed to start",
        }
    ],
    "Container": {"Command": ["gmx", "mdrun"]},
}


@pytest.mark.parametrize("casing", [lambda j: j, _camel], ids=["as-is", "sdk-camel"])
def test_a_job_no_instance_type_can_hold_is_a_misconfiguration_that_says_what_to_change(casing):
    found = classify("States.TaskFailed", _cause(casing(CANNOT_BE_PLACED)))
    assert found.failure_class is FailureClass.MISCONFIGURATION
    assert found.reason == (
        "Canceled by JobStateTimeLimit action due to reason: MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT: no instance "
        "type of the job's queue can hold the task's vcpus, memory and gpus: lower them, or add larger instance "
        "types to the queue's compute environment (`stepspot validate FILE --env ENV` names the largest shape "
        "that fits)"
    )
    assert found.job_id == CANNOT_BE_PLACED["jobId"]


def test_a_denied_role_is_a_misconfiguration():
    found = classify("States.TaskFailed", _cause(ROLE_DENIED))
    assert found.failure_class is FailureClass.MISCONFIGURATION
    assert "is not authorized to perform: ecr:GetAuthorizationToken" in found.reason
    assert found.reason.endswith(
        "grant that permission to the job role (Terraform module iam) or fix the resource the task names"
    )


def test_the_runners_misconfiguration_exit_code_is_a_misconfiguration():
    from stepspot.agent_exit_codes import EXIT_MISCONFIGURATION

    assert EXIT_MISCONFIGURATION == 78
    found = classify("States.TaskFailed", _cause(RUNNER_MISCONFIGURED))
    assert found.failure_class is FailureClass.MISCONFIGURATION
    assert found.exit_code == 78
    assert "use an image with python3" in found.reason


def test_a_programs_own_exit_78_outside_the_runner_is_an_application_error():
    # Given a task the runner does not wrap (no checkpoints, no data) whose program exits 78 by itself
    job = json.loads(json.dumps(RUNNER_MISCONFIGURED))
    job["Container"]["Command"] = ["python", "train.py"]
    found = classify("States.TaskFailed", _cause(job))
    # Then it is the program's failure, retried as such, not blamed on the runner
    assert (found.failure_class, found.reason) == (FailureClass.APP_ERROR, "exit code 78")


@pytest.mark.parametrize(("code", "what"), [(127, "was not found"), (126, "is not executable")])
def test_a_command_the_runner_cannot_start_in_the_image_is_a_misconfiguration(code, what):
    # Given a wrapped task whose command the runner did not find (or could not execute) in the image
    job = json.loads(json.dumps(RUNNER_MISCONFIGURED))
    job["Attempts"][0]["Container"]["ExitCode"] = job["Container"]["ExitCode"] = code
    found = classify("States.TaskFailed", _cause(job))
    # Then retrying the same image cannot help: misconfiguration, saying what to change
    assert found.failure_class is FailureClass.MISCONFIGURATION
    assert found.reason == (
        f"exit code {code}: the task's command (or a program it runs) {what} in the image, as the job log says: "
        "use an image that has it, or fix the task's command"
    )
    # A program that is not wrapped keeps its own exit code's meaning
    job["Container"]["Command"] = ["python", "train.py"]
    assert classify("States.TaskFailed", _cause(job)).failure_class is FailureClass.APP_ERROR


def test_a_program_the_image_does_not_have_is_a_misconfiguration():
    found = classify("States.TaskFailed", _cause(PROGRAM_NOT_IN_IMAGE))
    assert found.failure_class is FailureClass.MISCONFIGURATION
    assert found.reason.endswith(
        'exec: "gmx": executable file not found in $PATH: unknown: the image has no program "gmx": use an image '
        "that has it, or fix the task's command"
    )


def test_an_image_without_the_shell_the_runner_needs_is_a_misconfiguration_that_says_what_it_needs():
    # Given a wrapped task on an image without /bin/sh (distroless, scratch): runc cannot start the runner
    job = json.loads(json.dumps(PROGRAM_NOT_IN_IMAGE))
    job["Container"]["Command"] = agent_command(["gmx", "mdrun"], wrapped=True)
    job["Attempts"][0]["Container"]["Reason"] = (
        "CannotStartContainerError: Error response from daemon: failed to create task for container: failed to "
        "create shim task: OCI runtime create failed: runc create failed: unable to start container process: "
        'exec: "/bin/sh": stat /bin/sh: no such file or directory: unknown'
    )
    found = classify("States.TaskFailed", _cause(job))
    assert found.failure_class is FailureClass.MISCONFIGURATION
    assert found.reason.endswith(
        'the image has no program "/bin/sh": the stepspot task runner needs /bin/sh and python3 >= 3.9 in the '
        "image: use an image that has them"
    )


def test_a_misconfiguration_is_not_retried_and_the_decision_keeps_the_fix():
    found = classify("States.TaskFailed", _cause(CANNOT_BE_PLACED))
    decision = _decide(found, 1)
    assert not decision.retry
    assert decision.reason.startswith("misconfiguration: Canceled by JobStateTimeLimit action")
    assert decision.reason.endswith("(not retried: a retry cannot fix it)")


def test_non_zero_exit_is_an_application_error_with_its_code():
    found = classify("States.TaskFailed", _cause(NON_ZERO_EXIT))
    assert found == Classification(FailureClass.APP_ERROR, "exit code 2", 2, None, NON_ZERO_EXIT["JobId"])


def test_out_of_memory_is_an_application_error_not_infrastructure():
    found = classify("States.TaskFailed", _cause(OUT_OF_MEMORY))
    assert found.failure_class is FailureClass.APP_ERROR
    assert found.out_of_memory
    assert found.exit_code == 137
    assert found.reason == "OutOfMemoryError: Container killed due to memory usage"


def test_an_out_of_memory_retry_asks_for_more_memory_up_to_the_ceiling():
    found = classify("States.TaskFailed", _cause(OUT_OF_MEMORY))
    knobs = DEFAULT_POLICY.out_of_memory
    assert (knobs.factor, knobs.ceiling_mib) == (1.5, None)
    # x1.5, rounded up
    assert knobs.next_memory(1024, None) == 1536
    assert knobs.next_memory(1001, None) == 1502
    # never above the largest instance of the queue, nor above the policy's ceiling
    assert knobs.next_memory(4096, 5000) == 5000
    assert knobs.model_copy(update={"ceiling_mib": 4500}).next_memory(4096, 5000) == 4500
    # at the ceiling already: cannot grow
    assert knobs.next_memory(5000, 5000) is None
    decision = with_memory(_decide(found, 1), 1024, knobs.next_memory(1024, 15000))
    assert decision.retry
    assert decision.reason.endswith(", with 1536 MiB (was 1024 MiB)")
    given_up = with_memory(_decide(found, 1), 5000, None)
    assert not given_up.retry
    assert given_up.reason == (
        "app_error: out of memory with 5000 MiB, the most the task's queue offers (policy out_of_memory.ceiling_mib "
        "or its largest instance type): lower the program's memory use, or add instance types with more memory"
    )


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ("Batch.AWSBatchException", FailureClass.INFRA_TRANSIENT),
        ("Lambda.TooManyRequestsException", FailureClass.INFRA_TRANSIENT),
        ("Sandbox.Timedout", FailureClass.INFRA_TRANSIENT),  # a stepspot Lambda ran out of time
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


def test_the_memory_of_each_attempt_comes_from_the_base_and_the_escalations():
    from stepspot.failures import memory_by_attempt

    assert memory_by_attempt(3, 1024, [[2, 1536], [3, 2304]]) == [1024, 1536, 2304]
    assert memory_by_attempt(3, 1024, [[2, 1536]]) == [1024, 1536, 1536]  # kept after the escalation
    assert memory_by_attempt(2, None, None) == [None, None]  # items written before base_memory existed
