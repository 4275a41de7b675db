"""Does a task fit the deployment? Instance types, compute queues and the fit check. Pure.

A Batch job whose shape no instance type of its queue can hold never starts: it waits RUNNABLE with
``MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT`` and blocks the head of the queue. ``check_workflow``
finds such tasks before anything runs (``stepspot validate/plan/submit/local``), from a
``DeploymentCapacity`` built from the environment's Terraform variables (``capacity_sources``).

Memory ECS keeps: the container instance registers less memory than the instance type's nominal size
(kernel and platform overhead: an m4.large with 8,192 MiB registers 7,985 MiB, 2.5 %, in the Batch User
Guide's "Compute resource memory management"), and the Batch AMI reserves 32 MiB more for the ECS agent
(``ECS_RESERVED_MEMORY``). The rule used here: usable = floor(nominal x 0.97) - 32 MiB (3 %: the measured
2.5 % rounded up, since the overhead grows a little with size).

Queues (``tasks[].queue``, default ``auto``): ``auto`` puts a single-node task on Spot with On-Demand
as fallback (``spot`` and ``on-demand``; only ``on-demand`` when Spot is not allowed), a task with GPUs
on the GPU pair (``gpu-spot``, ``gpu-on-demand``), a multi-node task on ``mnp``; ``gpu`` asks for the
GPU pair explicitly; a queue name pins the task to that one queue (a Spot queue only for a task that
allows Spot).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from operator import attrgetter
from typing import Any, Literal, get_args

from stepspot.errors import Problem

ECS_RESERVED_MEMORY_MIB = 32
KERNEL_MEMORY_OVERHEAD = 0.03

QueueChoice = Literal["auto", "gpu", "spot", "on-demand", "mnp", "gpu-spot", "gpu-on-demand"]
QUEUE_CHOICES: tuple[str, ...] = get_args(QueueChoice)
QUEUE_AUTO, QUEUE_GPU = "auto", "gpu"
SPOT, ON_DEMAND, MNP, GPU_SPOT, GPU_ON_DEMAND = QUEUE_CHOICES[2:]
QUEUE_NAMES = (SPOT, ON_DEMAND, MNP, GPU_SPOT, GPU_ON_DEMAND)
# Terraform variables (CONTRACTS.md) of each queue's compute environment: instance types, vCPU ceiling.
QUEUE_VARIABLES: dict[str, tuple[str, str]] = {
    SPOT: ("spot_instance_types", "spot_max_vcpus"),
    ON_DEMAND: ("ondemand_instance_types", "ondemand_max_vcpus"),
    MNP: ("mnp_instance_types", "mnp_max_vcpus"),
    GPU_SPOT: ("gpu_instance_types", "gpu_spot_max_vcpus"),
    GPU_ON_DEMAND: ("gpu_instance_types", "gpu_ondemand_max_vcpus"),
}


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    memory_mib: int
    gpus: int = 0
    gpu_memory_mib: int = 0
    efa: bool = False

    @property
    def usable_memory_mib(self) -> int:
        """What a job can ask for on this instance (see the module docstring)."""
        return int(self.memory_mib * (1 - KERNEL_MEMORY_OVERHEAD)) - ECS_RESERVED_MEMORY_MIB

    def holds(self, vcpus: int, memory_mib: int, gpus: int) -> bool:
        return self.vcpus >= vcpus and self.usable_memory_mib >= memory_mib and self.gpus >= gpus

    def shape(self) -> str:
        gpus = f", {self.gpus} GPU{'s' if self.gpus != 1 else ''}" if self.gpus else ""
        return f"{self.vcpus} vCPUs, {self.usable_memory_mib} MiB{gpus} ({self.name})"


@dataclass(frozen=True)
class InstanceTable:
    types: dict[str, InstanceType]
    defaults: dict[str, Any]
    source: str
    retrieved: str

    def get(self, name: str) -> InstanceType | None:
        return self.types.get(name)

    def expand(self, name: str) -> list[InstanceType]:
        """An instance type, or every size of a family (Batch accepts ``c7i`` for the whole family)."""
        if "." in name:
            found = self.types.get(name)
            return [found] if found else []
        return [t for t in self.types.values() if t.name.split(".", 1)[0] == name]


def instance_table_from_document(document: dict[str, Any]) -> InstanceTable:
    types = {name: InstanceType(name=name, **_known(spec)) for name, spec in document["instance_types"].items()}
    return InstanceTable(types, dict(document.get("defaults", {})), document["source"], document["retrieved"])


def _known(spec: dict[str, Any]) -> dict[str, Any]:
    keys = ("vcpus", "memory_mib", "gpus", "gpu_memory_mib", "efa")
    return {key: spec[key] for key in keys if key in spec}


@cache
def default_instance_table() -> InstanceTable:
    """``stepspot/data/instance_types.json``: the table and the default instance type lists."""
    text = resources.files("stepspot").joinpath("data/instance_types.json").read_text(encoding="utf-8")
    return instance_table_from_document(json.loads(text))


# ---------------------------------------------------------------------------------------------------
# The deployment


@dataclass(frozen=True)
class ComputeQueue:
    key: str
    instance_types: tuple[InstanceType, ...]
    max_vcpus: int | None = None
    variable: str = ""  # the Terraform variable listing its instance types (for the fix)

    # False when the compute environment lists instance types the table does not know: the check can
    # then not prove that a shape fits nowhere, so it refuses nothing on that queue.
    complete: bool = True

    def largest(self) -> InstanceType | None:
        return max(self.instance_types, key=lambda t: (t.gpus, t.vcpus, t.usable_memory_mib), default=None)


@dataclass(frozen=True)
class DeploymentCapacity:
    environment: str
    source: str  # where the figures come from, named in messages ("terraform/environments/dev.tfvars")
    queues: dict[str, ComputeQueue]
    mnp_max_nodes: int
    unknown_types: tuple[str, ...] = field(default=())

    @property
    def has_gpu(self) -> bool:
        return GPU_SPOT in self.queues or GPU_ON_DEMAND in self.queues

    def instance_types_by_queue(self) -> dict[str, list[str]]:
        return {key: [t.name for t in queue.instance_types] for key, queue in self.queues.items()}


def capacity_from_variables(
    values: dict[str, Any], environment: str, source: str, table: InstanceTable | None = None
) -> DeploymentCapacity:
    """The queues of a deployment from its Terraform variable values (tfvars over defaults)."""
    table = table or default_instance_table()
    merged = {**table.defaults, **values}
    keys = [SPOT, ON_DEMAND, MNP] + ([GPU_SPOT, GPU_ON_DEMAND] if merged.get("gpu_enabled") else [])
    queues: dict[str, ComputeQueue] = {}
    unknown: list[str] = []
    for key in keys:
        types_variable, vcpus_variable = QUEUE_VARIABLES[key]
        known: list[InstanceType] = []
        missing: list[str] = []
        for name in (str(n) for n in merged.get(types_variable) or []):
            found = table.expand(name)
            known.extend(found)
            if not found:
                missing.append(name)
        unknown.extend(missing)
        max_vcpus = merged.get(vcpus_variable)
        queues[key] = ComputeQueue(
            key,
            tuple(dict.fromkeys(known)),
            int(max_vcpus) if max_vcpus is not None else None,
            types_variable,
            complete=not missing,
        )
    return DeploymentCapacity(
        environment, source, queues, int(merged.get("mnp_max_nodes", 8)), tuple(dict.fromkeys(unknown))
    )


# ---------------------------------------------------------------------------------------------------
# The check


def queues_of(queue: str, gpus: int, nodes: int, use_spot: bool) -> list[str]:
    """The queues a task may run on (every one of them must hold it: fallbacks move it between them)."""
    if nodes > 1:
        return [MNP]
    if queue in QUEUE_NAMES:
        return [queue]
    if queue == QUEUE_GPU or gpus > 0:
        return [GPU_SPOT, GPU_ON_DEMAND] if use_spot else [GPU_ON_DEMAND]
    return [SPOT, ON_DEMAND] if use_spot else [ON_DEMAND]


def _asks(vcpus: int, memory: int, gpus: int) -> str:
    text = f"{vcpus} vCPU{'s' if vcpus != 1 else ''} and {memory} MiB"
    if gpus:
        text += f" and {gpus} GPU{'s' if gpus != 1 else ''}"
    return text + " per node"


def check_task(
    task_id: str,
    *,
    vcpus: int,
    memory: int,
    gpus: int,
    nodes: int,
    queue: str,
    use_spot: bool,
    capacity: DeploymentCapacity,
) -> str | None:
    """One sentence when the task cannot be placed in this deployment, else None."""
    env, source = capacity.environment, capacity.source
    if nodes > 1 and queue not in (QUEUE_AUTO, MNP):
        return (
            f"task {task_id!r} runs on {nodes} nodes, which only the multi-node queue {MNP!r} can do, but names "
            f"queue {queue!r}: remove its queue (or set it to {MNP!r})"
        )
    if queue in (SPOT, GPU_SPOT) and not use_spot:  # pinned to Spot, which the task does not allow
        return (
            f"task {task_id!r} names queue {queue!r}, but Spot is off for it (its spot_enabled is false or "
            "global_config.spot_strategy is 'on-demand-only'): set its queue to "
            f"{ON_DEMAND if queue == SPOT else GPU_ON_DEMAND!r} or {QUEUE_AUTO!r}, or allow Spot"
        )
    if queue in QUEUE_NAMES and queue not in capacity.queues:
        return (
            f"task {task_id!r} names queue {queue!r}, which environment {env!r} does not have (its queues: "
            f"{', '.join(capacity.queues)}; from {source}): use one of those or {QUEUE_AUTO!r}"
            + (", or set gpu_enabled = true for the GPU queues" if queue.startswith("gpu") else "")
        )
    wanted = queues_of(queue, gpus, nodes, use_spot)
    if any(key.startswith("gpu") for key in wanted) and not capacity.has_gpu:
        what = f"asks for {_asks(vcpus, memory, gpus)}" if gpus else f"names queue {queue!r}"
        fix = 'set "gpus": 0' if gpus else f'remove "queue": "{queue}"'
        return (
            f"task {task_id!r} {what}, but environment {env!r} has no GPU queues (gpu_enabled is false in "
            f"{source}): set gpu_enabled = true there and apply, or {fix}"
        )
    if nodes > capacity.mnp_max_nodes:
        return (
            f"task {task_id!r} asks for {nodes} nodes, more than the {capacity.mnp_max_nodes} the multi-node "
            f"environment of {env!r} allows (mnp_max_nodes in {source}): lower nodes to at most "
            f"{capacity.mnp_max_nodes}, or raise mnp_max_nodes"
        )
    for key in wanted:
        compute = capacity.queues[key]
        if compute.complete and not any(t.holds(vcpus, memory, gpus) for t in compute.instance_types):
            largest = compute.largest()
            offers = (
                f"the largest task it can hold is {largest.shape()}, after the memory ECS keeps "
                f"({KERNEL_MEMORY_OVERHEAD:.0%} + {ECS_RESERVED_MEMORY_MIB} MiB of each instance)"
                if largest
                else "it lists no instance type this check knows"
            )
            return (
                f"task {task_id!r} asks for {_asks(vcpus, memory, gpus)}, more than any instance type of queue "
                f"{key!r} in environment {env!r} can hold ({offers}): lower the task's vcpus/memory/gpus to fit, "
                f"or add larger instance types to {compute.variable} in {source}"
            )
        if compute.max_vcpus is not None and vcpus * nodes > compute.max_vcpus:
            total = f"{nodes} x {vcpus} = {vcpus * nodes}" if nodes > 1 else str(vcpus)
            return (
                f"task {task_id!r} asks for {total} vCPUs at once, more than the {compute.max_vcpus} the compute "
                f"environment of queue {key!r} in environment {env!r} may run "
                f"({QUEUE_VARIABLES[key][1]} in {source}): lower vcpus or nodes, or raise "
                f"{QUEUE_VARIABLES[key][1]}"
            )
    return None


def check_workflow(workflow: Any, capacity: DeploymentCapacity) -> list[Problem]:
    """Every task of a valid workflow that cannot be placed, as problems (document order)."""
    spot_allowed = workflow.global_config.spot_strategy != "on-demand-only"
    # Large workflows repeat few shapes, and usually every one fits: the distinct ones, found in one pass in
    # C, are checked first; the tasks one by one (for their sentences) only when one does not fit.
    shapes = set(map(attrgetter("vcpus", "memory", "gpus", "nodes", "queue", "spot_enabled"), workflow.tasks))
    if all(
        check_task(
            "",
            vcpus=vcpus,
            memory=memory,
            gpus=gpus,
            nodes=nodes,
            queue=queue,
            use_spot=spot_allowed and spot_enabled and nodes < 2,
            capacity=capacity,
        )
        is None
        for vcpus, memory, gpus, nodes, queue, spot_enabled in shapes
    ):
        return []
    problems = []
    fitting: set[tuple[int, int, int, int, str, bool]] = set()  # shapes that fit
    for index, task in enumerate(workflow.tasks):
        nodes = task.nodes
        use_spot = spot_allowed and task.spot_enabled and nodes < 2  # multi-node jobs cannot use Spot
        shape = (task.vcpus, task.memory, task.gpus, nodes, task.queue, use_spot)
        if shape in fitting:
            continue
        vcpus, memory, gpus, _, queue, _ = shape
        sentence = check_task(
            task.id,
            vcpus=vcpus,
            memory=memory,
            gpus=gpus,
            nodes=nodes,
            queue=queue,
            use_spot=use_spot,
            capacity=capacity,
        )
        if sentence is None:
            fitting.add(shape)
        else:
            problems.append(Problem(f"$.tasks[{index}] (task {task.id!r})", sentence))
    return problems


def instance_types_from_json(text: str) -> dict[str, list[str]]:
    """``{"spot": [...], ...}`` (the attempt manager's ``STEPSPOT_INSTANCE_TYPES``)."""
    document = json.loads(text)
    if not isinstance(document, dict):
        raise ValueError("expected an object of queue name -> list of instance types")
    return {str(key): [str(name) for name in names] for key, names in document.items()}


def memory_ceiling(
    instance_types: list[str], vcpus: int = 1, gpus: int = 0, table: InstanceTable | None = None
) -> int | None:
    """The most memory a job of ``vcpus``/``gpus`` can get on these instance types (None: none known)."""
    table = table or default_instance_table()
    known = [t for t in (table.get(name) for name in instance_types) if t is not None]
    return max((t.usable_memory_mib for t in known if t.vcpus >= vcpus and t.gpus >= gpus), default=None)
