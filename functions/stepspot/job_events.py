"""What a Batch or Step Functions status event means for stepspot (pure: no AWS calls, no environment).

Ordering. EventBridge does not guarantee order, so every status carries a version string that sorts
like the real sequence of states, and the store only accepts a growing version:

- Batch job: ``<createdAt ms, 15 digits>#<finished attempts, 3 digits>#<status rank>``. A task's later
  job (a Step Functions retry or the On-Demand fallback submits a new job) was created later; within a
  job, Batch's own retries add an attempt (RUNNING of attempt 1 < RUNNABLE of attempt 2); within an
  attempt the status rank follows SUBMITTED < PENDING < RUNNABLE < STARTING < RUNNING < SUCCEEDED/FAILED.
- Step Functions execution: ``<startDate ms>#<redriveCount>#<rank>`` with RUNNING < PENDING_REDRIVE <
  terminal, so a redriven execution's new RUNNING wins over its old FAILED.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from stepspot.estimate import PriceTable, task_cost
from stepspot.events import BatchJobDetail, ExecutionStatusDetail
from stepspot.job_environment import CHECKPOINT_ENABLED_VARIABLE, TASK_ID_VARIABLE, WORKFLOW_ID_VARIABLE

SPOT_RECLAIM_REASON = re.compile(r"Host EC2 \(instance (i-[0-9a-f]+)\) terminated")

_JOB_STATUS_RANK = {
    "SUBMITTED": 0,
    "PENDING": 1,
    "RUNNABLE": 2,
    "STARTING": 3,
    "RUNNING": 4,
    "SUCCEEDED": 5,
    "FAILED": 5,
}
TERMINAL_JOB_STATUSES = frozenset({"SUCCEEDED", "FAILED"})

_EXECUTION_STATUS_RANK = {"RUNNING": 0, "PENDING_REDRIVE": 1}
_TERMINAL_EXECUTION_RANK = 2


class QueueKind(StrEnum):
    SPOT = "SPOT"
    ON_DEMAND = "ON_DEMAND"
    OTHER = "OTHER"


@dataclass(frozen=True)
class TaskIds:
    workflow_id: str
    task_id: str


def resource_name(arn_or_name: str) -> str:
    """``arn:aws:batch:...:job-queue/name`` -> ``name`` (a bare name is returned as it is)."""
    return arn_or_name.rsplit("/", 1)[-1]


def queue_kind(
    job_queue: str, spot_queues: tuple[str | None, ...], ondemand_queues: tuple[str | None, ...]
) -> QueueKind:
    """Which kind of stepspot's queues a job ran on (the CPU and the GPU pair); names or ARNs, None: absent."""
    name = resource_name(job_queue)
    if any(q and name == resource_name(q) for q in spot_queues):
        return QueueKind.SPOT
    if any(q and name == resource_name(q) for q in ondemand_queues):
        return QueueKind.ON_DEMAND
    return QueueKind.OTHER


def task_ids_from_environment(environment: Mapping[str, str]) -> TaskIds | None:
    """The stepspot task a job runs, from the environment stepspot gives every job (docs/contracts.md)."""
    workflow_id = environment.get(WORKFLOW_ID_VARIABLE, "").strip()
    task_id = environment.get(TASK_ID_VARIABLE, "").strip()
    if workflow_id and task_id:
        return TaskIds(workflow_id, task_id)
    return None


def checkpointing_off(environment: Mapping[str, str]) -> bool:
    """Whether the job's environment says its task saves no checkpoints (then its runner keeps no run record
    either). A job whose environment the event lacks is not known to be off."""
    return environment.get(CHECKPOINT_ENABLED_VARIABLE) == "false"


def parent_job_id(job_id: str) -> str:
    """``<id>#<node>`` (multi-node) and ``<id>:<index>`` (array child) -> ``<id>``."""
    return re.split(r"[#:]", job_id, maxsplit=1)[0]


