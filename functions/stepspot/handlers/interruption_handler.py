"""EventBridge -> Lambda: EC2 Spot Instance Interruption Warning and EC2 Instance Rebalance Recommendation.

Finds the Batch jobs on exactly the instance the notice names (compute environment -> ECS cluster ->
container instance -> its tasks -> Batch job ids -> stepspot tasks), records the notice on those tasks'
items, counts ``SpotInterruptions`` / ``RebalanceRecommendations`` per instance type and zone, and sends an
SNS notice for interruption warnings that hit stepspot tasks.

Outcomes (the returned ``outcome``): ``recorded``, ``no_stepspot_jobs`` (our instance, none of our jobs),
``not_stepspot_instance`` (the account's other Spot instances reach the same rule), ``duplicate`` and
``rejected``.

Malformed events are rejected with one ERROR log line and a normal return, not an exception: an
exception makes EventBridge/Lambda retry an event that can never succeed, and the retries would hide real
failures in the ``Errors`` metric. AWS faults (throttling, denied permission, missing compute
environment) do raise, after releasing the dedup claim, so the retry processes the event.

Idempotency is a conditional put of ``EVENT#aws.ec2#<event id>`` in the state table (with TTL) rather
than Powertools' idempotency utility: the key grammar is the contract's (readable next to the task
items, one table, one TTL attribute), and a redelivery must do nothing at all rather than replay a
stored response. Recording on a task item is guarded per event id too, so a retry after a partial
failure does not count a notice twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from pydantic import Field

from stepspot import emf
from stepspot.aws.batch_inventory import BatchInventory
from stepspot.aws.ecs import ContainerInstance, EcsInventory
from stepspot.aws.monitor_store import MonitorStore, Notice, TaskRef
from stepspot.aws.sns import Notifier
from stepspot.errors import ConfigurationError, MalformedEventError
from stepspot.events import RebalanceRecommendation, SpotInterruptionWarning, parse_instance_notice
from stepspot.handlers._cache import cold_start
from stepspot.job_events import parent_job_id, task_ids_from_environment
from stepspot.metrics import (
    DEFAULT_NAMESPACE,
    DIMENSION_AVAILABILITY_ZONE,
    DIMENSION_ENVIRONMENT,
    DIMENSION_INSTANCE_TYPE,
    UNKNOWN_DIMENSION_VALUE,
    MetricName,
)
from stepspot.notifications import AffectedTask, interruption_notice
from stepspot.settings import LambdaSettings, load_settings

logger = Logger()

EVENT_SOURCE = "aws.ec2"


class InterruptionSettings(LambdaSettings):
    state_table: str = Field(alias="STEPSPOT_STATE_TABLE", min_length=3)
    # One or more compute environment names (or ARNs), comma-separated.
    spot_compute_env: str = Field(alias="STEPSPOT_SPOT_COMPUTE_ENV", pattern=r"[^,\s]")
    environment: str = Field(alias="STEPSPOT_ENVIRONMENT", min_length=1)
    sns_topic_arn: str | None = Field(None, alias="STEPSPOT_SNS_TOPIC_ARN")
    namespace: str = Field(DEFAULT_NAMESPACE, alias="POWERTOOLS_METRICS_NAMESPACE")

    @property
    def spot_compute_environments(self) -> tuple[str, ...]:
        return tuple(name.strip() for name in self.spot_compute_env.split(",") if name.strip())


@dataclass
class Runtime:
    settings: InterruptionSettings
    store: MonitorStore
    ecs: EcsInventory
    batch: BatchInventory
    notifier: Notifier | None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    cluster_cache: dict[str, str] = field(default_factory=dict)


@cold_start
def runtime() -> Runtime:
    """Built once per container (cold start): settings checked, clients created."""
    settings = load_settings(InterruptionSettings)
    return Runtime(
        settings=settings,
        store=MonitorStore(boto3.resource("dynamodb").Table(settings.state_table)),
        ecs=EcsInventory(boto3.client("ecs")),
        batch=BatchInventory(boto3.client("batch")),
        notifier=Notifier(boto3.client("sns"), settings.sns_topic_arn) if settings.sns_topic_arn else None,
    )


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    logger.clear_state()  # keys appended for the previous event must not leak into this one's logs
    rt = runtime()
    try:
        notice = parse_instance_notice(event)
    except MalformedEventError as exc:
        logger.error(exc.message, extra={"outcome": "rejected"})
        return {"outcome": "rejected", "reason": exc.message}
    logger.append_keys(event_id=notice.id, instance_id=notice.instance_id, notice_kind=notice.notice_kind)
    return handle_notice(notice, rt)


def handle_notice(notice: SpotInterruptionWarning | RebalanceRecommendation, rt: Runtime) -> dict[str, Any]:
    if not rt.store.claim_event(EVENT_SOURCE, notice.id, rt.clock()):
        logger.info("Event already processed: redelivery ignored", extra={"outcome": "duplicate"})
        return {"outcome": "duplicate", "event_id": notice.id, "instance_id": notice.instance_id}
    try:
        result = _process(notice, rt)
    except Exception:
        rt.store.release_event(EVENT_SOURCE, notice.id)
        raise
    rt.store.complete_event(EVENT_SOURCE, notice.id, result["outcome"])
    return result


def _clusters(rt: Runtime) -> dict[str, str]:
    wanted = [n for n in rt.settings.spot_compute_environments if n not in rt.cluster_cache]
    if wanted:
        rt.cluster_cache.update(rt.batch.ecs_cluster_arns(wanted))
        still_missing = [n for n in wanted if n not in rt.cluster_cache]
        if still_missing:
            raise ConfigurationError(
                f"Spot compute environment(s) {', '.join(still_missing)} named by STEPSPOT_SPOT_COMPUTE_ENV "
                "do not exist or have no ECS cluster yet: fix the variable or deploy the compute module.",
                missing=still_missing,
            )
    return {n: rt.cluster_cache[n] for n in rt.settings.spot_compute_environments}


def _locate(
    notice: SpotInterruptionWarning | RebalanceRecommendation, rt: Runtime
) -> tuple[str, str, ContainerInstance] | None:
    for compute_env, cluster_arn in _clusters(rt).items():
        found = rt.ecs.container_instance(cluster_arn, notice.instance_id)
        if found is not None:
            return compute_env, cluster_arn, found
    return None


def _tasks_of(job_ids: list[str], rt: Runtime) -> tuple[list[AffectedTask], list[str]]:
    """Map job ids to stepspot tasks: the JOB# index first, the job's own environment as the fallback."""
    affected: list[AffectedTask] = []
    unresolved: list[str] = []
    for job_id in job_ids:
        ref = rt.store.task_for_job(parent_job_id(job_id))
        if ref is None:
            unresolved.append(job_id)
        else:
            affected.append(AffectedTask(ref.workflow_id, ref.task_id, job_id))
    unmatched: list[str] = []
    if unresolved:
        environments = rt.batch.job_environments(unresolved)
        for job_id in unresolved:
            ids = task_ids_from_environment(environments.get(job_id, {}))
            if ids is None:
                unmatched.append(job_id)
            else:
                affected.append(AffectedTask(ids.workflow_id, ids.task_id, job_id))
    return affected, unmatched


