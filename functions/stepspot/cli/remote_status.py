"""`stepspot status`, `watch`, `logs` and `checkpoints`: what a submitted workflow is doing.

Sources: the execution of the workflow state machine (Step Functions) for the overall status, the
task items of the state table for each task (state, attempts, interruptions, queue, job id), the
checkpoint table for checkpoints, and the Batch job's log stream for logs (docs/contracts.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from stepspot.aws.cost_store import totals_from_item
from stepspot.aws.executions import ExecutionSummary
from stepspot.aws.job_logs import JobLogs
from stepspot.checkpointing.model import (
    CREATED_AT_FIELD,
    SEQUENCE_FIELD,
    STATUS_FIELD,
    s3_uri,
    sequence_from_sk,
    sequence_prefix,
)
from stepspot.cli.output import console, err_console
from stepspot.cli.remote_context import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    RemoteContext,
    usage_errors_exit_2,
    workflow_id_from,
)
from stepspot.errors import StepspotError, WorkflowNotFoundError
from stepspot.failures import memory_by_attempt
from stepspot.report.text import cost_line
from stepspot.run_health import seconds_list, task_health
from stepspot.scheduler import FINAL_TASK_STATES, TaskState
from stepspot.state_items import SK, Task, Workflow

# The scheduler's task states (stepspot.scheduler.TaskState owns them) in display order, with their styles.
STATE_STYLES: dict[str, str] = {
    TaskState.SUCCEEDED: "green",
    TaskState.RUNNING: "cyan",
    TaskState.READY: "blue",
    TaskState.PENDING: "dim",
    TaskState.FAILED: "red",
    TaskState.SKIPPED: "yellow",
}
TASK_STATES = tuple(STATE_STYLES)
EXECUTION_STYLES = {"SUCCEEDED": "green", "RUNNING": "cyan", "FAILED": "red", "TIMED_OUT": "red", "ABORTED": "yellow"}

# Replaced in tests so `watch` and `logs --follow` run without waiting.
sleep: Callable[[float], None] = time.sleep


# --------------------------------------------------------------------------- views (pure)


def task_counts(tasks: list[dict[str, Any]]) -> Counter[str]:
    return Counter(str(task.get(Task.STATE, TaskState.PENDING)) for task in tasks)


def counts_line(tasks: list[dict[str, Any]]) -> str:
    counts = task_counts(tasks)
    # Known states in display order, then any other (a newer scheduler's): the parts add up to the total.
    ordered = [*TASK_STATES, *sorted(set(counts) - set(TASK_STATES))]
    parts = [f"{counts[state]} {state.lower()}" for state in ordered if counts[state]]
    return f"{len(tasks)} tasks: " + (", ".join(parts) if parts else "none recorded yet")


def duration(start: datetime | None, stop: datetime | None, now: datetime) -> str:
    if start is None:
        return "-"
    seconds = int(((stop or now) - start).total_seconds())
    hours, rest = divmod(max(seconds, 0), 3600)
    return f"{hours}h{rest // 60:02d}m{rest % 60:02d}s" if hours else f"{rest // 60}m{rest % 60:02d}s"


def outputs_text(published: tuple[int, int] | None) -> str:
    if published is None:
        return "-"
    files, size = published
    return f"{files} ({_human_bytes(size)})"


def tasks_table(
    tasks: list[dict[str, Any]], checkpoints: dict[str, int], outputs: dict[str, tuple[int, int]] | None = None
) -> Table:
    # Compact box and headers: CI logs and pipes render at 80 columns.
    table = Table(expand=False, box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("task", style="bold", no_wrap=True)
    table.add_column("state")
    table.add_column("attempts", justify="right")
    table.add_column("interrupts", justify="right")
    table.add_column("ckpts", justify="right")
    table.add_column("queue")
    table.add_column("memory MiB")  # of each attempt: out-of-memory retries ask for more
    table.add_column("lost s", justify="right")  # compute lost by each Spot reclaim
    table.add_column("restore s", justify="right")  # each restore's duration
    if outputs is not None:
        table.add_column("outputs", justify="right")
    table.add_column("cost $", justify="right")
    table.add_column("last failure", overflow="fold")
    for task in tasks:
        state = str(task.get(Task.STATE, TaskState.PENDING))
        published = [outputs_text(outputs.get(task["task_id"]))] if outputs is not None else []
        memories = _attempt_memories(task)
        table.add_row(
            task["task_id"],
            Text(state, style=STATE_STYLES.get(state, "")),
            str(task.get(Task.ATTEMPTS, 0)),
            str(task.get(Task.INTERRUPTIONS, 0)),
            str(checkpoints.get(task["task_id"], 0)),
            str(task.get(Task.QUEUE) or "-"),
            ", ".join(str(m) if m else "?" for m in memories) or "-",
            seconds_list(_health(task)["lost_work_seconds"]),
            seconds_list(_health(task)["restore_seconds"]),
            *published,
            f"{totals_from_item(task).total_usd:.4f}",
            str(task.get(Task.LAST_FAILURE_CLASS) or ""),
        )
    return table


def _health(task: dict[str, Any]) -> dict[str, Any]:
    """The task's checkpoint health (``snapshot`` adds the live one from its run records)."""
    return task.get("health") or task_health(task, [])


