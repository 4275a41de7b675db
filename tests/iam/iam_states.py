"""The calls Step Functions makes with the state machine role: read statically from the rendered ASL.

moto's interpreter does not call AWS with a role, so these calls are not recorded: every Task state of
build/asl/*.asl.json is mapped to the requests its service integration makes (the Step Functions
developer guide, "IAM policies for ... integrated services"), including the managed EventBridge rule
that a ``.sync`` integration creates. Values a state takes from its input (``"JobQueue.$"``) are
expanded to every value the attempt manager can hand it: the queues and (derived) job definitions of
Terraform's function environment.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from iam_calls import ACCOUNT, REGION, IamRequest, UnmappedCall, job_definition_arn, tag_context

PRINCIPAL = "states"
ASL_DIR = Path(__file__).resolve().parents[2] / "build" / "asl"
SAMPLE_IMAGE = "public.ecr.aws/docker/library/python:3.12-slim"
JOB_ARN = f"arn:aws:batch:{REGION}:{ACCOUNT}:job/x"  # a job the request creates or acts on (id unknown)


def _rule(name: str) -> str:
    return f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}"


def _sync_rule(name: str) -> list[tuple[str, str]]:
    return [(action, _rule(name)) for action in ("events:PutTargets", "events:PutRule", "events:DescribeRule")]


def task_states(states: Mapping[str, Any], machine: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        if state.get("Type") == "Task":
            yield f"{machine}.{name}", state
        for branch in state.get("Branches", []):
            yield from task_states(branch["States"], machine)
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from task_states(state[key]["States"], machine)


def _values(parameters: Mapping[str, Any], name: str, candidates: Mapping[str, list[str]], where: str) -> list[str]:
    if name in parameters:
        return [str(parameters[name])]
    if f"{name}.$" in parameters:
        return candidates[name]
    raise UnmappedCall(f"{where}: no {name} in Parameters")


def requests_for_state(
    where: str, state: Mapping[str, Any], substitutions: Mapping[str, str], candidates: Mapping[str, list[str]]
) -> list[IamRequest]:
    resource = _substitute(str(state["Resource"]), substitutions)
    parameters = {k: _substitute(v, substitutions) for k, v in (state.get("Parameters") or {}).items()}
    pairs: list[tuple[str, str]]
    with_context: list[tuple[str, str, dict[str, Any]]] = []
    if resource.startswith("arn:aws:lambda:"):
        pairs = [("lambda:InvokeFunction", resource)]
    elif resource.startswith("arn:aws:states:::lambda:invoke"):
        pairs = [("lambda:InvokeFunction", f) for f in _values(parameters, "FunctionName", candidates, where)]
    elif resource.startswith("arn:aws:states:::batch:submitJob"):
        # SubmitJob is authorised on the queue and the job definition; with tags, also as
        # batch:TagResource on the job it creates; the tags are condition keys of both.
        tags = _submitted_tags(parameters)
        targets = _values(parameters, "JobQueue", candidates, where)
        targets += [job_definition_arn(d) for d in _values(parameters, "JobDefinition", candidates, where)]
        with_context = [("batch:SubmitJob", target, tag_context(tags)) for target in targets]
        if tags:
            with_context.append(("batch:TagResource", JOB_ARN, tag_context(tags)))
        pairs = []
        if resource.endswith(".sync"):
            # Step Functions watches the job, and terminates it when the execution is stopped.
            pairs += [("batch:DescribeJobs", "*"), ("batch:TerminateJob", JOB_ARN)]
            pairs += _sync_rule("StepFunctionsGetEventsForBatchJobsRule")
    elif resource.startswith("arn:aws:states:::states:startExecution"):
        machines = _values(parameters, "StateMachineArn", candidates, where)
        pairs = [("states:StartExecution", m) for m in machines]
        if ".sync" in resource:
            for machine in machines:
                execution = machine.replace(":stateMachine:", ":execution:") + ":x"
                pairs += [("states:DescribeExecution", execution), ("states:StopExecution", execution)]
            pairs += _sync_rule("StepFunctionsGetEventsForStepFunctionsExecutionRule")
    else:
        raise UnmappedCall(
            f"{where}: service integration {resource} is not mapped to IAM actions in tests/iam/iam_states.py"
        )
    with_context += [(action, arn, {}) for action, arn in pairs]
    return [IamRequest(PRINCIPAL, action, arn, context, call=where) for action, arn, context in with_context]


def _submitted_tags(parameters: Mapping[str, Any]) -> dict[str, str]:
    """The tags a SubmitJob state sets: literal ``Tags``, or ``Tags.$`` from the state input, which
    carries the attempt manager's tags (``stepspot.fleet.job_tags``)."""
    if "Tags" in parameters:
        return {str(k): str(v) for k, v in parameters["Tags"].items()}
    if "Tags.$" in parameters:
        from stepspot.fleet import job_tags

        return job_tags("wf", "task", 1, "local")
    return {}


def _substitute(value: Any, substitutions: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        for name, replacement in substitutions.items():
            value = value.replace("${" + name + "}", replacement)
    return value


# Terraform enables logging and X-Ray tracing on both state machines; the role then needs these
# (Step Functions developer guide: "IAM policies for logging to CloudWatch Logs", "... AWS X-Ray").
RUNTIME_ACTIONS = (
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
)


def runtime_requests() -> list[IamRequest]:
    return [IamRequest(PRINCIPAL, action, "*", {}, call="state machine logging/tracing") for action in RUNTIME_ACTIONS]


def state_machine_requests(environment: Mapping[str, str], function_arns: Mapping[str, str]) -> list[IamRequest]:
    """Every request of every Task state of the rendered definitions (``make render``)."""
    from stepspot.aws.batch import derived_definition_name

    paths = sorted(ASL_DIR.glob("*.asl.json"))
    if not paths:
        raise UnmappedCall(f"no rendered state machines in {ASL_DIR}: run `make render`")
    substitutions = {f"{key}_arn": arn for key, arn in function_arns.items()}
    substitutions["task_state_machine_arn"] = environment["STEPSPOT_TASK_STATE_MACHINE_ARN"]
    queues = [environment[f"STEPSPOT_{kind}_QUEUE_ARN"] for kind in ("SPOT", "ONDEMAND", "MNP")]
    definitions = []
    for variable in ("STEPSPOT_JOB_DEFINITION_ARN", "STEPSPOT_MNP_JOB_DEFINITION_ARN"):
        base = environment[variable]
        name = base.rsplit("/", 1)[-1].rsplit(":", 1)[0]
        definitions += [base, job_definition_arn(f"{derived_definition_name(name, SAMPLE_IMAGE)}:1")]
    candidates = {
        "JobQueue": queues,
        "JobDefinition": definitions,
        "FunctionName": list(function_arns.values()),
        "StateMachineArn": [environment["STEPSPOT_TASK_STATE_MACHINE_ARN"]],
    }
    requests = runtime_requests()
    for path in paths:
        machine = path.name.removesuffix(".asl.json")
        definition = json.loads(path.read_text())
        for where, state in task_states(definition["States"], machine):
            requests += requests_for_state(where, state, substitutions, candidates)
    return requests
