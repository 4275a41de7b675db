"""Operator notices (subject + plain-text body + attributes) for SNS. Pure: the handlers publish them.

A notice answers, in order: what happened, to which workflow, which task failed and why (failure class),
and where to look (console link). SNS email subscribers see the body as it is, so it is plain text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from stepspot.events import ExecutionStatusDetail
from stepspot.state_items import SK, Task, Workflow
from stepspot.state_keys import task_id_from_sk

CAUSE_LIMIT = 1500


@dataclass(frozen=True)
class Notice:
    subject: str
    message: str
    attributes: dict[str, str] = field(default_factory=dict)


def execution_console_url(execution_arn: str, region: str) -> str:
    return (
        f"https://{region}.console.aws.amazon.com/states/home?region={region}"
        f"#/v2/executions/details/{quote(execution_arn, safe=':')}"
    )


def _when(epoch_ms: int | None) -> str:
    if epoch_ms is None:
        return "-"
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(start_ms: int, stop_ms: int | None) -> str:
    if stop_ms is None:
        return "-"
    seconds = max(0, (stop_ms - start_ms) // 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s"


def _clip(text: str | None, limit: int = CAUSE_LIMIT) -> str:
    if not text:
        return "-"
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _failed_task_lines(failed_tasks: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = []
    for item in failed_tasks:
        task_id = task_id_from_sk(str(item[SK]))
        failure_class = item.get(Task.LAST_FAILURE_CLASS) or "unclassified"
        reason = item.get(Task.JOB_STATUS_REASON) or "-"
        attempts = item.get(Task.ATTEMPTS, item.get(Task.JOB_ATTEMPTS, "-"))
        lines.append(f"  - {task_id}: class {failure_class}, attempts {attempts}, last reason: {_clip(reason, 300)}")
    return lines


def workflow_notice(
    detail: ExecutionStatusDetail,
    *,
    workflow_id: str,
    environment: str,
    region: str,
    workflow: Mapping[str, Any] | None,
    failed_tasks: Sequence[Mapping[str, Any]],
) -> Notice:
    """The notice for a workflow execution that ended (succeeded, failed, timed out or was aborted)."""
    name = str((workflow or {}).get(Workflow.NAME) or workflow_id)
    status = detail.status
    first_failed = failed_tasks[0] if failed_tasks else None
    failure_class = str(first_failed.get(Task.LAST_FAILURE_CLASS) or "unclassified") if first_failed else None
    failed_task = task_id_from_sk(str(first_failed[SK])) if first_failed else None
    if status == "SUCCEEDED":
        subject = f"stepspot [{environment}] workflow {name} succeeded"
    elif failed_task:
        subject = f"stepspot [{environment}] workflow {name} {status}: task {failed_task} ({failure_class})"
    else:
        subject = f"stepspot [{environment}] workflow {name} {status}"
    lines = [
        f"Workflow {name} ({workflow_id}) {status.replace('_', ' ').lower()} in environment {environment}.",
        "",
        f"Started:   {_when(detail.start_date)}",
        f"Stopped:   {_when(detail.stop_date)}",
        f"Duration:  {_duration(detail.start_date, detail.stop_date)}",
    ]
    if workflow:
        if workflow.get(Workflow.TOTAL_TASKS) is not None:
            lines.append(
                f"Tasks:     {workflow.get(Workflow.SUCCEEDED, 0)} succeeded, {workflow.get(Workflow.FAILED, 0)} failed"
                f" of {workflow.get(Workflow.TOTAL_TASKS)}"
            )
    else:
        lines.append("Tasks:     unknown (the workflow was not registered: it failed before or while parsing)")
    if status != "SUCCEEDED":
        lines += ["", f"Error:     {detail.error or '-'}", f"Cause:     {_clip(detail.cause)}"]
        if failed_tasks:
            lines += ["", "Failed tasks (class of failure):", *_failed_task_lines(failed_tasks)]
        if detail.status == "FAILED":
            lines += ["", "Fix the cause, then redrive the execution to resume from the failed state."]
    lines += [
        "",
        f"Execution: {detail.execution_arn}",
        f"Console:   {execution_console_url(detail.execution_arn, region)}",
    ]
    attributes = {
        "environment": environment,
        "event": "workflow",
        "status": status,
        "workflow_id": workflow_id,
    }
    if failure_class:
        attributes["failure_class"] = failure_class
    return Notice(subject=subject, message="\n".join(lines), attributes=attributes)


def task_execution_notice(
    detail: ExecutionStatusDetail, *, workflow_id: str, task_id: str, environment: str, region: str
) -> Notice:
    """The notice for a task state-machine execution that did not succeed (the ASL itself failed)."""
    subject = f"stepspot [{environment}] task {task_id} of workflow {workflow_id} {detail.status}"
    lines = [
        f"The task execution of {task_id} (workflow {workflow_id}) ended {detail.status} in {environment}.",
        "The workflow waits for this task; check whether the scheduler was told (TaskFailed state).",
        "",
        f"Started:   {_when(detail.start_date)}",
        f"Stopped:   {_when(detail.stop_date)}",
        f"Error:     {detail.error or '-'}",
        f"Cause:     {_clip(detail.cause)}",
        "",
        f"Execution: {detail.execution_arn}",
        f"Console:   {execution_console_url(detail.execution_arn, region)}",
    ]
    attributes = {
        "environment": environment,
        "event": "task_execution",
        "status": detail.status,
        "workflow_id": workflow_id,
        "task_id": task_id,
    }
    return Notice(subject=subject, message="\n".join(lines), attributes=attributes)


@dataclass(frozen=True)
class AffectedTask:
    workflow_id: str
    task_id: str
    job_id: str


def interruption_notice(
    *,
    kind: str,
    instance_id: str,
    instance_action: str | None,
    instance_type: str,
    availability_zone: str,
    compute_environment: str,
    environment: str,
    tasks: Sequence[AffectedTask],
) -> Notice:
    """The notice for a Spot interruption warning that hits stepspot tasks."""
    count = len(tasks)
    subject = (
        f"stepspot [{environment}] Spot interruption: {instance_id} ({instance_type}, {availability_zone}),"
        f" {count} task{'s' if count != 1 else ''}"
    )
    lines = [
        f"EC2 will {instance_action or 'terminate'} Spot instance {instance_id} ({instance_type},"
        f" {availability_zone}, compute environment {compute_environment}) in about two minutes.",
        "The checkpoint agent uploads a final checkpoint; the task resumes from it on its next attempt.",
        "",
        "Tasks on the instance:",
        *[f"  - {t.task_id} of workflow {t.workflow_id} (Batch job {t.job_id})" for t in tasks],
    ]
    attributes = {"environment": environment, "event": kind, "instance_id": instance_id}
    return Notice(subject=subject, message="\n".join(lines), attributes=attributes)
