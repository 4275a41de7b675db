"""The execution plan of a valid workflow. Pure.

The plan is the single hand-off from parsing to scheduling: it carries each task's effective settings
(defaults and global config applied, multi-node tasks routed to On-Demand), its dependents, and the
workflow's order, levels, critical path and estimates. It is stored as a header and per-task shards
(``stepspot.plan_store``, docs/plan-format.md); ``plan_to_json`` is the whole-document form that
``stepspot plan`` prints and that plans stored before the sharded format hold.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from pydantic import TypeAdapter

from stepspot import dag
from stepspot._gc import gc_paused
from stepspot.errors import Problem, WorkflowValidationError
from stepspot.estimate import PriceTable, default_prices, summarise
from stepspot.scheduler import TaskState
from stepspot.workflow import Workflow

PLAN_SCHEMA_VERSION = 1


# Plain dataclasses (not pydantic models): building 100k of them must take milliseconds, not seconds.
# pydantic still validates and serialises them, in Rust, through a TypeAdapter (plan_to_json / plan_from_json).
@dataclass(slots=True)
class PlannedTask:
    id: str
    name: str
    container_image: str
    command: list[str]
    environment: dict[str, str]
    vcpus: int
    memory: int
    nodes: int
    gpus: int
    multi_node: bool
    use_spot: bool
    checkpoint_enabled: bool
    checkpoint_interval: int | Literal["auto"]
    retry_attempts: int
    backoff_multiplier: float
    timeout_seconds: int | None
    estimated_runtime_seconds: int
    depends_on: list[str]
    dependents: list[str]
    level: int
    estimated_on_demand_usd: float
    estimated_spot_usd: float
    queue: str = "auto"  # tasks[].queue (stepspot.capacity); plans written before it existed read as auto
    # Data flow (docs/data.md); defaults keep plans written before it readable.
    inputs: list[dict[str, str]] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    shared_filesystem: bool = False


@dataclass(slots=True)
class Plan:
    workflow_id: str
    name: str
    description: str
    failure_mode: Literal["fail", "continue"]
    spot_strategy: str
    order: list[str]
    levels: list[list[str]]
    critical_path: list[str]
    tasks: dict[str, PlannedTask]
    estimate: dict[str, Any]
    warnings: list[dict[str, str]] = field(default_factory=list)
    schema_version: int = PLAN_SCHEMA_VERSION

    @property
    def roots(self) -> list[str]:
        return self.levels[0] if self.levels else []

    # The per-task lookups of the scheduler and fleet manager (stepspot.scheduler.PlanView), the same
    # as those of a stored plan read one shard at a time (stepspot.handlers._plans.ShardedPlan).
    def has_task(self, task_id: str) -> bool:
        return task_id in self.tasks

    def task(self, task_id: str) -> PlannedTask:
        return self.tasks[task_id]

    def dependents(self, task_id: str) -> list[str]:
        return self.tasks[task_id].dependents

    def remaining_dependencies(self, task_ids: Iterable[str], done: AbstractSet[str]) -> dict[str, int]:
        """For each of ``task_ids`` of this plan (others are left out): its dependencies not in ``done``."""
        tasks = self.tasks
        return {t: sum(1 for d in tasks[t].depends_on if d not in done) for t in task_ids if t in tasks}

    def summary(self) -> dict[str, Any]:
        """A small view of the plan whose size does not grow with the number of tasks."""
        return {
            "workflow_id": self.workflow_id,
            "name": self.name,
            "task_count": len(self.tasks),
            "root_count": len(self.roots),
            "level_count": len(self.levels),
            "multi_node_count": sum(1 for t in self.tasks.values() if t.multi_node),
            "critical_path_length": len(self.critical_path),
            "failure_mode": self.failure_mode,
            "estimate": self.estimate,
            "warning_count": len(self.warnings),
        }


def build_plan(
    workflow: Workflow,
    workflow_id: str,
    warnings: list[Problem] | None = None,
    prices: PriceTable | None = None,
    *,
    graph: dag.Graph | None = None,
) -> Plan:
    """Plan a workflow that passed validation. ``graph`` is the task graph validation built
    (``LoadedWorkflow.graph``); without it the graph is built again."""
    with gc_paused():
        return plan_parts(workflow, prices, graph=graph).plan(workflow_id, warnings)


@dataclass(frozen=True, slots=True)
class PlanParts:
    """A plan before its per-task records are built: the order, levels, critical path and estimates,
    with each task's costs as columns indexed like ``workflow.tasks``. ``task(i)`` builds one record and
    ``plan()`` all of them; the table of `stepspot plan` shows a few rows and builds only those."""

    workflow: Workflow
    topology: dag.Topology
    runtime_seconds: list[int]
    use_spot: list[bool]
    on_demand_usd: list[float]
    planned_usd: list[float]
    estimate: dict[str, Any]

    def task(self, i: int) -> PlannedTask:
        task, config = self.workflow.tasks[i], self.workflow.global_config
        task_id, retry_attempts = task.id, task.retry_attempts
        return PlannedTask(
            id=task_id,
            name=task.name or task_id,
            container_image=task.container_image,
            command=task.command,
            environment=task.environment,
            vcpus=task.vcpus,
            memory=task.memory,
            nodes=task.nodes,
            gpus=task.gpus,
            multi_node=task.nodes > 1,
            use_spot=self.use_spot[i],
            checkpoint_enabled=task.checkpoint_enabled,
            checkpoint_interval=task.checkpoint_interval or config.checkpoint_interval,
            retry_attempts=retry_attempts if retry_attempts is not None else config.max_retry_attempts,
            backoff_multiplier=task.backoff_multiplier,
            timeout_seconds=task.timeout,
            estimated_runtime_seconds=self.runtime_seconds[i],
            depends_on=task.all_dependencies,
            dependents=self.topology.dependents_of(i),
            level=self.topology.level[i],
            estimated_on_demand_usd=self.on_demand_usd[i],
            estimated_spot_usd=self.planned_usd[i],
            queue=task.queue,
            inputs=[spec.to_json() for spec in task.input_specs] if task.inputs else [],
            outputs=task.outputs,
            shared_filesystem=config.shared_filesystem,
        )

    def plan(self, workflow_id: str, warnings: list[Problem] | None = None) -> Plan:
        workflow, topology = self.workflow, self.topology
        task = self.task
        return Plan(
            schema_version=PLAN_SCHEMA_VERSION,
            workflow_id=workflow_id,
            name=workflow.name,
            description=workflow.description,
            failure_mode=workflow.global_config.failure_mode,
            spot_strategy=workflow.global_config.spot_strategy,
            order=topology.order,
            levels=topology.levels,
            critical_path=topology.critical_path,
            tasks=dict(zip(topology.ids, map(task, range(len(topology.ids))), strict=True)),
            estimate=self.estimate,
            warnings=[w.to_dict() for w in warnings or []],
        )


def plan_parts(workflow: Workflow, prices: PriceTable | None = None, *, graph: dag.Graph | None = None) -> PlanParts:
    """The order, levels, critical path and costs of a workflow that passed validation (``build_plan``
    without the per-task records); ``graph`` as for ``build_plan``."""
    prices = prices or default_prices()
    config = workflow.global_config
    workflow_tasks = workflow.tasks
    default_runtime = config.default_runtime
    total_on_demand = total_planned = vcpu_hours = 0.0
    spot_allowed = config.spot_strategy != "on-demand-only"
    od, spot = prices.on_demand, prices.spot
    runtimes: list[float] = []
    seconds_of: list[int] = []
    use_spot_of: list[bool] = []
    on_demand_of: list[float] = []
    planned_of: list[float] = []
    for task in workflow_tasks:
        # Hot loop at 100k tasks: plain attribute reads and arithmetic here (estimate.Rates.hourly is the
        # same formula) instead of per-task helper calls.
        runtime = float(task.estimated_runtime or default_runtime)
        seconds = int(runtime)
        runtimes.append(runtime)
        seconds_of.append(seconds)
        vcpus, memory_gib, gpus, nodes = task.vcpus, task.memory / 1024, task.gpus, task.nodes
        # A task pinned to an On-Demand queue (tasks[].queue) never uses Spot.
        use_spot = spot_allowed and task.spot_enabled and nodes <= 1 and not task.queue.endswith("on-demand")
        hours = seconds / 3600
        on_demand = nodes * (vcpus * od.per_vcpu + memory_gib * od.per_gib + gpus * od.per_gpu) * hours
        planned = nodes * (vcpus * spot.per_vcpu + memory_gib * spot.per_gib + gpus * spot.per_gpu) * hours
        planned = planned if use_spot else on_demand
        total_on_demand += on_demand
        total_planned += planned
        vcpu_hours += hours * vcpus * nodes
        use_spot_of.append(use_spot)
        on_demand_of.append(on_demand)
        planned_of.append(planned)
    # The graph validation built (its ids are the tasks' own when it comes with this workflow), else anew.
    if graph is not None and len(graph.ids) == len(workflow_tasks) and graph.ids[-1:] == [workflow_tasks[-1].id]:
        topology = dag.analyse_graph(graph, runtimes)
    else:
        ids = [t.id for t in workflow_tasks]
        topology = dag.analyse_lists(ids, [t.all_dependencies for t in workflow_tasks], runtimes)
    return PlanParts(
        workflow=workflow,
        topology=topology,
        runtime_seconds=seconds_of,
        use_spot=use_spot_of,
        on_demand_usd=on_demand_of,
        planned_usd=planned_of,
        estimate=summarise(total_on_demand, total_planned, vcpu_hours, topology.critical_path_seconds, prices),
    )


@dataclass(frozen=True, slots=True)
class InitialTaskState:
    task_id: str
    state: Literal[TaskState.PENDING, TaskState.SUCCEEDED]
    remaining_deps: int


def initial_task_states(plan: Plan, skip_tasks: Iterable[str] = ()) -> list[InitialTaskState]:
    """State of every task before the run starts. ``skip_tasks`` (finished in an earlier run, when a
    workflow is resubmitted) start SUCCEEDED and do not count as unfinished dependencies.
    Raises ``WorkflowValidationError`` for unknown ids or a skipped task whose dependency is not skipped."""
    skip = set(skip_tasks)
    problems = [
        Problem(f"skip_tasks[{i}]", f"unknown task id {task_id!r}: skip only tasks of this workflow")
        for i, task_id in enumerate(skip_tasks)
        if task_id not in plan.tasks
    ]
    for task_id in sorted(skip & plan.tasks.keys()):
        missing = [dep for dep in plan.tasks[task_id].depends_on if dep not in skip]
        if missing:
            problems.append(
                Problem(
                    f"skip_tasks ({task_id!r})",
                    f"cannot skip {task_id!r} while its dependencies {missing} run again: skip them too",
                )
            )
    if problems:
        raise WorkflowValidationError(problems, source="skip_tasks")
    states = []
    for task_id in plan.order:
        task = plan.tasks[task_id]
        if task_id in skip:
            states.append(InitialTaskState(task_id, TaskState.SUCCEEDED, 0))
        else:
            remaining = sum(1 for dep in task.depends_on if dep not in skip)
            states.append(InitialTaskState(task_id, TaskState.PENDING, remaining))
    return states


@cache
def _plan_adapter() -> TypeAdapter[Plan]:
    return TypeAdapter(Plan)


def plan_to_json(plan: Plan) -> bytes:
    return _plan_adapter().dump_json(plan)


def plan_from_json(data: str | bytes) -> Plan:
    """Load and validate a plan written by ``plan_to_json`` (raises pydantic.ValidationError)."""
    return _plan_adapter().validate_json(data)


def default_workflow_id(workflow: Workflow, canonical_definition: bytes) -> str:
    """A deterministic id (name slug + content hash) so a retried submission maps to the same workflow."""
    slug = re.sub(r"[^a-z0-9]+", "-", workflow.name.lower()).strip("-")[:48] or "workflow"
    return f"{slug}-{hashlib.sha256(canonical_definition).hexdigest()[:12]}"
