"""Capacity choice for one task attempt and the Batch submission it leads to. Pure.

Order of precedence: multi-node tasks always run On-Demand with the multi-node parallel definition
(Batch cannot run MNP jobs on Spot); a task pinned to one queue (``tasks[].queue``) runs there; tasks not
allowed on Spot run On-Demand; a task the failure policy moved to On-Demand stays there; otherwise the
Spot queue's circuit breaker decides. ``queue_key`` then names the queue: the GPU pair for tasks with
GPUs (or ``queue: gpu``), the CPU pair otherwise (``stepspot.capacity`` owns the names).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from stepspot import capacity as queues
from stepspot.agent_exit_codes import EXIT_MISCONFIGURATION
from stepspot.build_info import VERSION_ENV, deployment_version
from stepspot.dataflow import DEFAULT_SHARED_MOUNT_PATH
from stepspot.job_environment import CHECKPOINT_ENABLED_VARIABLE, TASK_ID_VARIABLE, WORKFLOW_ID_VARIABLE

if TYPE_CHECKING:  # the breaker (and the policy models it reads) only when a choice is made
    from stepspot.breaker import Admission

DEFAULT_TIMEOUT_SECONDS = 14 * 86_400  # no timeout in the definition: Batch's own maximum applies
CHECKPOINT_DIR_IN_CONTAINER = "/scratch/stepspot/checkpoint"
WORK_DIR_IN_CONTAINER = "/scratch/stepspot/work"  # the program's working directory (inputs in, outputs out)
# The task runner bundle (make build), installed on every Batch host by the launch template and mounted
# read-only into every container; SHIV_ROOT is where it unpacks (the container's HOME may not be writable).
AGENT_BUNDLE_IN_CONTAINER = "/opt/stepspot/stepspot-agent.pyz"
SHIV_ROOT_IN_CONTAINER = "/tmp/stepspot-shiv"
# The container command runs the bundle with the image's own python3 through `sh -c`, so that an image
# without python3 (or a host without the bundle) ends the first attempt with EXIT_MISCONFIGURATION and a
# sentence in the job log, instead of a CannotStartContainerError retried as an infrastructure failure.
# The bundle's __main__ refuses a python3 older than 3.9 the same way.
RUNNER_ACTIONS = ("run", "mpi")  # `run` wraps one program; `mpi` gives multi-node nodes their roles


def _runner_script(action: str) -> str:
    return (
        'command -v python3 >/dev/null 2>&1 || { echo "stepspot: the image has no python3 on its PATH; the task '
        'runner needs python3 >= 3.9 in the image: install it or use an image that has it" >&2; '
        f"exit {EXIT_MISCONFIGURATION}; }}; "
        f'[ -r {AGENT_BUNDLE_IN_CONTAINER} ] || {{ echo "stepspot: {AGENT_BUNDLE_IN_CONTAINER} is missing on this '
        "host: the launch template did not install the task runner (see the instance's cloud-init log)\" >&2; "
        f"exit {EXIT_MISCONFIGURATION}; }}; "
        f'exec python3 -I {AGENT_BUNDLE_IN_CONTAINER} {action} -- "$@"'
    )


RUNNER_SCRIPTS = {action: _runner_script(action) for action in RUNNER_ACTIONS}
RUNNER_SCRIPT = RUNNER_SCRIPTS["run"]
RUNNER_SHELL_NAME = "stepspot"  # $0 of the script: the shell's own messages start with it
SUBMIT_JOB_MAX_BYTES = 30 * 1024  # Batch refuses a SubmitJob request larger than 30 KiB
# The longest values the rest of the request can carry (128-character names, a 5-digit revision),
# so a workflow that passes validation fits whatever its queue and job definition are called.
_LONGEST_NAME = "n" * 128
_LONGEST_QUEUE_ARN = f"arn:aws:batch:ap-southeast-2:123456789012:job-queue/{_LONGEST_NAME}"
_LONGEST_DEFINITION_ARN = f"arn:aws:batch:ap-southeast-2:123456789012:job-definition/{_LONGEST_NAME}:99999"
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


def preliminary_choice(
    multi_node: bool, use_spot: bool, on_demand_requested: bool, queue: str = queues.QUEUE_AUTO
) -> CapacityChoice:
    if multi_node:
        return CapacityChoice(Capacity.ON_DEMAND, "multi-node parallel jobs cannot run on Spot")
    if queue in (queues.ON_DEMAND, queues.GPU_ON_DEMAND):
        return CapacityChoice(Capacity.ON_DEMAND, f"pinned to queue {queue!r} (tasks[].queue)")
    if queue in (queues.SPOT, queues.GPU_SPOT):
        return CapacityChoice(Capacity.SPOT, f"pinned to queue {queue!r} (tasks[].queue)")
    if not use_spot:
        return CapacityChoice(Capacity.ON_DEMAND, "the task does not allow Spot")
    if on_demand_requested:
        return CapacityChoice(Capacity.ON_DEMAND, "moved to On-Demand after Spot failures", fallback=True)
    return CapacityChoice(Capacity.SPOT, "Spot first", needs_breaker=True)


def apply_breaker(admission: Admission) -> CapacityChoice:
    from stepspot.breaker import Admission

    if admission is Admission.SPOT:
        return CapacityChoice(Capacity.SPOT, "Spot (breaker closed)")
    if admission is Admission.TRIAL:
        return CapacityChoice(Capacity.SPOT, "Spot trial (breaker half-open)")
    return CapacityChoice(Capacity.ON_DEMAND, "Spot breaker open", fallback=True)


def queue_key(queue: str, gpus: int, multi_node: bool, capacity: Capacity) -> str:
    """The deployment queue (``stepspot.capacity`` names) an attempt with this capacity goes to."""
    if multi_node:
        return queues.MNP
    if queue in queues.QUEUE_NAMES:
        return queue
    gpu = queue == queues.QUEUE_GPU or gpus > 0
    if capacity is Capacity.SPOT:
        return queues.GPU_SPOT if gpu else queues.SPOT
    return queues.GPU_ON_DEMAND if gpu else queues.ON_DEMAND


def spot_queue_key(queue: str, gpus: int) -> str:
    """The Spot queue whose circuit breaker a task consults (its family's)."""
    return queue_key(queue, gpus, False, Capacity.SPOT)


def needs_agent(task: Any) -> bool:
    """The agent wraps every task that checkpoints or has declared inputs or outputs to stage."""
    return bool(task.checkpoint_enabled or getattr(task, "inputs", None) or getattr(task, "outputs", None))


def agent_command(command: list[str], wrapped: bool, action: str = "run") -> list[str]:
    """The container command: the task's own, run by the task runner bundle (``action``) when ``wrapped``."""
    return ["/bin/sh", "-c", RUNNER_SCRIPTS[action], RUNNER_SHELL_NAME, *command] if wrapped else list(command)


def runner_invocation(container_command: list[str]) -> tuple[str, list[str]] | None:
    """(runner action, the task's own command) of a container command made by ``agent_command``; else None."""
    for action, script in RUNNER_SCRIPTS.items():
        prefix = ["/bin/sh", "-c", script, RUNNER_SHELL_NAME]
        if container_command[: len(prefix)] == prefix:
            return action, list(container_command[len(prefix) :])
    return None


def runner_program(container_command: list[str]) -> list[str] | None:
    """The task's own command inside a container command made by ``agent_command``; None if not wrapped."""
    invocation = runner_invocation(container_command)
    return invocation[1] if invocation else None


def mpi_command(command: list[str]) -> list[str]:
    """A multi-node task's container command: ``stepspot.mpi`` gives the nodes their roles (the main node
    runs ``command``, the others serve it), so only the main node runs the checkpoint agent."""
    return agent_command(command, wrapped=True, action="mpi")


def data_environment(task: Any, shared_mount_path: str = DEFAULT_SHARED_MOUNT_PATH) -> dict[str, str]:
    """What the agent reads to stage data (docs/data.md); empty for a task without any.
    ``shared_mount_path``: where the deployment mounts its shared file system (Terraform shared_mount_path)."""
    env: dict[str, str] = {}
    if getattr(task, "inputs", None):
        # A planned task carries its inputs as JSON already; a workflow task (validation) as models.
        specs = task.input_specs if hasattr(task, "input_specs") else None
        inputs = [spec.to_json() for spec in specs] if specs is not None else list(task.inputs)
        env["STEPSPOT_INPUTS"] = json.dumps(inputs, separators=(",", ":"))
    if getattr(task, "outputs", None):
        env["STEPSPOT_OUTPUTS"] = json.dumps(list(task.outputs), separators=(",", ":"))
    if getattr(task, "shared_filesystem", False):
        env["STEPSPOT_SHARED_DIR"] = shared_mount_path
    return env


def job_environment(
    workflow_id: str,
    task: Any,
    attempt: int,
    capacity: Capacity,
    shared_mount_path: str = DEFAULT_SHARED_MOUNT_PATH,
) -> list[dict[str, str]]:
    env = {str(k): str(v) for k, v in (task.environment or {}).items()}
    env.update(
        {
            WORKFLOW_ID_VARIABLE: workflow_id,
            TASK_ID_VARIABLE: task.id,
            "STEPSPOT_ATTEMPT": str(attempt),
            "STEPSPOT_CAPACITY": capacity.value,
            "STEPSPOT_CHECKPOINT_INTERVAL": str(task.checkpoint_interval),
            "STEPSPOT_CHECKPOINT_DIR": CHECKPOINT_DIR_IN_CONTAINER,
            CHECKPOINT_ENABLED_VARIABLE: "true" if task.checkpoint_enabled else "false",
            "STEPSPOT_WORK_DIR": WORK_DIR_IN_CONTAINER,
            **data_environment(task, shared_mount_path),
            VERSION_ENV: deployment_version(),  # the task runner refuses a bundle of another build
            "SHIV_ROOT": SHIV_ROOT_IN_CONTAINER,
        }
    )
    return [{"Name": k, "Value": v} for k, v in sorted(env.items())]


def resource_requirements(task: Any, memory: int | None = None) -> list[dict[str, str]]:
    memory = memory or task.memory  # an attempt after an out-of-memory failure asks for more
    requirements = [{"Type": "VCPU", "Value": str(task.vcpus)}, {"Type": "MEMORY", "Value": str(memory)}]
    if task.gpus:
        requirements.append({"Type": "GPU", "Value": str(task.gpus)})
    return requirements


def container_overrides(
    workflow_id: str,
    task: Any,
    attempt: int,
    capacity: Capacity,
    memory: int | None = None,
    shared_mount_path: str = DEFAULT_SHARED_MOUNT_PATH,
) -> dict[str, Any]:
    command = agent_command(list(task.command), needs_agent(task))
    return {
        "Command": mpi_command(command) if task.multi_node else command,
        "Environment": job_environment(workflow_id, task, attempt, capacity, shared_mount_path),
        "ResourceRequirements": resource_requirements(task, memory or task.memory),
    }


def submit_request_bytes(task: Any, workflow_id: str = "w" * 80) -> int:
    """Bytes of the largest SubmitJob request an attempt of ``task`` can make (its overrides, with the
    longest names, ARNs and ids): what validation compares with ``SUBMIT_JOB_MAX_BYTES``."""
    container = container_overrides(workflow_id, task, 10, Capacity.ON_DEMAND)
    request: dict[str, Any] = {
        "jobName": _LONGEST_NAME,
        "jobQueue": _LONGEST_QUEUE_ARN,
        "jobDefinition": _LONGEST_DEFINITION_ARN,
        "tags": job_tags(workflow_id, task.id, 10, _LONGEST_NAME),
        "propagateTags": True,
    }
    if task.nodes > 1:
        overrides = {
            "numNodes": task.nodes,
            "nodePropertyOverrides": [{"targetNodes": "0:", "containerOverrides": container}],
        }
        request["nodeOverrides"] = overrides
    else:
        request["containerOverrides"] = container
    return len(json.dumps(request, separators=(",", ":")).encode())


# JSON (ensure_ascii) writes a character in at most 12 bytes (an astral one as two \\uXXXX escapes), a
# string with 2 quotes and a separating comma; an environment entry adds {"Name":,"Value":} and a comma.
_MAX_JSON_BYTES_PER_CHAR = 12
_MAX_ENTRY_OVERHEAD_BYTES = 32


@cache
def _largest_skeleton_bytes() -> int:
    """The exact request size of the largest task without a command or environment of its own: the
    longest id, every wrapper (checkpoint agent, multi-node), the widest numbers."""
    sizes = []
    for checkpoint_enabled, nodes in ((True, 256), (False, 256), (True, 1), (False, 1)):
        skeleton = SimpleNamespace(
            id="x" * 80,  # workflow.ID_PATTERN: at most 80 characters, no escapes
            command=[],
            environment={},
            nodes=nodes,
            multi_node=nodes > 1,
            vcpus=192,
            memory=9_999_999,
            gpus=16,
            checkpoint_enabled=checkpoint_enabled,
            checkpoint_interval=86_400,
            inputs=[],
            outputs=[],
        )
        sizes.append(submit_request_bytes(skeleton))
    return max(sizes)


def submit_request_bytes_at_most(task: Any) -> int:
    """A cheap upper bound of ``submit_request_bytes(task)`` (exact for a task with inputs or outputs), so
    that validating 100,000 tasks does not serialise 100,000 requests: only a task whose bound is over
    ``SUBMIT_JOB_MAX_BYTES`` needs the exact size."""
    if getattr(task, "inputs", None) or getattr(task, "outputs", None):
        return submit_request_bytes(task)
    command, environment = task.command, task.environment
    chars = len("".join(command))
    entries = len(command)
    if environment:
        chars += len("".join(environment)) + len("".join(environment.values()))
        entries += len(environment)
    return _largest_skeleton_bytes() + chars * _MAX_JSON_BYTES_PER_CHAR + entries * _MAX_ENTRY_OVERHEAD_BYTES


def plain_commands_fit(entries: int, longest: int) -> bool:
    """Whether every task without environment, inputs or outputs whose command has at most ``entries``
    arguments of at most ``longest`` characters is sure to fit ``SUBMIT_JOB_MAX_BYTES`` (by the bound of
    ``submit_request_bytes_at_most``): validation then sizes only the other tasks, one by one."""
    chars = entries * longest
    bound = _largest_skeleton_bytes() + chars * _MAX_JSON_BYTES_PER_CHAR + entries * _MAX_ENTRY_OVERHEAD_BYTES
    return bound <= SUBMIT_JOB_MAX_BYTES


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
    memory: int | None = None,
    shared_mount_path: str = DEFAULT_SHARED_MOUNT_PATH,
) -> dict[str, Any]:
    """What ChooseCapacity returns (``$.job`` in the task state machine): small and flat."""
    memory = memory or task.memory
    container = container_overrides(workflow_id, task, attempt, choice.capacity, memory, shared_mount_path)
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
        "memory": int(memory),  # MiB of this attempt: ClassifyFailure escalates from it after an OOM
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
