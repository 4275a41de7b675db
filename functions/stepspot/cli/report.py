"""`stepspot report WORKFLOW -o report.html`: a deployed workflow's run report (one self-contained HTML file).

Reads the workflow's execution, its state table items (task states and the cost ledger the workflow
monitor keeps), its plan (the DAG) and its checkpoint items. `stepspot local --report` writes the same
page for a local run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stepspot.cli.output import console, err_console
from stepspot.cli.remote_context import (
    EXIT_OK,
    EXIT_USAGE,
    RemoteContext,
    add_env_argument,
    add_workflow_argument,
    usage_errors_exit_2,
    workflow_id_from,
)
from stepspot.errors import WorkflowNotFoundError
from stepspot.scheduler import TaskState
from stepspot.state_items import Task


def register(subparsers: argparse._SubParsersAction) -> None:
    report = subparsers.add_parser(
        "report",
        help="write a workflow's run report: timeline, DAG, cost and savings (one HTML file)",
        description="Write one self-contained HTML file (opens offline) telling what a workflow did: a "
        "timeline of every attempt (Spot/On-Demand, reclaims, checkpoints, waits), the DAG with each "
        "task's state, the cost ledger against all On-Demand, lost work and failure classes.",
    )
    add_workflow_argument(report, "workflow to report on")
    add_env_argument(report)
    report.add_argument("-o", "--output", type=Path, required=True, metavar="PATH", help="HTML file to write")
    report.set_defaults(handler=run_report)


@usage_errors_exit_2
def run_report(args: argparse.Namespace) -> int:
    from stepspot.aws.s3 import DocumentStore
    from stepspot.plan import plan_from_json
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
        plan = plan_from_json(documents.read(str(meta["plan_uri"])))
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