def _count(name: MetricName, rt: Runtime, instance: ContainerInstance) -> None:
    # Two series: the total per environment (alarms need fixed dimensions) and the breakdown per
    # instance type and zone (the dashboard shows it with a SEARCH expression).
    value = [(name.value, MetricUnit.Count.value, 1.0)]
    environment = {DIMENSION_ENVIRONMENT: rt.settings.environment}
    emf.emit(rt.settings.namespace, environment, value)
    breakdown = {
        **environment,
        DIMENSION_INSTANCE_TYPE: instance.instance_type or UNKNOWN_DIMENSION_VALUE,
        DIMENSION_AVAILABILITY_ZONE: instance.availability_zone or UNKNOWN_DIMENSION_VALUE,
    }
    emf.emit(rt.settings.namespace, breakdown, value)


def _process(notice: SpotInterruptionWarning | RebalanceRecommendation, rt: Runtime) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": notice.id,
        "instance_id": notice.instance_id,
        "notice": notice.notice_kind,
    }
    located = _locate(notice, rt)
    if located is None:
        logger.info(
            "Instance is in none of stepspot's Spot compute environments: nothing to record",
            extra={
                "outcome": "not_stepspot_instance",
                "compute_environments": rt.settings.spot_compute_environments,
            },
        )
        return {**base, "outcome": "not_stepspot_instance"}
    compute_env, cluster_arn, instance = located
    instance_type = instance.instance_type or UNKNOWN_DIMENSION_VALUE
    zone = instance.availability_zone or UNKNOWN_DIMENSION_VALUE
    base.update(compute_environment=compute_env, instance_type=instance_type, availability_zone=zone)
    is_warning = isinstance(notice, SpotInterruptionWarning)
    metric = MetricName.SPOT_INTERRUPTIONS if is_warning else MetricName.REBALANCE_RECOMMENDATIONS

    job_ids = rt.ecs.batch_job_ids(cluster_arn, instance.arn)
    affected, unmatched = _tasks_of(job_ids, rt)
    action = notice.detail.instance_action if isinstance(notice, SpotInterruptionWarning) else None
    recorded: list[dict[str, Any]] = []
    for task in affected:
        applied = rt.store.record_notice(
            TaskRef(task.workflow_id, task.task_id),
            Notice(
                event_id=notice.id,
                kind=notice.notice_kind,
                instance_id=notice.instance_id,
                instance_action=action,
                at=notice.time,
                job_id=task.job_id,
            ),
        )
        recorded.append(
            {
                "workflow_id": task.workflow_id,
                "task_id": task.task_id,
                "job_id": task.job_id,
                "recorded": applied,
            }
        )
        if not applied:
            logger.warning(
                "Task item missing or notice already recorded",
                extra={"workflow_id": task.workflow_id, "task_id": task.task_id, "job_id": task.job_id},
            )
    if unmatched:
        logger.info("Jobs on the instance that are not stepspot tasks", extra={"job_ids": unmatched})
    if not affected:
        logger.info("Instance runs none of stepspot's jobs", extra={"outcome": "no_stepspot_jobs", "job_ids": job_ids})
        _count(metric, rt, instance)
        return {**base, "outcome": "no_stepspot_jobs", "tasks": [], "other_jobs": unmatched}

    if is_warning and rt.notifier is not None:
        message = interruption_notice(
            kind=notice.notice_kind,
            instance_id=notice.instance_id,
            instance_action=action,
            instance_type=instance_type,
            availability_zone=zone,
            compute_environment=compute_env,
            environment=rt.settings.environment,
            tasks=affected,
        )
        rt.notifier.publish(message.subject, message.message, message.attributes)
    # Counted last: when anything above fails the event is retried, and counted once then.
    _count(metric, rt, instance)
    logger.info(
        "Notice recorded on the tasks of the instance",
        extra={"outcome": "recorded", "tasks": [f"{t.workflow_id}/{t.task_id}" for t in affected]},
    )
    return {**base, "outcome": "recorded", "tasks": recorded, "other_jobs": unmatched}