def health_warnings(tasks: list[dict[str, Any]]) -> list[str]:
    return [f"{task['task_id']}: {_health(task)['warning']}" for task in tasks if _health(task)["warning"]]


def _attempt_memories(task: dict[str, Any]) -> list[int | None]:
    return memory_by_attempt(
        int(task.get(Task.ATTEMPTS, 0)), task.get(Task.BASE_MEMORY), task.get(Task.MEMORY_ESCALATIONS)
    )


def cost_document(item: dict[str, Any] | None) -> dict[str, Any]:
    """The cost ledger's sums on a task or workflow item (the workflow monitor adds each finished job)."""
    return totals_from_item(item or {}).to_dict()


def execution_header(execution: ExecutionSummary, console_url: str, now: datetime) -> Text:
    text = Text()
    text.append(f"{execution.workflow_id}  ", style="bold")
    text.append(execution.status, style=EXECUTION_STYLES.get(execution.status, ""))
    text.append(f"  {duration(execution.start_date, execution.stop_date, now)}")
    if execution.redrive_count:
        text.append(f"  (redriven {execution.redrive_count}x)")
    if execution.error:
        text.append(f"\n{execution.error}: {execution.cause or ''}".rstrip(": "), style="red")
    text.append(f"\n{console_url}", style="dim")
    return text


def status_document(
    execution: ExecutionSummary,
    meta: dict[str, Any] | None,
    tasks: list[dict[str, Any]],
    checkpoints: dict[str, int],
    outputs: dict[str, tuple[int, int]] | None = None,
) -> dict[str, Any]:
    """The `status --json` document: stable keys for scripts."""
    return {
        "workflow_id": execution.workflow_id,
        "execution_arn": execution.arn,
        "status": execution.status,
        "start_date": execution.start_date.isoformat() if execution.start_date else None,
        "stop_date": execution.stop_date.isoformat() if execution.stop_date else None,
        "error": execution.error,
        "name": (meta or {}).get(Workflow.NAME),
        "counts": dict(task_counts(tasks)),
        "tasks": [
            {
                "id": task["task_id"],
                "state": task.get(Task.STATE, TaskState.PENDING),
                "attempts": task.get(Task.ATTEMPTS, 0),
                "interruptions": task.get(Task.INTERRUPTIONS, 0),
                "checkpoints": checkpoints.get(task["task_id"], 0),
                "queue": task.get(Task.QUEUE),
                "memory_mib": _attempt_memories(task),
                "job_id": task.get(Task.JOB_ID),
                "last_failure_class": task.get(Task.LAST_FAILURE_CLASS),
                "outputs": _outputs_json((outputs or {}).get(task["task_id"])),
                "cost": cost_document(task),
                "checkpoint_empty": _health(task)["checkpoint_empty"],
                "lost_work_seconds": _health(task)["lost_work_seconds"],
                "restore_seconds": _health(task)["restore_seconds"],
            }
            for task in tasks
        ],
        "cost": cost_document(meta),
    }


