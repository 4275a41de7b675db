"""EventBridge -> Lambda: Batch Job State Change and Step Functions Execution Status Change.

Batch jobs of stepspot tasks (found through the job's ``STEPSPOT_WORKFLOW_ID``/``STEPSPOT_TASK_ID``
environment, or the ``JOB#<job id>`` index item):

- the task item gets ``job_id``, ``job_status``, ``job_status_reason``, ``job_status_at``, ``job_queue``,
  ``job_queue_kind``, ``job_attempts``, written only when newer than what it holds
  (``job_status_version``; events arrive out of order);
- a finished job counts ``TasksSucceeded`` or ``TasksFailed`` (also when its status is older than the
  task's: a later job of the task was seen first), the completed checkpoints registered since
  the last count (``CheckpointsSaved``), and for a Spot job ``EstimatedSpotSavingsUSD``;
- a task seen on both the Spot and the On-Demand queue counts ``FallbacksToOnDemand`` once;
- a finished job's run record (written by the task runner, ``stepspot.run_health``) gives the lost work of
  a Spot reclaim (``LostWorkSeconds``: from the last complete checkpoint, or the program's start, to the
  job's stop) and the time its restore took (``RestoreSeconds``); both are appended to the task item
  (``lost_work_seconds``, ``restore_seconds``) with ``checkpoint_empty``, once per job.

Step Functions executions: a workflow execution updates the workflow META item (``execution_*`` fields,
and ``status`` when it ends) and, when it ends, counts ``WorkflowsSucceeded``/``WorkflowsFailed`` and
publishes a notice (workflow, failed task, class of failure, console link). A task execution that does
not succeed is notified too (the ASL itself failed); if the scheduler still has that execution's task
RUNNING (its callback was lost: a callback state failed, or the execution was stopped, timed out or
aborted from outside), the monitor reports it to the scheduler as a task failure (an asynchronous
invocation of ``STEPSPOT_SCHEDULER_FUNCTION_ARN``; the scheduler ignores a report about an execution
that is no longer the task's), so the workflow never waits for an answer that cannot come.

Malformed events: one ERROR log line and a normal return (see interruption_handler for why). Idempotent
on the event id (``EVENT#<source>#<id>``), and each write is conditional on its own as well.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field

from stepspot import emf
from stepspot.agent_exit_codes import EXIT_SPOT_NOTICE
from stepspot.aws.cost_recorder import CostRecorder
from stepspot.aws.cost_sources import CostSources
from stepspot.aws.cost_store import CostStore, totals_from_item
from stepspot.aws.monitor_store import JobStatusWrite, MonitorStore, TaskRef
from stepspot.aws.scheduler_invoker import SchedulerInvoker
from stepspot.aws.sns import Notifier
from stepspot.cost import default_instance_prices
from stepspot.errors import MalformedEventError
from stepspot.estimate import PriceTable, default_prices
from stepspot.events import (
    TERMINAL_EXECUTION_STATUSES,
    BatchJobStateChange,
    ExecutionStatusChange,
    parse_monitor_event,
)
from stepspot.handlers._cache import cold_start
from stepspot.job_events import (
    TERMINAL_JOB_STATUSES,
    QueueKind,
    checkpointing_off,
    estimated_spot_savings_usd,
    execution_status_version,
    execution_target,
    job_status_version,
    queue_kind,
    resource_name,
    spot_reclaimed_instance,
    task_ids_from_environment,
)
from stepspot.metrics import DEFAULT_NAMESPACE, DIMENSION_ENVIRONMENT, DIMENSION_JOB_QUEUE, MetricName
from stepspot.notifications import task_execution_notice, workflow_notice
from stepspot.run_health import (
    CHECKPOINT_EMPTY,
    LOST_WORK_SECONDS,
    RESTORE_SECONDS,
    reclaim_lost_work,
    restore_seconds,
)
from stepspot.scheduler import TaskState
from stepspot.settings import LambdaSettings, load_settings
from stepspot.state_items import SK, Task, Workflow
from stepspot.state_keys import task_id_from_sk

logger = Logger()

_EXECUTION_CAUSE_LIMIT = 4000  # keeps the META item far below DynamoDB's 400 KB


class MonitorSettings(LambdaSettings):
    state_table: str = Field(alias="STEPSPOT_STATE_TABLE", min_length=3)
    checkpoint_table: str | None = Field(None, alias="STEPSPOT_CHECKPOINT_TABLE")
    environment: str = Field(alias="STEPSPOT_ENVIRONMENT", min_length=1)
    spot_queue: str | None = Field(None, alias="STEPSPOT_SPOT_QUEUE_ARN")
    ondemand_queue: str | None = Field(None, alias="STEPSPOT_ONDEMAND_QUEUE_ARN")
    # The GPU pair (Terraform gpu_enabled): their attempts count as Spot / On-Demand like the CPU pair's.
    gpu_spot_queue: str | None = Field(None, alias="STEPSPOT_GPU_SPOT_QUEUE_ARN")
    gpu_ondemand_queue: str | None = Field(None, alias="STEPSPOT_GPU_ONDEMAND_QUEUE_ARN")
    sns_topic_arn: str | None = Field(None, alias="STEPSPOT_SNS_TOPIC_ARN")
    region: str = Field("us-east-1", alias="AWS_REGION")
    namespace: str = Field(DEFAULT_NAMESPACE, alias="POWERTOOLS_METRICS_NAMESPACE")
    scheduler_function: str | None = Field(None, alias="STEPSPOT_SCHEDULER_FUNCTION_ARN")


@dataclass(frozen=True)
class Runtime:
    """What a warm workflow monitor keeps between invocations (built once per cold start)."""

    settings: MonitorSettings
    store: MonitorStore
    notifier: Notifier | None
    prices: PriceTable
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # Delivers a scheduler event (asynchronous Lambda invocation); None: no scheduler configured.
    report_to_scheduler: Callable[[dict[str, Any]], None] | None = None
    costs: CostRecorder | None = None  # the cost ledger (stepspot.cost); None: not kept


@cold_start
def runtime() -> Runtime:
    settings = load_settings(MonitorSettings)
    dynamodb = boto3.resource("dynamodb")
    checkpoints = dynamodb.Table(settings.checkpoint_table) if settings.checkpoint_table else None
    report = None
    if settings.scheduler_function:
        report = SchedulerInvoker(
            boto3.client("lambda"), settings.scheduler_function, "reporting a lost task execution to the scheduler"
        ).send
    return Runtime(
        settings=settings,
        store=MonitorStore(dynamodb.Table(settings.state_table), checkpoints),
        notifier=Notifier(boto3.client("sns"), settings.sns_topic_arn) if settings.sns_topic_arn else None,
        prices=default_prices(),
        report_to_scheduler=report,
        costs=CostRecorder(
            CostStore(dynamodb.Table(settings.state_table)),
            CostSources(boto3.client("ecs"), boto3.client("ec2"), default_instance_prices(), default_prices()),
            checkpoints,
        ),
    )


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    rt = runtime()
    try:
        parsed = parse_monitor_event(event)
    except MalformedEventError as exc:
        logger.error(exc.message, extra={"outcome": "rejected"})
        return {"outcome": "rejected", "reason": exc.message}
    logger.append_keys(event_id=parsed.id, detail_type=parsed.detail_type)
    return handle_event(parsed, rt)


def handle_event(event: BatchJobStateChange | ExecutionStatusChange, rt: Runtime) -> dict[str, Any]:
    pending: list[PendingMetric] = []
    if isinstance(event, BatchJobStateChange) and event.detail.status not in TERMINAL_JOB_STATUSES:
        # A non-terminal status counts nothing and is written only when newer than the item's (a write
        # conditional on the status version), so a redelivery or a late arrival changes nothing: no dedup
        # claim, which saves two of its three writes on most Batch events. The fallback it may record is
        # itself written once, conditionally.
        result = _job_event(event, rt, pending)
        _emit(pending, rt)
        return result
    if not rt.store.claim_event(event.source, event.id, rt.clock()):
        logger.info("Event already processed: redelivery ignored", extra={"outcome": "duplicate"})
        return {"outcome": "duplicate", "event_id": event.id}
    try:
        if isinstance(event, BatchJobStateChange):
            result = _job_event(event, rt, pending)
        else:
            result = _execution_event(event, rt, pending)
    except Exception:
        rt.store.release_event(event.source, event.id)
        raise
    rt.store.complete_event(event.source, event.id, result["outcome"])
    # Emitted only once everything above succeeded: a failed invocation is retried and counted then.
    _emit(pending, rt)
    return result


@dataclass(frozen=True)
class PendingMetric:
    name: MetricName
    value: float
    unit: str = MetricUnit.Count.value
    job_queue: str | None = None  # also emitted per queue (the dashboard's "by queue" widget)


def _emit(pending: list[PendingMetric], rt: Runtime) -> None:
    environment = {DIMENSION_ENVIRONMENT: rt.settings.environment}
    emf.emit(rt.settings.namespace, environment, [(m.name.value, m.unit, m.value) for m in pending])
    for metric in pending:
        if metric.job_queue:
            per_queue = {**environment, DIMENSION_JOB_QUEUE: metric.job_queue}
            emf.emit(rt.settings.namespace, per_queue, [(metric.name.value, metric.unit, metric.value)])


# ---------------------------------------------------------------------------------------------------
# Batch jobs
# ---------------------------------------------------------------------------------------------------


def _job_event(event: BatchJobStateChange, rt: Runtime, pending: list[PendingMetric]) -> dict[str, Any]:
    detail = event.detail
    logger.append_keys(job_id=detail.job_id, job_status=detail.status)
    base: dict[str, Any] = {"event_id": event.id, "job_id": detail.job_id, "status": detail.status}
    ids = task_ids_from_environment(detail.environment())
    task = TaskRef(ids.workflow_id, ids.task_id) if ids else rt.store.task_for_job(detail.job_id)
    if task is None:
        logger.info("Job is not a stepspot task: ignored", extra={"outcome": "not_stepspot_job"})
        return {**base, "outcome": "not_stepspot_job"}
    logger.append_keys(workflow_id=task.workflow_id, task_id=task.task_id)
    base.update(workflow_id=task.workflow_id, task_id=task.task_id)
    s = rt.settings
    kind = queue_kind(detail.job_queue, (s.spot_queue, s.gpu_spot_queue), (s.ondemand_queue, s.gpu_ondemand_queue))
    # One UpdateItem for the status and the queue flag (the flag alone when the status is stale): the flag
    # is set whatever the order of arrival, so a late Spot event still marks the fallback.
    written = rt.store.apply_job_status(
        task,
        JobStatusWrite(
            job_id=detail.job_id,
            status=detail.status,
            status_reason=detail.status_reason,
            version=job_status_version(detail),
            at=event.time,
            queue_name=resource_name(detail.job_queue),
            queue_kind=kind.value,
            attempts=len(detail.attempts),
        ),
    )
    applied, flags = written.applied, written.queue_flags
    fallback = False
    if (
        flags
        and flags.get(Task.SPOT_ATTEMPTED)
        and flags.get(Task.ONDEMAND_ATTEMPTED)
        and not flags.get(Task.FALLBACK_RECORDED_AT)
    ):
        fallback = rt.store.record_fallback(task, event.time)
        if fallback:
            pending.append(PendingMetric(MetricName.FALLBACKS_TO_ON_DEMAND, 1))
    if written.task_item is None and not rt.store.task_exists(task):
        logger.warning("Job of a task the state table does not know: ignored", extra={"outcome": "unknown_task"})
        return {**base, "outcome": "unknown_task"}

    # "stale" only means the task item holds a newer status (a later job, or a later state of this one).
    # A job's terminal event still happened once (the event id is deduplicated), so it is counted.
    outcome = "applied" if applied else "stale"
    result: dict[str, Any] = {**base, "outcome": outcome, "queue_kind": kind.value, "fallback_to_on_demand": fallback}
    if detail.status in TERMINAL_JOB_STATUSES:
        succeeded = detail.status == "SUCCEEDED"
        outcome_metric = MetricName.TASKS_SUCCEEDED if succeeded else MetricName.TASKS_FAILED
        pending.append(PendingMetric(outcome_metric, 1, job_queue=resource_name(detail.job_queue)))
        # A job of a task without checkpoints has none to count and no run record: two queries saved.
        checkpointed = not checkpointing_off(detail.environment())
        checkpoints = rt.store.count_new_checkpoints(task, written.task_item) if checkpointed else 0
        if checkpoints:
            pending.append(PendingMetric(MetricName.CHECKPOINTS_SAVED, checkpoints))
        result["checkpoints_saved"] = checkpoints
        if kind is QueueKind.SPOT:
            savings = round(estimated_spot_savings_usd(detail, rt.prices), 4)
            pending.append(PendingMetric(MetricName.ESTIMATED_SPOT_SAVINGS_USD, savings, MetricUnit.NoUnit.value))
            result["estimated_spot_savings_usd"] = savings
        reclaimed = spot_reclaimed_instance(detail)
        if reclaimed:
            result["spot_reclaimed_instance"] = reclaimed
        if checkpointed:
            result.update(_run_health(task, detail, reclaimed is not None, rt, pending))
        if rt.costs is not None:
            _record_cost(rt.costs, task, event, kind, flags, result)
    logger.info("Job status handled", extra={"outcome": outcome, "queue_kind": kind.value})
    return result


def _run_health(
    task: TaskRef, detail: Any, reclaimed: bool, rt: Runtime, pending: list[PendingMetric]
) -> dict[str, Any]:
    """Lost work (a reclaimed job) and restore time from the runner's run record; counted once per job."""
    run = rt.store.run_record(task, detail.job_id)
    if run is None:
        return {}
    last = detail.attempts[-1] if detail.attempts else None
    exit_code = last.container.exit_code if last is not None and last.container is not None else None
    stopped_ms = (last.stopped_at if last is not None else None) or detail.stopped_at
    # Exit 79: the runner stopped on a Spot notice and outlived the program (the classifier's reclaim too).
    lost = None
    if (reclaimed or exit_code == EXIT_SPOT_NOTICE) and stopped_ms:
        lost = reclaim_lost_work(run, stopped_ms / 1000.0)
    restore = restore_seconds(run)
    empty = bool(run.get(CHECKPOINT_EMPTY))
    if not rt.store.record_run_health(task, detail.job_id, lost, restore, empty):
        return {}
    if lost is not None:
        pending.append(PendingMetric(MetricName.LOST_WORK_SECONDS, lost, MetricUnit.Seconds.value))
    if restore is not None:
        pending.append(PendingMetric(MetricName.RESTORE_SECONDS, restore, MetricUnit.Seconds.value))
    return {LOST_WORK_SECONDS: lost, RESTORE_SECONDS: restore, CHECKPOINT_EMPTY: empty}


