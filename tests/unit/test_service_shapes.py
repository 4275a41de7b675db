"""The rendered state machines against the services' own API models (botocore) and error names.

Step Functions passes a Task state's ``Parameters`` to the service API with PascalCase member names
(``.$`` marks a value taken from the state at run time); a member the API does not have, or a missing
required one, fails the execution at run time, which neither moto nor asl-validator notices. Every
``Retry``/``Catch`` error name must be one that Step Functions or the service can raise, or one of
stepspot's own exception classes (a Lambda's exception type name is the error name): a misspelt name
silently never matches.
"""

from __future__ import annotations

import re
from typing import Any

import botocore.session
import pytest

from stepspot import asl, errors, fleet
from stepspot.plan import build_plan
from stepspot.workflow import parse_workflow

ARNS = {name: f"arn:aws:lambda:us-east-1:123456789012:function:{name}" for name in asl.ARN_VARIABLES}
INTEGRATION = re.compile(r"^arn:aws:states:::(?P<service>[a-z]+):(?P<action>[A-Za-z]+)(\.(sync|waitForTaskToken))?$")
BOTOCORE_SERVICE = {"batch": "batch", "lambda": "lambda", "states": "stepfunctions"}

# Step Functions' own error names (Amazon States Language, "Error names").
STATES_ERRORS = {
    "States.ALL",
    "States.DataLimitExceeded",
    "States.ExceedToleratedFailureThreshold",
    "States.HeartbeatTimeout",
    "States.Http.Socket",
    "States.IntrinsicFailure",
    "States.ItemReaderFailed",
    "States.NoChoiceMatched",
    "States.ParameterPathFailure",
    "States.Permissions",
    "States.QueryEvaluationError",
    "States.ResultPathMatchFailure",
    "States.ResultWriterFailed",
    "States.Runtime",
    "States.TaskFailed",
    "States.Timeout",
    "States.BranchFailed",
}
# Names Step Functions gives errors that are not error shapes of the service model: the AWS SDK's base
# and client-side exception classes and a function's own failures (Step Functions' documentation on
# handling Lambda errors), and the HTTP 429 code Batch answers a throttled SubmitJob with.
SDK_ERRORS = {
    "Lambda.Unknown",  # an unhandled function error without a type: timeouts, out of memory (same guide)
    "Sandbox.Timedout",  # the errorType Lambda gives a function that ran past its timeout
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.ClientExecutionTimeoutException",
    "Batch.AWSBatchException",
    "Batch.TooManyRequestsException",
}


def _session() -> Any:
    return botocore.session.get_session()


def _known_error_names() -> set[str]:
    lambda_model = _session().get_service_model("lambda")
    batch_model = _session().get_service_model("batch")
    lambda_errors = {f"Lambda.{e.name}" for e in lambda_model.operation_model("Invoke").error_shapes}
    batch_errors = {f"Batch.{e.name}" for e in batch_model.operation_model("SubmitJob").error_shapes}
    own = set(asl.retryable_error_names())
    pending: list[type] = [errors.StepspotError]
    while pending:  # every stepspot exception class: a Lambda raising it gives that error name
        cls = pending.pop()
        own.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    return STATES_ERRORS | SDK_ERRORS | lambda_errors | batch_errors | own | {"WorkflowTasksFailed"}


def _pascal(member: str) -> str:
    return member[:1].upper() + member[1:]


def _resolve(path: str, state: dict[str, Any]) -> Any:
    value: Any = state
    for part in path.removeprefix("$.").split("."):
        value = value[part]
    return value


def check_shape(shape: Any, value: Any, where: str, state: dict[str, Any] | None, problems: list[str]) -> None:
    """Problems of ``value`` (a Parameters value, PascalCase keys) against a botocore shape."""
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            problems.append(f"{where}: expected an object for {shape.name}, found {type(value).__name__}")
            return
        members = {_pascal(name): (name, member) for name, member in shape.members.items()}
        given = set()
        for key, item in value.items():
            name = key[:-2] if key.endswith(".$") else key
            given.add(name)
            if name not in members:
                problems.append(f"{where}.{key}: {shape.name} has no member {name!r} (members: {sorted(members)})")
                continue
            if key.endswith(".$"):
                if state is None or not str(item).startswith("$."):
                    continue  # a context or intrinsic value: checked by asl-validator, not here
                item = _resolve(item, state)
            check_shape(members[name][1], item, f"{where}.{name}", state, problems)
        for required in shape.required_members:
            if _pascal(required) not in given:
                problems.append(f"{where}: required member {_pascal(required)!r} of {shape.name} is missing")
    elif kind == "list":
        if not isinstance(value, list):
            problems.append(f"{where}: expected a list, found {type(value).__name__}")
            return
        for index, item in enumerate(value):
            check_shape(shape.member, item, f"{where}[{index}]", state, problems)
    elif kind == "map":
        if not isinstance(value, dict):
            problems.append(f"{where}: expected a map, found {type(value).__name__}")
    elif kind == "string":
        if not isinstance(value, str):
            problems.append(f"{where}: expected a string, found {type(value).__name__} {value!r}")
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{where}: expected an integer, found {type(value).__name__} {value!r}")
    elif kind == "boolean" and not isinstance(value, bool):
        problems.append(f"{where}: expected true/false, found {value!r}")
    # blob (Lambda Payload) and the rest: free-form