def _outputs_json(published: tuple[int, int] | None) -> dict[str, int] | None:
    return None if published is None else {"files": published[0], "bytes": published[1]}


# --------------------------------------------------------------------------- reading


def published_outputs(
    context: RemoteContext, workflow_id: str, tasks: list[dict[str, Any]]
) -> dict[str, tuple[int, int]]:
    """(files, bytes) each succeeded task published; one manifest read per succeeded task, in parallel."""
    from stepspot.aws.run_outputs import RunOutputs

    succeeded = [t["task_id"] for t in tasks if t.get(Task.STATE) == TaskState.SUCCEEDED]
    store = RunOutputs(context.client("s3"), context.deployment.bucket_name)
    return {
        task: (len(files), sum(f.size for f in files))
        for task, files in store.manifests(workflow_id, succeeded).items()
    }


def snapshot(
    context: RemoteContext, workflow_id: str, with_checkpoints: bool = True
) -> tuple[ExecutionSummary, dict[str, Any] | None, list[dict[str, Any]], dict[str, int]]:
    execution = context.executions.latest_for_workflow(workflow_id)
    meta, tasks = context.records.workflow_items(workflow_id)
    checkpoints: dict[str, int] = {}
    if with_checkpoints:
        for task in tasks:
            # Only tasks that ran can have checkpoints: one query each, none for the pending ones.
            if task.get(Task.ATTEMPTS) or task.get(Task.STATE) not in (None, TaskState.PENDING):
                items, _, runs = context.records.checkpoints_and_runs(workflow_id, task["task_id"])
                checkpoints[task["task_id"]] = len(items)
                task["health"] = task_health(task, runs)
    return execution, meta, tasks, checkpoints


# --------------------------------------------------------------------------- commands


@usage_errors_exit_2
def run_status(args: argparse.Namespace) -> int:
    context = RemoteContext.from_args(args)
    now = datetime.now(UTC)
    if args.workflow is None:
        recent = context.executions.recent(args.limit)
        if args.json:
            print(json.dumps([{"name": e.name, "status": e.status, "execution_arn": e.arn} for e in recent], indent=2))
            return EXIT_OK
        if not recent:
            console.print(f"No workflows in {context.deployment.environment} yet: `stepspot submit FILE` starts one.")
            return EXIT_OK
        table = Table(title=f"Recent workflows in {context.deployment.environment}", title_justify="left")
        for column in ("workflow execution", "status", "started", "duration"):
            table.add_column(column)
        for e in recent:
            started = e.start_date.strftime("%Y-%m-%d %H:%M") if e.start_date else "-"
            table.add_row(
                e.name,
                Text(e.status, EXECUTION_STYLES.get(e.status, "")),
                started,
                duration(e.start_date, e.stop_date, now),
            )
        console.print(table)
        return EXIT_OK
    workflow_id = workflow_id_from(args.workflow)
    execution, meta, tasks, checkpoints = snapshot(context, workflow_id)
    outputs = published_outputs(context, workflow_id, tasks)
    if args.json:
        print(json.dumps(status_document(execution, meta, tasks, checkpoints, outputs), indent=2, default=str))
        return EXIT_OK
    console.print(
        execution_header(execution, context.deployment.console_execution_url(execution.arn), now), soft_wrap=True
    )
    console.print(counts_line(tasks))
    if tasks:
        console.print(tasks_table(tasks, checkpoints, outputs))
    for warning in health_warnings(tasks):
        console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    for task in tasks:
        if task.get(Task.STATE) == TaskState.FAILED:
            _print_failure(context, task)
    console.print(f"cost so far: {cost_line(cost_document(meta))}", highlight=False, soft_wrap=True)
    return EXIT_OK


FAILURE_LOG_LINES = 8  # lines of a failed task's job log that `status` shows (its cause, usually)


