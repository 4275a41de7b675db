"""From a finished Batch job's event to the facts of its cost ledger entry. Pure.

The event detail is the job's DescribeJobs description: its last attempt names the ECS container instance
the job ran on (``attempts[-1].container.containerInstanceArn``, or ``taskProperties`` for newer events),
whose cluster is part of the ARN (``container-instance/<cluster>/<id>``).
"""

from __future__ import annotations

import json

from stepspot import failures
from stepspot.cost import ON_DEMAND, SPOT, AttemptRecord
from stepspot.events import BatchJobDetail
from stepspot.job_events import job_resources, spot_reclaimed_instance

ATTEMPT_VARIABLE = "STEPSPOT_ATTEMPT"  # fleet.job_environment sets it on every job


def container_instance_arn(detail: BatchJobDetail) -> str | None:
    for attempt in reversed(detail.attempts):
        if attempt.container is not None and attempt.container.container_instance_arn:
            return attempt.container.container_instance_arn
        for task in attempt.task_properties:
            if task.container_instance_arn:
                return task.container_instance_arn
    for container in detail.containers():
        if container.container_instance_arn:
            return container.container_instance_arn
    return None


def cluster_of(container_instance: str) -> str:
    """``arn:...:container-instance/<cluster>/<id>`` -> ``<cluster>`` (the long ARN format Batch uses)."""
    parts = container_instance.split(":", 5)[-1].split("/")
    if len(parts) != 3 or parts[0] != "container-instance":
        raise ValueError(f"{container_instance!r} is not a container instance ARN with its cluster name")
    return parts[1]


def _seconds(milliseconds: int | None) -> float | None:
    return None if milliseconds is None else milliseconds / 1000


def attempt_record(
    detail: BatchJobDetail,
    task_id: str,
    spot: bool,
    fallback: bool,
    last_checkpoint_at: float | None,
) -> AttemptRecord:
    """The ledger facts of a finished job (``SUCCEEDED`` or ``FAILED``)."""
    resources = job_resources(detail)
    last = detail.attempts[-1] if detail.attempts else None
    started = _seconds(last.started_at if last and last.started_at else detail.started_at)
    stopped = _seconds(last.stopped_at if last and last.stopped_at else detail.stopped_at)
    failure_class = None
    if detail.status == "FAILED":
        description = detail.model_dump(by_alias=True, exclude_none=True)
        failure_class = failures.classify("States.TaskFailed", json.dumps(description)).failure_class.value
    attempt = detail.environment().get(ATTEMPT_VARIABLE, "1")
    return AttemptRecord(
        task_id=task_id,
        attempt=int(attempt) if attempt.isdigit() else 1,
        job_id=detail.job_id,
        capacity=SPOT if spot else ON_DEMAND,
        status=detail.status,
        created_at=detail.created_at / 1000,
        started_at=started,
        stopped_at=stopped,
        vcpus=resources.vcpus,
        memory_mib=resources.memory_mib,
        nodes=resources.nodes,
        gpus=resources.gpus,
        fallback=fallback and not spot,
        reclaimed=spot_reclaimed_instance(detail) is not None,
        failure_class=failure_class,
        reason=detail.status_reason or "",
        last_checkpoint_at=last_checkpoint_at,
    )