def job_status_version(detail: BatchJobDetail) -> str:
    rank = _JOB_STATUS_RANK[detail.status]
    return f"{detail.created_at:015d}#{len(detail.attempts):03d}#{rank}"


def execution_status_version(detail: ExecutionStatusDetail) -> str:
    rank = _EXECUTION_STATUS_RANK.get(detail.status, _TERMINAL_EXECUTION_RANK)
    return f"{detail.start_date:015d}#{detail.redrive_count:03d}#{rank}"


def spot_reclaimed_instance(detail: BatchJobDetail) -> str | None:
    """The instance id when the job's last attempt ended because Spot reclaimed its host."""
    reasons = [detail.status_reason or ""]
    if detail.attempts:
        last = detail.attempts[-1]
        reasons.append(last.status_reason or "")
        if last.container is not None:
            reasons.append(last.container.reason or "")
    for reason in reasons:
        match = SPOT_RECLAIM_REASON.search(reason)
        if match:
            return match.group(1)
    return None


@dataclass(frozen=True)
class JobResources:
    vcpus: int
    memory_mib: int
    gpus: int
    nodes: int


def job_resources(detail: BatchJobDetail) -> JobResources:
    """vCPUs, memory and GPUs per node (summed over a task's containers) and the node count."""
    containers = detail.containers()
    if detail.node_properties is not None and containers:
        containers = containers[:1]  # the main node's range describes every node of a stepspot MNP job
    vcpus = memory = gpus = 0
    for container in containers:
        requirements = {r.type.upper(): r.value for r in container.resource_requirements}
        vcpus += int(float(requirements.get("VCPU", container.vcpus or 0)))
        memory += int(float(requirements.get("MEMORY", container.memory or 0)))
        gpus += int(float(requirements.get("GPU", 0)))
    return JobResources(vcpus=vcpus, memory_mib=memory, gpus=gpus, nodes=detail.node_count)


def run_seconds(detail: BatchJobDetail) -> float:
    """Compute time the job used: every attempt's start to stop (or the job's, when attempts are missing)."""
    total_ms = 0
    for attempt in detail.attempts:
        if attempt.started_at is not None and attempt.stopped_at is not None:
            total_ms += max(0, attempt.stopped_at - attempt.started_at)
    if total_ms == 0 and detail.started_at is not None and detail.stopped_at is not None:
        total_ms = max(0, detail.stopped_at - detail.started_at)
    return total_ms / 1000


def estimated_spot_savings_usd(detail: BatchJobDetail, prices: PriceTable) -> float:
    """On-Demand minus Spot price of the compute a finished Spot job used (estimate.py's fitted rates)."""
    resources = job_resources(detail)
    cost = task_cost(
        run_seconds(detail),
        resources.vcpus,
        resources.memory_mib,
        resources.gpus,
        resources.nodes,
        use_spot=True,
        prices=prices,
    )
    return max(0.0, cost.on_demand_usd - cost.planned_usd)


@dataclass(frozen=True)
class ExecutionTarget:
    kind: str  # "workflow" | "task"
    workflow_id: str
    task_id: str | None


def execution_target(detail: ExecutionStatusDetail) -> ExecutionTarget:
    """Whether an execution runs a workflow or one task, from its input (or its name as the workflow id).

    Both state machines carry ``workflow_id`` at the top of their input, the task state machine also
    ``task_id`` (docs/contracts.md). When the input was left out of the event (over 256 KiB), the
    execution name is the workflow id, as the CLI names workflow executions.
    """
    payload = detail.input_object()
    workflow_id = payload.get("workflow_id")
    task_id = payload.get("task_id")
    if isinstance(workflow_id, str) and workflow_id:
        if isinstance(task_id, str) and task_id:
            return ExecutionTarget("task", workflow_id, task_id)
        return ExecutionTarget("workflow", workflow_id, None)
    return ExecutionTarget("workflow", detail.name, None)