def _print_failure(context: RemoteContext, task: dict[str, Any]) -> None:
    """A failed task's cause: its last failure and the tail of its last job's CloudWatch log."""
    cause = task.get(Task.LAST_FAILURE) or task.get(Task.LAST_FAILURE_CLASS) or "no failure recorded"
    console.print(f"task {task['task_id']} failed: {cause}", highlight=False, markup=False, soft_wrap=True)
    job_id = task.get(Task.JOB_ID)
    if not job_id:
        return
    job_logs = JobLogs(context.client("batch"), context.client("logs"), context.deployment.batch_log_group_name)
    try:
        stream = job_logs.log_stream(str(job_id))
        lines = list(job_logs.events(stream, start_from_head=False, limit=FAILURE_LOG_LINES))
    except StepspotError as exc:
        console.print(f"  (its log cannot be read: {exc.message})", style="dim", highlight=False, markup=False)
        return
    console.print(f"  last lines of {stream}:", style="dim", highlight=False, markup=False)
    for line in lines:
        console.print(f"    {line.message.rstrip()}", highlight=False, markup=False, soft_wrap=True)


@usage_errors_exit_2
def run_watch(args: argparse.Namespace) -> int:
    context = RemoteContext.from_args(args)
    return watch_workflow(context, workflow_id_from(args.workflow), args.interval)


def watch_workflow(context: RemoteContext, workflow_id: str, interval: float) -> int:
    """Follow until the execution ends: live table on a terminal, one line per change elsewhere.
    Ctrl-C stops watching only (exit 130); the workflow keeps running on AWS."""
    try:
        return _watch(context, workflow_id, interval)
    except KeyboardInterrupt:
        err_console.print(
            f"stopped watching; workflow {workflow_id} keeps running (`stepspot status {workflow_id}`, "
            f"`stepspot cancel {workflow_id}` to stop it).",
            highlight=False,
            soft_wrap=True,
        )
        return EXIT_INTERRUPTED


def _watch(context: RemoteContext, workflow_id: str, interval: float) -> int:
    url_for = context.deployment.console_execution_url
    if console.is_terminal:
        # The live view owns the terminal: nothing else writes to stdout/stderr while it is shown.
        with Live(console=console, auto_refresh=False, redirect_stdout=False, redirect_stderr=False) as live:
            while True:
                execution, _, tasks, checkpoints = snapshot(context, workflow_id)
                now = datetime.now(UTC)
                view = Group(
                    execution_header(execution, url_for(execution.arn), now),
                    Text(counts_line(tasks)),
                    tasks_table(tasks, checkpoints),
                )
                live.update(view, refresh=True)
                if execution.finished:
                    break
                sleep(interval)
    else:
        seen: dict[str, tuple[Any, ...]] = {}
        last_status = ""
        while True:
            execution, _, tasks, _ = snapshot(context, workflow_id, with_checkpoints=False)
            stamp = datetime.now(UTC).strftime("%H:%M:%S")
            if execution.status != last_status:
                console.print(f"{stamp} workflow {workflow_id}: {execution.status}", highlight=False)
                last_status = execution.status
            for task in tasks:
                key = (task.get(Task.STATE), task.get(Task.ATTEMPTS, 0), task.get(Task.INTERRUPTIONS, 0))
                if seen.get(task["task_id"]) != key:
                    seen[task["task_id"]] = key
                    console.print(
                        f"{stamp} {task['task_id']}: {key[0] or 'PENDING'} (attempts {key[1]}, interruptions {key[2]})",
                        highlight=False,
                    )
            if execution.finished:
                console.print(f"{stamp} {counts_line(tasks)}", highlight=False)
                break
            sleep(interval)
    if execution.status == "SUCCEEDED":
        console.print(f"[green]Workflow {workflow_id} succeeded.[/]", highlight=False)
        return EXIT_OK
    err_console.print(
        f"[red]Workflow {workflow_id} ended {execution.status}[/]"
        + (f": {execution.error}" if execution.error else "")
        + f". Details: stepspot status {workflow_id}; retry: stepspot resume {workflow_id}",
        highlight=False,
        soft_wrap=True,
    )
    return EXIT_FAILED


