"""`stepspot plan FILE`: a dry run. Tasks, levels, critical path, duration and cost estimates.

``--output table`` (default) for people, ``json`` for machines (the plan as the parser Lambda stores
it), ``mermaid`` for a drawing of the DAG with the critical path highlighted.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table
from rich.text import Text

from stepspot._gc import gc_paused
from stepspot.capacity import MNP, QUEUE_NAMES
from stepspot.cli.capacity_check import ensure_fits_environment
from stepspot.cli.output import console, end_process, print_problems
from stepspot.plan import Plan, PlannedTask, PlanParts, plan_parts, plan_to_json
from stepspot.workflow import load_workflow_file

DEFAULT_MAX_ROWS = 200


def run(args: argparse.Namespace) -> int:
    with gc_paused():  # the collector would only re-scan the workflow's millions of objects
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    loaded = load_workflow_file(args.file)
    ensure_fits_environment(loaded, args.env)
    parts = plan_parts(loaded.workflow, graph=loaded.graph)
    if args.output == "table":  # a few rows: only their task records are built
        print_problems(loaded.warnings)
        console.print(task_table(parts, args.max_rows))
        for line in summary_lines(parts.topology.critical_path, parts.estimate):
            console.print(line, highlight=False)
        return end_process(args, 0)
    plan = parts.plan(args.workflow_id, loaded.warnings)
    if args.output == "json":
        print(plan_to_json(plan).decode())
    else:
        print(to_mermaid(plan))
    return end_process(args, 0)


def format_duration(seconds: float) -> str:
    seconds = round(seconds)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def capacity_label(task: PlannedTask) -> str:
    gpu = " GPU" if task.gpus or task.queue.startswith("gpu") else ""
    pinned = " (pinned)" if task.queue in QUEUE_NAMES and task.queue != MNP else ""
    if task.use_spot:
        return f"Spot{gpu}{pinned}"
    return "On-Demand (MNP)" if task.multi_node else f"On-Demand{gpu}{pinned}"


def task_table(parts: PlanParts, max_rows: int) -> Table:
    topology = parts.topology
    critical = set(topology.critical_path)
    title = f"{parts.workflow.name}: {len(topology.ids)} tasks in {len(topology.levels)} levels"
    table = Table(title=title, title_justify="left")
    table.add_column("task", no_wrap=True)
    table.add_column("lvl", justify="right")
    table.add_column("depends on")
    table.add_column("nodes x vCPU, mem", justify="right")
    table.add_column("capacity")
    table.add_column("runtime", justify="right", no_wrap=True)
    table.add_column("cost", justify="right", no_wrap=True)
    for task in map(parts.task, topology.order_indices[:max_rows]):
        task_id = task.id
        gpus = f" +{task.gpus} GPU" if task.gpus else ""
        shape = f"{task.nodes}x{task.vcpus}, {task.memory / 1024:g} GiB{gpus}"
        deps = ", ".join(task.depends_on[:3]) + (f" +{len(task.depends_on) - 3}" if len(task.depends_on) > 3 else "")
        # Text cells: rich would parse each string for markup and emoji codes (most of the table's time);
        # ids, numbers and labels hold neither ('[' and ':' are not allowed in task ids).
        table.add_row(
            Text.assemble((task_id, "bold"), " *") if task_id in critical else Text(task_id),
            Text(str(task.level)),
            Text(deps or "-"),
            Text(shape),
            Text(capacity_label(task)),
            Text(format_duration(task.estimated_runtime_seconds)),
            Text(f"${task.estimated_spot_usd:,.2f}"),
        )
    if len(topology.order) > max_rows:
        table.caption = f"... {len(topology.order) - max_rows} more tasks (--max-rows N, or --output json)"
    return table


def summary_lines(path: list[str], est: dict[str, Any]) -> list[str]:
    shown = " -> ".join(path) if len(path) <= 12 else " -> ".join([*path[:5], "...", *path[-5:]])
    return [
        f"[bold]critical path[/] ({len(path)} tasks, marked *): {shown}",
        f"[bold]estimated duration[/]: {format_duration(est['duration_seconds'])} "
        "(critical path with unlimited capacity, no interruptions)",
        f"[bold]estimated cost[/]: ${est['spot_usd']:,.2f} with Spot vs ${est['on_demand_usd']:,.2f} all On-Demand "
        f"-> saving ${est['spot_savings_usd']:,.2f} ({est['spot_savings_percent']}%), "
        f"{est['vcpu_hours']:,.1f} vCPU-hours",
        f"[dim]prices: {est['prices']['source']}, retrieved {est['prices']['retrieved']}[/]",
    ]


def to_mermaid(plan: Plan) -> str:
    """A Mermaid flowchart: node ids are positions (task ids may contain '-', which Mermaid misreads)."""
    node = {task_id: f"n{i}" for i, task_id in enumerate(plan.order)}
    lines = ["flowchart TD"]
    for task_id in plan.order:
        task = plan.tasks[task_id]
        label = f"{task.name}<br/>{task.nodes}x{task.vcpus} vCPU, {capacity_label(task)}".replace('"', "'")
        lines.append(f'    {node[task_id]}["{label}"]')
    for task_id in plan.order:
        for child in plan.tasks[task_id].dependents:
            lines.append(f"    {node[task_id]} --> {node[child]}")
    if plan.critical_path:
        lines.append("    classDef critical stroke:#d33,stroke-width:3px")
        lines.append(f"    class {','.join(node[t] for t in plan.critical_path)} critical")
    return "\n".join(lines)
