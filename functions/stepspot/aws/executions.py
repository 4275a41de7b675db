"""Step Functions executions of the workflow state machine, as the CLI sees them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from stepspot.aws.cli_errors import aws_call
from stepspot.aws.errors import error_code
from stepspot.errors import FatalError, WorkflowNotFoundError

TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
REDRIVABLE_STATUSES = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})


@dataclass(frozen=True)
class ExecutionSummary:
    """What the CLI shows of one execution."""

    arn: str
    name: str
    status: str
    start_date: datetime | None
    stop_date: datetime | None
    input: dict[str, Any]
    error: str | None = None
    cause: str | None = None
    redrive_count: int = 0

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def workflow_id(self) -> str:
        return str(self.input.get("workflow_id") or self.name)


def execution_arn_for(state_machine_arn: str, execution_name: str) -> str:
    """The ARN AWS gives an execution of a standard state machine: `...:execution:<sm name>:<name>`."""
    prefix, _, machine_name = state_machine_arn.rpartition(":stateMachine:")
    return f"{prefix}:execution:{machine_name}:{execution_name}"


class WorkflowExecutions:
    """Start, inspect, stop and redrive executions of the workflow state machine."""

    def __init__(self, client: Any, state_machine_arn: str) -> None:
        self._client = client
        self._state_machine_arn = state_machine_arn

    def start(self, name: str, execution_input: dict[str, Any]) -> str:
        """Start an execution named ``name``; an existing one of that name is a user error, not a retry."""
        with aws_call("start the workflow execution"):
            try:
                response = self._client.start_execution(
                    stateMachineArn=self._state_machine_arn, name=name, input=json.dumps(execution_input)
                )
            except ClientError as exc:
                if error_code(exc) == "ExecutionAlreadyExists":
                    raise FatalError(
                        f"An execution named {name!r} already exists: pick another --execution-name, or "
                        f"`stepspot resume {name}` to continue it."
                    ) from exc
                raise
        return str(response["executionArn"])

    def ensure_name_free(self, name: str) -> None:
        """Refuse a name already used on this state machine (before anything is uploaded under it).

        StartExecution alone is not enough: with the same name and input it returns the running
        execution as if it had started it.
        """
        arn = execution_arn_for(self._state_machine_arn, name)
        with aws_call("check the execution name"):
            try:
                self._client.describe_execution(executionArn=arn)
            except ClientError as exc:
                if error_code(exc) == "ExecutionDoesNotExist":
                    return
                raise
        raise FatalError(
            f"An execution named {name!r} already exists: pick another --execution-name, or "
            f"`stepspot resume {name}` to continue it."
        )

    def describe(self, execution_arn: str) -> ExecutionSummary:
        with aws_call("describe the workflow execution"):
            try:
                response = self._client.describe_execution(executionArn=execution_arn)
            except ClientError as exc:
                if error_code(exc) == "ExecutionDoesNotExist":
                    name = execution_arn.rsplit(":", 1)[-1]
                    raise WorkflowNotFoundError(
                        f"No workflow execution {name!r} in this environment: `stepspot status` lists the recent ones."
                    ) from exc
                raise
        return _summary(response)

    def latest_for_workflow(self, workflow_id: str) -> ExecutionSummary:
        """The most recent execution of ``workflow_id``: its first run or one of its resubmissions."""
        candidates = [
            item
            for item in self._list()
            if item["name"] == workflow_id or item["name"].startswith(f"{workflow_id}{RESUBMIT_SEPARATOR}")
        ]
        if not candidates:
            # The listing is eventually consistent: ask for the first run by its name before giving up.
            return self.describe(execution_arn_for(self._state_machine_arn, workflow_id))
        latest = max(candidates, key=lambda item: item["startDate"])
        return self.describe(latest["executionArn"])

    def recent(self, limit: int) -> list[ExecutionSummary]:
        with aws_call("list the workflow executions"):
            response = self._client.list_executions(stateMachineArn=self._state_machine_arn, maxResults=limit)
        return [
            ExecutionSummary(
                arn=item["executionArn"],
                name=item["name"],
                status=item["status"],
                start_date=item.get("startDate"),
                stop_date=item.get("stopDate"),
                input={},
            )
            for item in response.get("executions", [])
        ]

    def resubmission_names(self, workflow_id: str) -> list[str]:
        return [item["name"] for item in self._list() if item["name"].startswith(f"{workflow_id}{RESUBMIT_SEPARATOR}")]

    def stop(self, execution_arn: str, cause: str) -> None:
        with aws_call("stop the execution"):
            self._client.stop_execution(executionArn=execution_arn, error="stepspot.Cancelled", cause=cause)

    def redrive(self, execution_arn: str) -> None:
        """Restart a failed execution from the state that failed (AWS keeps this possible for 14 days)."""
        with aws_call("redrive the execution"):
            try:
                self._client.redrive_execution(executionArn=execution_arn)
            except ClientError as exc:
                if error_code(exc) in {"ExecutionNotRedrivable", "ExecutionLimitExceeded"}:
                    raise FatalError(
                        f"Step Functions cannot redrive this execution "
                        f"({exc.response['Error'].get('Message', error_code(exc))}): use "
                        "`stepspot resume --resubmit` to start again skipping the finished tasks."
                    ) from exc
                raise

    def _list(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        with aws_call("list the workflow executions"):
            paginator = self._client.get_paginator("list_executions")
            for page in paginator.paginate(stateMachineArn=self._state_machine_arn):
                items.extend(page.get("executions", []))
        return items


# Resubmissions keep the workflow id (so checkpoints and task items carry over) and get a unique
# execution name `<workflow id>--r<n>` (Step Functions names are unique per state machine for 90 days).
RESUBMIT_SEPARATOR = "--r"


def _summary(response: dict[str, Any]) -> ExecutionSummary:
    try:
        execution_input = json.loads(response.get("input") or "{}")
    except json.JSONDecodeError:
        execution_input = {}
    return ExecutionSummary(
        arn=response["executionArn"],
        name=response.get("name") or response["executionArn"].rsplit(":", 1)[-1],
        status=response["status"],
        start_date=response.get("startDate"),
        stop_date=response.get("stopDate"),
        input=execution_input if isinstance(execution_input, dict) else {},
        error=response.get("error"),
        cause=response.get("cause"),
        redrive_count=int(response.get("redriveCount", 0) or 0),
    )