def _record_cost(
    costs: CostRecorder,
    task: TaskRef,
    event: BatchJobStateChange,
    kind: QueueKind,
    flags: Any,
    result: dict[str, Any],
) -> None:
    spot = kind is QueueKind.SPOT
    fallback = bool(flags and flags.get(Task.SPOT_ATTEMPTED)) and not spot
    outcome = costs.record(task.workflow_id, task.task_id, event.detail, spot=spot, fallback=fallback)
    if outcome.entry is None:
        logger.warning("Attempt left out of the cost ledger", extra={"reason": outcome.skipped_because})
        result["cost_skipped"] = outcome.skipped_because
        return
    result["cost_usd"] = round(outcome.entry.cost_usd, 6)
    result["cost_recorded"] = outcome.recorded


# ---------------------------------------------------------------------------------------------------
# Step Functions executions
# ---------------------------------------------------------------------------------------------------

ABNORMAL_EXECUTION_STATUSES = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})


def _report_lost_task(detail: Any, workflow_id: str, task_id: str, rt: Runtime) -> bool:
    """Tell the scheduler that a task execution it still counts as running has ended abnormally."""
    if rt.report_to_scheduler is None:
        return False
    item = rt.store.task_item(TaskRef(workflow_id, task_id))
    if not item or item.get(Task.STATE) != TaskState.RUNNING or item.get(Task.EXECUTION_ARN) != detail.execution_arn:
        return False  # the scheduler heard the outcome (or this is an older execution of the task)
    plan_uri = detail.input_object().get("plan_uri")
    if not isinstance(plan_uri, str):
        logger.warning("Task execution input has no plan_uri: cannot report it", extra={"outcome": "unreported"})
        return False
    rt.report_to_scheduler(
        {
            "action": "task_failed",
            "workflow_id": workflow_id,
            "task_id": task_id,
            "plan_uri": plan_uri,
            "failure_class": "orchestration",
            "reason": f"its task execution ended {detail.status} without reporting to the scheduler"
            + (f" ({detail.error}: {str(detail.cause or '')[:500]})" if detail.error else ""),
            "execution_arn": detail.execution_arn,
        }
    )
    logger.warning("Lost task execution reported to the scheduler", extra={"outcome": "reported"})
    return True


