"""Capacity choice for one task attempt and the Batch submission it leads to. Pure.

Order of precedence: multi-node tasks always run On-Demand with the multi-node parallel definition
(Batch cannot run MNP jobs on Spot); tasks not allowed on Spot run On-Demand; a task the failure
policy moved to On-Demand stays there; otherwise the Spot queue's circuit breaker decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from stepspot.breaker import Admission

DEFAULT_TIMEOUT_SECONDS = 14 * 86_400  # no timeout in the definition: Batch's own maximum applies
CHECKPOINT_DIR_IN_CONTAINER = "/scratch/stepspot/checkpoint"
# Cost allocation tags on every Batch job, propagated to its ECS task (Cost Explorer groups by them).
TAG_WORKFLOW, TAG_TASK, TAG_ATTEMPT, TAG_ENVIRONMENT = (
    "stepspot:workflow",
    "stepspot:task",
    "stepspot:attempt",
    "stepspot:environment",
)
TAG_VALUE_LIMIT = 256  # Batch/ECS tag values: at most 256 characters


class Capacity(StrEnum):
    SPOT = "SPOT"
    ON_DEMAND = "ON_DEMAND"


@dataclass(frozen=True)
class CapacityChoice:
    capacity: Capacity
    reason: str
    needs_breaker: bool = False  # the Spot queue's breaker must be consulted
    fallback: bool = False  # a task that wanted Spot runs On-Demand


def preliminary_choice(multi_node: bool, use_spot: bool, on_demand_requested: bool) -> CapacityChoice:
    if multi_node:
        return CapacityChoice(Capacity.ON_DEMAND, "multi-node parallel jobs cannot run on Spot")
    if not use_spot:
        return CapacityChoice(Capacity.ON_DEMAND, "the task does not allow Spot")
    if on_demand_requested:
        return CapacityChoice(Capacity.ON_DEMAND, "moved to On-Demand after Spot failures", fallback=True)
    return CapacityChoice(Capacity.SPOT, "Spot first", needs_breaker=True)


def apply_breaker(admission: Admission) -> CapacityChoice:
    if admission is Admission.SPOT:
        return CapacityChoice(Capacity.SPOT, "Spot (breaker closed)")
    if admission is Admission.TRIAL:
        return CapacityChoice(Capacity.SPOT, "Spot trial (breaker half-open)")
    return CapacityChoice(Capacity.ON_DEMAND, "Spot breaker open", fallback=True)


def agent_command(command: list[str], checkpoint_enabled: bool) -> list[str]:
    """The container command: the task's own, wrapped by the checkpoint agent when checkpointing."""
    return ["stepspot-agent", "run", "--", *command] if checkpoint_enabled else list(command)


def job_environment(workflow_id: str, task: Any, attempt: int, capacity: Capacity) -> list[dict[str, str]]:
    env = {str(k): str(v) for k, v in (task.environment or {}).items()}
    env.update(
        {
            "STEPSPOT_WORKFLOW_ID": workflow_id,
            "STEPSPOT_TASK_ID": task.id,
            "STEPSPOT_ATTEMPT": str(attempt),
            "STEPSPOT_CAPACITY": capacity.value,
            "STEPSPOT_CHECKPOINT_INTERVAL": str(task.checkpoint_interval),
            "STEPSPOT_CHECKPOINT_DIR": CHECKPOINT_DIR_IN_CONTAINER,
        }
    )
    return [{"Name": k, "Value": v} for k, v in sorted(env.items())]


def resource_requirements(task: Any) -> list[dict[str, str]]:
    requirements = [{"Type": "VCPU", "Value": str(task.vcpus)}, {"Type": "MEMORY", "Value": str(task.memory)}]
    if task.gpus:
        requirements.append({"Type": "GPU", "Value": str(task.gpus)})
    return requirements


def job_tags(workflow_id: str, task_id: str, attempt: int, environment: str) -> dict[str, str]:
    """The tags of one attempt's Batch job (``SubmitJob`` ``tags``; ``propagateTags`` copies them)."""
    tags = {TAG_WORKFLOW: workflow_id, TAG_TASK: task_id, TAG_ATTEMPT: str(attempt), TAG_ENVIRONMENT: environment}
    return {key: value[:TAG_VALUE_LIMIT] for key, value in tags.items()}


def job_request(
    *,
    workflow_id: str,
    environment: str,
    task: Any,
    attempt: int,
    choice: CapacityChoice,
    queue_arn: str,
    queue_name: str,
    job_definition_arn: str,
    job_name: str,
) -> dict[str, Any]:
    """What ChooseCapacity returns (``$.job`` in the task state machine): small and flat."""
    container = {
        "Command": agent_command(list(task.command), task.checkpoint_enabled),
        "Environment": job_environment(workflow_id, task, attempt, choice.capacity),
        "ResourceRequirements": resource_requirements(task),
    }
    request: dict[str, Any] = {
        "job_name": job_name,
        "queue_arn": queue_arn,
        "queue_name": queue_name,
        "capacity": choice.capacity.value,
        "reason": choice.reason,
        "fallback": choice.fallback,
        "job_definition_arn": job_definition_arn,
        "multi_node": bool(task.multi_node),
        "timeout_seconds": int(task.timeout_seconds or DEFAULT_TIMEOUT_SECONDS),
        "tags": job_tags(workflow_id, task.id, attempt, environment),
    }
    if task.multi_node:
        request["node_overrides"] = {
            "NumNodes": int(task.nodes),
            "NodePropertyOverrides": [{"TargetNodes": "0:", "ContainerOverrides": container}],
        }
    else:
        request["container_overrides"] = container
    return request
