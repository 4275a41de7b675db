"""Capacity choice for one task attempt and the Batch submission it leads to. Pure.

Order of precedence: multi-node tasks always run On-Demand with the multi-node parallel definition
(Batch cannot run MNP jobs on Spot); tasks not allowed on Spot run On-Demand; a task the failure
policy moved to On-Demand stays there; otherwise the Spot queue's circuit breaker decides.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from stepspot.agent_exit_codes import EXIT_MISCONFIGURATION
from stepspot.breaker import Admission
from stepspot.build_info import VERSION_ENV, deployment_version

DEFAULT_TIMEOUT_SECONDS = 14 * 86_400  # no timeout in the definition: Batch's own maximum applies
CHECKPOINT_DIR_IN_CONTAINER = "/scratch/stepspot/checkpoint"
# The task runner bundle (make build), installed on every Batch host by the launch template and mounted
# read-only into every container; SHIV_ROOT is where it unpacks (the container's HOME may not be writable).
AGENT_BUNDLE_IN_CONTAINER = "/opt/stepspot/stepspot-agent.pyz"
SHIV_ROOT_IN_CONTAINER = "/tmp/stepspot-shiv"
# The container command runs the bundle with the image's own python3 through `sh -c`, so that an image
# without python3 (or a host without the bundle) ends the first attempt with EXIT_MISCONFIGURATION and a
# sentence in the job log, instead of a CannotStartContainerError retried as an infrastructure failure.
# The bundle's __main__ refuses a python3 older than 3.9 the same way.
RUNNER_SCRIPT = (
    'command -v python3 >/dev/null 2>&1 || { echo "stepspot: the image has no python3 on its PATH; the task runner '
    'needs python3 >= 3.9 in the image: install it or use an image that has it" >&2; '
    f"exit {EXIT_MISCONFIGURATION}; }}; "
    f'[ -r {AGENT_BUNDLE_IN_CONTAINER} ] || {{ echo "stepspot: {AGENT_BUNDLE_IN_CONTAINER} is missing on this host: '
    "the launch template did not install the task runner (see the instance's cloud-init log)\" >&2; "
    f"exit {EXIT_MISCONFIGURATION}; }}; "
    f'exec python3 -I {AGENT_BUNDLE_IN_CONTAINER} run -- "$@"'
)
RUNNER_SHELL_NAME = "stepspot"  # $0 of the script: the shell's own messages start with it


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


def agent_command(command: list[str], wrapped: bool) -> list[str]:
    """The container command: the task's own, run by the task runner bundle when ``wrapped``."""
    return ["/bin/sh", "-c", RUNNER_SCRIPT, RUNNER_SHELL_NAME, *command] if wrapped else list(command)


def runner_program(container_command: list[str]) -> list[str] | None:
    """The task's own command inside a container command made by ``agent_command``; None if not wrapped."""
    prefix = ["/bin/sh", "-c", RUNNER_SCRIPT, RUNNER_SHELL_NAME]
    return list(container_command[len(prefix) :]) if container_command[: len(prefix)] == prefix else None


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
            VERSION_ENV: deployment_version(),  # the task runner refuses a bundle of another build
            "SHIV_ROOT": SHIV_ROOT_IN_CONTAINER,
        }
    )
    return [{"Name": k, "Value": v} for k, v in sorted(env.items())]


def resource_requirements(task: Any) -> list[dict[str, str]]:
    requirements = [{"Type": "VCPU", "Value": str(task.vcpus)}, {"Type": "MEMORY", "Value": str(task.memory)}]
    if task.gpus:
        requirements.append({"Type": "GPU", "Value": str(task.gpus)})
    return requirements


def job_request(
    *,
    workflow_id: str,
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
    }
    if task.multi_node:
        request["node_overrides"] = {
            "NumNodes": int(task.nodes),
            "NodePropertyOverrides": [{"TargetNodes": "0:", "ContainerOverrides": container}],
        }
    else:
        request["container_overrides"] = container
    return request