def _execution_event(event: ExecutionStatusChange, rt: Runtime, pending: list[PendingMetric]) -> dict[str, Any]:
    detail = event.detail
    target = execution_target(detail)
    logger.append_keys(execution_arn=detail.execution_arn, workflow_id=target.workflow_id, status=detail.status)
    base: dict[str, Any] = {
        "event_id": event.id,
        "execution_arn": detail.execution_arn,
        "status": detail.status,
        "workflow_id": target.workflow_id,
        "kind": target.kind,
    }
    terminal = detail.status in TERMINAL_EXECUTION_STATUSES
    region = event.region or rt.settings.region

    if target.kind == "task":
        base["task_id"] = target.task_id
        if detail.status in ABNORMAL_EXECUTION_STATUSES:
            base["reported_to_scheduler"] = _report_lost_task(detail, target.workflow_id, target.task_id or "", rt)
        if detail.status in ABNORMAL_EXECUTION_STATUSES and rt.notifier is not None:
            notice = task_execution_notice(
                detail,
                workflow_id=target.workflow_id,
                task_id=target.task_id or "",
                environment=rt.settings.environment,
                region=region,
            )
            rt.notifier.publish(notice.subject, notice.message, notice.attributes)
            return {**base, "outcome": "notified"}
        return {**base, "outcome": "ignored"}

    fields: dict[str, Any] = {
        Workflow.EXECUTION_ARN: detail.execution_arn,
        Workflow.EXECUTION_STATUS: detail.status,
        Workflow.EXECUTION_STARTED_AT: detail.start_date,
    }
    if detail.stop_date is not None:
        fields[Workflow.EXECUTION_STOPPED_AT] = detail.stop_date
    if detail.error:
        fields[Workflow.EXECUTION_ERROR] = detail.error
    if detail.cause:
        fields[Workflow.EXECUTION_CAUSE] = detail.cause[:_EXECUTION_CAUSE_LIMIT]
    workflow = rt.store.apply_execution_status(
        target.workflow_id, fields, execution_status_version(detail), detail.status if terminal else None
    )
    if workflow is None:
        existing = rt.store.workflow(target.workflow_id)
        if existing is not None:
            logger.info("Older or repeated execution status: not applied", extra={"outcome": "stale"})
            return {**base, "outcome": "stale"}
        # No META item: the workflow failed before (or while) being registered. Still worth an alert.
        logger.warning("Execution of a workflow that has no META item", extra={"outcome": "unregistered"})
    if not terminal:
        return {**base, "outcome": "applied" if workflow is not None else "unregistered"}

    succeeded = detail.status == "SUCCEEDED"
    pending.append(PendingMetric(MetricName.WORKFLOWS_SUCCEEDED if succeeded else MetricName.WORKFLOWS_FAILED, 1))
    cost = totals_from_item(workflow or {})
    if cost.attempts:  # no ledger (e.g. local mode, or no job ran): no cost figures rather than zeros
        for name, value in (
            (MetricName.WORKFLOW_COST_USD, cost.total_usd),
            (MetricName.WORKFLOW_SPOT_SAVINGS_USD, cost.savings_usd),
            (MetricName.WORKFLOW_LOST_TO_RECLAIMS_USD, cost.lost_usd),
        ):
            pending.append(PendingMetric(name, round(value, 6), MetricUnit.NoUnit.value))
    failed_tasks = [] if succeeded or workflow is None else rt.store.failed_tasks(target.workflow_id)
    notified = False
    if rt.notifier is not None:
        notice = workflow_notice(
            detail,
            workflow_id=target.workflow_id,
            environment=rt.settings.environment,
            region=region,
            workflow=workflow,
            failed_tasks=failed_tasks,
        )
        rt.notifier.publish(notice.subject, notice.message, notice.attributes)
        notified = True
    logger.info("Workflow execution ended", extra={"outcome": "applied", "notified": notified})
    return {
        **base,
        "outcome": "applied" if workflow is not None else "unregistered",
        "notified": notified,
        "failed_tasks": [task_id_from_sk(str(t[SK])) for t in failed_tasks],
    }