@usage_errors_exit_2
def run_logs(args: argparse.Namespace) -> int:
    context = RemoteContext.from_args(args)
    workflow_id = workflow_id_from(args.workflow)
    _, tasks = context.records.workflow_items(workflow_id)
    task = next((t for t in tasks if t["task_id"] == args.task), None)
    if task is None:
        if not tasks:
            raise WorkflowNotFoundError(
                f"No workflow {workflow_id!r} in {context.deployment.environment}: `stepspot status` lists the "
                "recent ones."
            )
        task_list = ", ".join(t["task_id"] for t in tasks)
        raise WorkflowNotFoundError(f"Workflow {workflow_id!r} has no task {args.task!r}: its tasks are {task_list}.")
    job_id = task.get(Task.JOB_ID)
    if not job_id:
        err_console.print(
            f"stepspot: task {args.task!r} has not started a Batch job yet "
            f"(state {task.get(Task.STATE, TaskState.PENDING)}).",
            highlight=False,
        )
        return EXIT_USAGE
    job_logs = JobLogs(context.client("batch"), context.client("logs"), context.deployment.batch_log_group_name)
    stream = job_logs.log_stream(str(job_id), args.attempt)
    err_console.print(f"[dim]{context.deployment.batch_log_group_name} {stream}[/]", highlight=False)
    if not args.follow:
        for line in job_logs.events(stream, start_from_head=False, limit=args.tail):
            _print_log_line(line.timestamp_ms, line.message)
        return EXIT_OK
    token: str | None = None
    while True:
        lines, next_token = job_logs.follow_page(stream, token)
        for line in lines:
            _print_log_line(line.timestamp_ms, line.message)
        _, tasks = context.records.workflow_items(workflow_id)
        state = next((t.get(Task.STATE) for t in tasks if t["task_id"] == args.task), None)
        if not lines and state in FINAL_TASK_STATES:
            return EXIT_OK
        token = next_token
        sleep(2.0)


def _print_log_line(timestamp_ms: int, message: str) -> None:
    stamp = datetime.fromtimestamp(timestamp_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    sys.stdout.write(f"{stamp} {message.rstrip()}\n")


@usage_errors_exit_2
def run_checkpoints(args: argparse.Namespace) -> int:
    context = RemoteContext.from_args(args)
    workflow_id = workflow_id_from(args.workflow)
    _, tasks = context.records.workflow_items(workflow_id)
    task_ids = [t["task_id"] for t in tasks]
    if args.task:
        if tasks and args.task not in task_ids:
            raise WorkflowNotFoundError(
                f"Workflow {workflow_id!r} has no task {args.task!r}: its tasks are {', '.join(task_ids)}."
            )
        task_ids = [args.task]
    elif not tasks:
        raise WorkflowNotFoundError(
            f"No workflow {workflow_id!r} in {context.deployment.environment}: `stepspot status` lists the recent ones."
        )
    rows = []
    for task_id in task_ids:
        items, latest = context.records.checkpoints(workflow_id, task_id)
        for item in items:
            sequence = int(item.get(SEQUENCE_FIELD) or sequence_from_sk(str(item[SK])))
            rows.append(
                {
                    "task_id": task_id,
                    "sequence": sequence,
                    "status": item.get(STATUS_FIELD, ""),
                    "created_at": item.get(CREATED_AT_FIELD, ""),
                    "file_count": item.get("file_count", 0),
                    "total_bytes": item.get("total_bytes", 0),
                    "latest": sequence == latest,
                    "uri": s3_uri(context.deployment.bucket_name, sequence_prefix(workflow_id, task_id, sequence)),
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return EXIT_OK
    if not rows:
        scope = f"task {args.task!r}" if args.task else f"workflow {workflow_id!r}"
        console.print(f"No checkpoints for {scope} yet.")
        return EXIT_OK
    table = Table(title=f"Checkpoints of {workflow_id}", title_justify="left")
    for column in ("task", "seq", "status", "created", "files", "size", "resume point"):
        table.add_column(column, justify="right" if column in {"seq", "files", "size"} else "left")
    for row in rows:
        table.add_row(
            row["task_id"],
            str(row["sequence"]),
            str(row["status"]),
            str(row["created_at"]),
            str(row["file_count"]),
            _human_bytes(int(row["total_bytes"] or 0)),
            "*" if row["latest"] else "",
        )
    console.print(table)
    return EXIT_OK


def _human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