def _sample_states() -> list[dict[str, Any]]:
    """``$`` of RunJob / RunMultiNodeJob as the attempt manager builds it (single and multi-node)."""
    workflow = parse_workflow(
        {
            "name": "shapes",
            "tasks": [
                {"id": "one", "container_image": "i", "command": ["run"], "environment": {"A": "1"}},
                {"id": "mpi", "container_image": "i", "command": ["mpirun"], "nodes": 4, "gpus": 1},
            ],
        }
    ).workflow
    plan = build_plan(workflow, "wf")
    states = []
    for task in plan.tasks.values():
        choice = fleet.CapacityChoice(fleet.Capacity.ON_DEMAND, "test")
        job = fleet.job_request(
            workflow_id="wf",
            environment="test",
            task=task,
            attempt=1,
            choice=choice,
            queue_arn="arn:aws:batch:us-east-1:123456789012:job-queue/q",
            queue_name="q",
            job_definition_arn="arn:aws:batch:us-east-1:123456789012:job-definition/d:1",
            job_name="n",
        )
        states.append({"job": job})
    return states


def _integration_tasks() -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for machine, definition in asl.render(ARNS).items():
        for name, state in definition["States"].items():
            if state["Type"] == "Task" and INTEGRATION.match(str(state["Resource"])):
                found.append((f"{machine}.{name}", str(state["Resource"]), state))
    return found


def test_the_state_machines_use_service_integrations():
    names = {name for name, _, _ in _integration_tasks()}
    assert {"task.RunJob", "task.RunMultiNodeJob", "workflow.StartWorkflow"} <= names


@pytest.mark.parametrize(
    ("name", "resource", "state"),
    _integration_tasks(),
    ids=lambda v: v if isinstance(v, str) and "." in v and ":" not in v else "",
)
def test_task_parameters_match_the_service_api(name: str, resource: str, state: dict[str, Any]):
    match = INTEGRATION.match(resource)
    assert match is not None
    model = _session().get_service_model(BOTOCORE_SERVICE[match["service"]])
    operation = model.operation_model(_pascal(match["action"]))
    samples: list[dict[str, Any] | None] = [None]
    if match["service"] == "batch":
        samples = [s for s in _sample_states() if ("node_overrides" in s["job"]) == name.endswith("MultiNodeJob")]
    for sample in samples:
        problems: list[str] = []
        check_shape(operation.input_shape, state["Parameters"], name, sample, problems)
        assert problems == [], "\n".join(problems)


def test_the_shape_check_catches_a_misnamed_member():
    operation = _session().get_service_model("batch").operation_model("SubmitJob")
    problems: list[str] = []
    check_shape(
        operation.input_shape,
        {"JobName": "n", "JobQueue": "q", "JobDefinition": "d", "ContainerOverrides": {"Env": []}},
        "x",
        None,
        problems,
    )
    assert problems == [
        "x.ContainerOverrides.Env: ContainerOverrides has no member 'Env' (members: "
        + problems[0].split("(members: ")[1]
    ]
    problems.clear()
    check_shape(operation.input_shape, {"JobName": "n", "JobQueue": "q"}, "x", None, problems)
    assert problems == ["x: required member 'JobDefinition' of SubmitJobRequest is missing"]


def test_every_retry_and_catch_error_name_is_one_that_can_be_raised():
    known = _known_error_names()
    unknown = []
    for machine, definition in asl.render(ARNS).items():
        for name, state in definition["States"].items():
            for rule in [*state.get("Retry", []), *state.get("Catch", [])]:
                unknown.extend(f"{machine}.{name}: {e}" for e in rule["ErrorEquals"] if e not in known)
    assert unknown == []


def test_the_error_name_check_refuses_a_misspelt_name():
    assert "Lambda.TooManyRequestException" not in _known_error_names()
    assert "States.Timeout" in _known_error_names() and "StateWriteContendedError" in _known_error_names()
