"""`stepspot report WORKFLOW -o report.html`: a deployed workflow's run report (one self-contained HTML file).

Reads the workflow's execution, its state table items (task states and the cost ledger the workflow
monitor keeps), its plan (the DAG) and its checkpoint items. `stepspot local --report` writes the same
page for a local run.
"""

from __future__ import annotations

import argparse

from stepspot.cli.output import console, err_console
from stepspot.cli.remote_context import (
    EXIT_OK,
    EXIT_USAGE,
    RemoteContext,
    usage_errors_exit_2,
    workflow_id_from,
)
from stepspot.errors import WorkflowNotFoundError
from stepspot.scheduler import TaskState
from stepspot.state_items import Task


@usage_errors_exit_2
def run_report(args: argparse.Namespace) -> int:
    from stepspot.aws.plan_objects import read_whole_plan
    from stepspot.aws.s3 import DocumentStore
    from stepspot.report.from_state import run_record_from_state
    from stepspot.report.html import ReportPathError, check_report_path, write_report

    try:
        check_report_path(args.output)
    except ReportPathError as exc:
        err_console.print(f"stepspot: {exc.message}", highlight=False, soft_wrap=True)
        return EXIT_USAGE
    context = RemoteContext.from_args(args)
    workflow_id = workflow_id_from(args.workflow)
    execution = context.executions.latest_for_workflow(workflow_id)
    meta, tasks = context.records.workflow_items(workflow_id)
    if meta is None:
        raise WorkflowNotFoundError(
            f"workflow {workflow_id} has no record in {context.deployment.environment}; "
            "check the id with `stepspot status`",
            workflow_id=workflow_id,
        )
    depends_on: dict[str, list[str]] = {}
    if meta.get("plan_uri"):
        documents = DocumentStore(context.client("s3"), context.deployment.bucket_name)
        plan = read_whole_plan(documents, str(meta["plan_uri"]))  # the DAG needs every task
        depends_on = {task_id: list(task.depends_on) for task_id, task in plan.tasks.items()}
    checkpoint_items = {
        str(task["task_id"]): context.records.checkpoints(workflow_id, str(task["task_id"]))[0]
        for task in tasks
        if task.get(Task.ATTEMPTS) or task.get(Task.STATE) not in (None, TaskState.PENDING)
    }
    record = run_record_from_state(
        workflow_id=workflow_id,
        status=execution.status,
        environment=context.deployment.environment,
        region=context.deployment.region,
        meta=meta,
        tasks=tasks,
        depends_on=depends_on,
        checkpoint_items=checkpoint_items,
    )
    size = write_report(record, args.output)
    console.print(f"report written to {args.output} ({size / 1e6:.2f} MB)", highlight=False)
    return EXIT_OK
