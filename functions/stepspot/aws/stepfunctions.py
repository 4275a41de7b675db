"""Step Functions adapter: start and stop task executions, answer (and heartbeat) the workflow's task token."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from stepspot.aws.errors import ErrorKind, error_code, error_kind, translate_client_error

# Answering a token that was already answered, timed out, or belongs to a finished execution: the
# outcome is already decided, which is what a redelivered event expects.
START_ATTEMPTS = 6  # StartExecution throttling: about 6 s of backoff before the step fails
_HEARTBEATS_KEPT = 1024  # workflows' tokens a container remembers its last heartbeat for
_ALREADY_ANSWERED = {"TaskTimedOut", "InvalidToken", "TaskDoesNotExist"}


class StepFunctions:
    """Implements ``stepspot.scheduler.Orchestrator``."""

    def __init__(
        self,
        sfn_client: Any,
        task_state_machine_arn: str,
        sleep: Callable[[float], None] = time.sleep,
        heartbeat_interval_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sfn = sfn_client
        self.task_state_machine_arn = task_state_machine_arn
        self._sleep = sleep
        self._heartbeat_interval = heartbeat_interval_seconds
        self._clock = clock
        # token -> when this container last sent its heartbeat (a warm container keeps it between events)
        self._heartbeats: dict[str, float] = {}

    def execution_arn(self, name: str) -> str:
        return self.task_state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + name

    def start_task(self, execution_name: str, payload: Mapping[str, Any]) -> str:
        """Start (once: the name is deterministic) the task execution; returns its ARN.

        The task is already RUNNING in the state table when this is called, so a throttled call is
        retried here (full-jitter backoff) rather than left to a step retry that may not come back to
        this task."""
        for attempt in range(START_ATTEMPTS):
            try:
                response = self._sfn.start_execution(
                    stateMachineArn=self.task_state_machine_arn,
                    name=execution_name,
                    input=json.dumps(payload, separators=(",", ":")),
                )
                return str(response["executionArn"])
            except ClientError as exc:
                if error_code(exc) == "ExecutionAlreadyExists":
                    return self.execution_arn(execution_name)
                if error_kind(exc) is not ErrorKind.THROTTLED or attempt + 1 == START_ATTEMPTS:
                    raise translate_client_error(exc, f"starting task execution {execution_name}") from exc
            self._sleep(random.random() * min(2.0, 0.1 * 2**attempt))
        raise AssertionError("unreachable")

    def stop_task(self, execution_arn: str, cause: str) -> None:
        try:
            self._sfn.stop_execution(executionArn=execution_arn, error="WorkflowFailed", cause=cause[:32_000])
        except ClientError as exc:
            if error_code(exc) in {"ExecutionDoesNotExist", "ValidationException"}:
                return  # already finished
            raise translate_client_error(exc, f"stopping {execution_arn}") from exc

    def workflow_succeeded(self, task_token: str, output: Mapping[str, Any]) -> None:
        self._answer(lambda: self._sfn.send_task_success(taskToken=task_token, output=json.dumps(output)))

    def workflow_failed(self, task_token: str, error: str, cause: str) -> None:
        self._answer(lambda: self._sfn.send_task_failure(taskToken=task_token, error=error[:256], cause=cause[:32_000]))

    def workflow_heartbeat(self, task_token: str) -> None:
        """At most one per ``heartbeat_interval_seconds`` per token from this container (a wide fan-out's
        every task event need not prove the callback chain again; the heartbeat limit's margin holds the
        interval). Best effort: a throttled heartbeat is skipped (the next task event sends one, and the
        heartbeat limit has a margin); a denied one raises, it is a deployment error."""
        now = self._clock()
        last = self._heartbeats.get(task_token)
        if last is not None and now - last < self._heartbeat_interval:
            return
        try:
            self._sfn.send_task_heartbeat(taskToken=task_token)
        except ClientError as exc:
            if error_code(exc) in _ALREADY_ANSWERED or error_kind(exc) is ErrorKind.THROTTLED:
                return
            raise translate_client_error(exc, "sending the workflow's heartbeat") from exc
        if len(self._heartbeats) >= _HEARTBEATS_KEPT:  # a long-lived container's old workflows
            self._heartbeats.clear()
        self._heartbeats[task_token] = now

    @staticmethod
    def _answer(call: Any) -> None:
        try:
            call()
        except ClientError as exc:
            if error_code(exc) in _ALREADY_ANSWERED:
                return
            raise translate_client_error(exc, "answering the workflow's task token") from exc
