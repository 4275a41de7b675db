"""Scheduler Lambda: dataflow scheduling of task executions (logic in ``stepspot.scheduler``).

Events (from the state machines, see templates/*.asl.json.j2):
  {"action": "start", "workflow_id", "plan_uri", "task_token"}                       StartWorkflow
  {"action": "task_succeeded", "workflow_id", "task_id", "plan_uri", "attempt",
   "capacity", "queue_name"}                                                          TaskSucceeded
  {"action": "task_failed", "workflow_id", "task_id", "plan_uri", "attempt",
   "failure_class", "reason" | "error": {"Error", "Cause"}}                           TaskFailed/TaskErrored
  {"action": "abort", "workflow_id", "plan_uri", "error": {"Error", "Cause"}}         AbortWorkflow
  {"action": "task_failed", ..., "execution_arn"}      the workflow monitor: a task execution ended
                                                       abnormally without telling (ignored unless that
                                                       execution is still the task's RUNNING one)
  {"action": "resolve_dependents", "workflow_id", "task_id", "plan_uri", "offset", "run_tag"}
                                                       itself, asynchronously: the next slice of a wide
                                                       fan-out (stepspot.scheduler.DEPENDENTS_PER_INVOCATION)
  {"action": "skip_descendants", "workflow_id", "task_id", "plan_uri", "offset", "run_tag", "reason"}
                                                       itself: the next slice of the tasks downstream of a
                                                       failed task to skip (failure_mode continue)
  {"action": "start_remaining", "workflow_id", "plan_uri", "after", "run_tag"}
                                                       itself: the next slice of the tasks to start first
                                                       (the roots), those whose ids sort after ``after``
Returns a small summary (counters of the workflow). Idempotent under redelivery.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stepspot import breaker
from stepspot.aws.breaker_store import BreakerStore
from stepspot.aws.s3 import DocumentStore
from stepspot.aws.scheduler_invoker import SchedulerInvoker
from stepspot.aws.scheduler_state import SchedulerState
from stepspot.aws.stepfunctions import StepFunctions
from stepspot.errors import InvalidEventError
from stepspot.handlers._cache import cold_start
from stepspot.handlers._plans import load_plan
from stepspot.policy import Policy, policy_from_env_value
from stepspot.scheduler import (
    RESOLVE_DEPENDENTS,
    SKIP_DESCENDANTS,
    START_REMAINING,
    Scheduler,
    TaskState,
    WorkflowCounters,
)
from stepspot.settings import LambdaSettings, load_settings

logger = Logger()  # task and workflow metrics come from the workflow monitor (stepspot.metrics owners)


class SchedulerSettings(LambdaSettings):
    bucket: str = Field(alias="STEPSPOT_BUCKET", min_length=3)
    state_table: str = Field(alias="STEPSPOT_STATE_TABLE", min_length=3)
    task_state_machine_arn: str = Field(alias="STEPSPOT_TASK_STATE_MACHINE_ARN", pattern=r"^arn:")
    environment: str = Field(alias="STEPSPOT_ENVIRONMENT", min_length=1)
    policy_json: str | None = Field(None, alias="STEPSPOT_POLICY")
    # Itself: the rest of a wide fan-out goes to an asynchronous invocation of this ARN.
    scheduler_function: str = Field(alias="STEPSPOT_SCHEDULER_FUNCTION_ARN", pattern=r"^arn:")


class SchedulerEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    action: Literal[
        "start", "task_succeeded", "task_failed", "abort", "resolve_dependents", "skip_descendants", "start_remaining"
    ]
    workflow_id: str = Field(min_length=1, max_length=80)
    plan_uri: str = Field(pattern=r"^s3://")
    task_token: str | None = None
    task_id: str | None = Field(None, min_length=1, max_length=80)
    attempt: int = Field(1, ge=1)
    capacity: str | None = None
    queue_name: str | None = None
    failure_class: str | None = None
    reason: str | None = None
    error: dict[str, Any] | None = None
    execution_arn: str | None = None  # set by the workflow monitor's report of a lost task execution
    offset: int | None = Field(None, ge=0)  # resolve_dependents/skip_descendants: the slice's first task
    run_tag: str | None = Field(None, min_length=1)  # a continuation: the run it continues
    after: str | None = Field(None, min_length=1, max_length=80)  # start_remaining: the last task id done

    @model_validator(mode="after")
    def _fields_of_action(self) -> SchedulerEvent:
        if self.action == "start" and not self.task_token:
            raise ValueError("a start event needs task_token ($$.Task.Token)")
        if self.action in ("task_succeeded", "task_failed", RESOLVE_DEPENDENTS, SKIP_DESCENDANTS) and not self.task_id:
            raise ValueError(f"a {self.action} event needs task_id")
        if self.action in (RESOLVE_DEPENDENTS, SKIP_DESCENDANTS) and (self.offset is None or self.run_tag is None):
            raise ValueError(f"a {self.action} event needs offset and run_tag")
        if self.action == START_REMAINING and (self.after is None or self.run_tag is None):
            raise ValueError("a start_remaining event needs after and run_tag")
        return self

    def failure_text(self) -> str:
        if self.reason:
            prefix = f"{self.failure_class}: " if self.failure_class else ""
            return self.reason if self.reason.startswith(prefix) else prefix + self.reason
        error = self.error or {}
        return f"{error.get('Error', 'error')}: {str(error.get('Cause', ''))[:1000]}"


@dataclass(frozen=True)
class Runtime:
    """What a warm scheduler keeps between invocations (built once per cold start)."""

    settings: SchedulerSettings
    policy: Policy
    documents: DocumentStore
    state: SchedulerState
    sfn: StepFunctions
    breakers: BreakerStore
    continuations: SchedulerInvoker
    # The counters this container last read, per workflow (``Scheduler.last_read``): kept while it is warm
    last_read: dict[str, WorkflowCounters] = field(default_factory=dict)


@cold_start
def runtime() -> Runtime:
    settings = load_settings(SchedulerSettings)
    policy = policy_from_env_value(settings.policy_json)
    dynamodb = boto3.resource("dynamodb")
    return Runtime(
        settings=settings,
        policy=policy,
        documents=DocumentStore(boto3.client("s3"), settings.bucket),
        state=SchedulerState(dynamodb, settings.state_table),
        sfn=StepFunctions(
            boto3.client("stepfunctions"),
            settings.task_state_machine_arn,
            heartbeat_interval_seconds=policy.workflow_heartbeat_interval_seconds,
        ),
        breakers=BreakerStore(dynamodb, settings.state_table),
        continuations=SchedulerInvoker(
            boto3.client("lambda"), settings.scheduler_function, "handing the rest of a fan-out to the scheduler"
        ),
    )


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    rt = runtime()
    policy, documents, state, sfn, breakers = rt.policy, rt.documents, rt.state, rt.sfn, rt.breakers
    try:
        request = SchedulerEvent.model_validate(event)
    except ValidationError as exc:
        raise InvalidEventError.from_validation(exc, "scheduler event") from None
    logger.append_keys(workflow_id=request.workflow_id, task_id=request.task_id, action=request.action)
    scheduler = Scheduler(
        store=state,
        orchestrator=sfn,
        max_running=policy.max_running_tasks,
        continuations=rt.continuations,
        last_read=rt.last_read,
    )

    if request.action == "abort":
        return _abort(request, state, sfn)
    plan = load_plan(documents, request.plan_uri)
    if request.action == "start":
        assert request.task_token is not None  # checked by the model
        result = scheduler.start(plan, request.plan_uri, request.task_token)
    elif request.action == "task_succeeded":
        assert request.task_id is not None
        if request.capacity == "SPOT" and request.queue_name:
            breakers.apply(request.queue_name, lambda s, now: (None, breaker.record_success(s, now, policy.breaker)))
        result = scheduler.task_succeeded(plan, request.plan_uri, request.task_id)
    elif request.action == RESOLVE_DEPENDENTS:
        assert request.task_id is not None and request.offset is not None and request.run_tag is not None
        result = scheduler.resolve_dependents(plan, request.plan_uri, request.task_id, request.offset, request.run_tag)
    elif request.action == SKIP_DESCENDANTS:
        assert request.task_id is not None and request.offset is not None and request.run_tag is not None
        reason = request.reason or f"task {request.task_id} failed"
        result = scheduler.skip_descendants(
            plan, request.plan_uri, request.task_id, request.offset, request.run_tag, reason
        )
    elif request.action == START_REMAINING:
        assert request.after is not None and request.run_tag is not None
        result = scheduler.start_remaining(plan, request.plan_uri, request.after, request.run_tag)
    else:
        assert request.task_id is not None
        if request.execution_arn is not None and not _still_running(state, request):
            logger.info("report about an execution that is no longer the task's: ignored")
            return {"workflow_id": request.workflow_id, "task_id": request.task_id, "outcome": "stale"}
        result = scheduler.task_failed(plan, request.plan_uri, request.task_id, request.failure_text())
    logger.info(
        "scheduled",
        extra={"started": len(scheduler.started), "status": result["status"], "continued_at": scheduler.continued_at},
    )
    return result


def _still_running(state: SchedulerState, request: SchedulerEvent) -> bool:
    item = state.task(request.workflow_id, request.task_id or "")
    return item is not None and item.state == TaskState.RUNNING and item.execution_arn == request.execution_arn


def _abort(request: SchedulerEvent, state: SchedulerState, sfn: StepFunctions) -> dict[str, Any]:
    detail = f"orchestration failed: {request.failure_text()}"
    if state.mark_failed(request.workflow_id, detail):
        for arn in state.running_executions(request.workflow_id):
            sfn.stop_task(arn, cause=detail[:256])
    logger.warning("workflow aborted", extra={"detail": detail[:500]})
    return {"workflow_id": request.workflow_id, "status": "FAILED"}
