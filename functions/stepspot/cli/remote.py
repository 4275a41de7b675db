"""`stepspot submit`, `cancel` and `resume`: start, stop and continue workflows on a deployed environment.

Submit validates with the same code as `stepspot validate`, uploads the definition to
`s3://<bucket>/workflows/<id>/definition.json` and starts the workflow state machine with the input
`{"workflow_id": ..., "definition_uri": ...}`; the execution name is the workflow id. A resubmission
(`resume --resubmit`) keeps the workflow id, so checkpoints and task items carry over, adds
`"skip_tasks": [ids of the tasks that succeeded]` and `"resubmission": n`, and is named
`<workflow id>--r<n>` (docs/contracts.md, "Workflow state machine input").
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from stepspot.aws.cli_errors import aws_call
from stepspot.aws.executions import REDRIVABLE_STATUSES, RESUBMIT_SEPARATOR, ExecutionSummary
from stepspot.aws.s3 import DocumentStore, definition_key
from stepspot.capacity import DeploymentCapacity
from stepspot.capacity_sources import (
    CAPACITY_OUTPUTS,
    QUEUE_OUTPUTS,
    deployed_capacity,
    described_capacity,
    offline_capacity,
)
from stepspot.cli.capacity_check import ensure_fits, ensure_fits_environment
from stepspot.cli.commands import MAX_WORKFLOW_ID_LENGTH
from stepspot.cli.data_checks import refuses_missing_shared_filesystem, refuses_unreadable_inputs
from stepspot.cli.output import console, err_console
from stepspot.cli.remote_context import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    WORKFLOW_ID_RE,
    RemoteContext,
    new_workflow_id,
    usage_errors_exit_2,
    workflow_id_from,
)
from stepspot.deployment import Deployment
from stepspot.errors import AwsAccessDeniedError
from stepspot.scheduler import TaskState
from stepspot.state_items import Task
from stepspot.workflow import LoadedWorkflow, load_workflow_file

# AWS allows RedriveExecution for 14 days after an execution stopped.
REDRIVE_WINDOW = timedelta(days=14)


# --------------------------------------------------------------------------- submit


def read_document(path: Path) -> dict[str, Any]:
    """The definition as submitted (JSON or YAML), re-encoded as JSON for the parser Lambda."""
    text = path.read_text(encoding="utf-8")
    document = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    return dict(document)


def upload_definition(context: RemoteContext, workflow_id: str, path: Path) -> str:
    """Put the definition where the parser Lambda reads it: s3://<bucket>/workflows/<id>/definition.json."""
    body = json.dumps(read_document(path), indent=2).encode()
    store = DocumentStore(context.client("s3"), context.deployment.bucket_name)
    with aws_call("upload the workflow definition"):  # credentials errors are not ClientErrors
        return store.put(definition_key(workflow_id), body)


def validate_locally(path: Path) -> LoadedWorkflow:
    loaded = load_workflow_file(path)  # raises WorkflowValidationError: printed by the CLI root, exit 2
    tasks = len(loaded.workflow.tasks)
    console.print(f"[green]✓[/] validated  {path}: {tasks} task{'s' if tasks != 1 else ''}", highlight=False)
    for warning in loaded.warnings:
        err_console.print(f"  [yellow]warning[/] {warning}", highlight=False, soft_wrap=True)
    return loaded


@usage_errors_exit_2
def run_submit(args: argparse.Namespace) -> int:
    if args.execution_name is not None and not WORKFLOW_ID_RE.match(args.execution_name):
        err_console.print(
            f"stepspot: --execution-name {args.execution_name!r} must be 1-{MAX_WORKFLOW_ID_LENGTH} letters, "
            "digits, '-' or '_'.",
            highlight=False,
        )
        return EXIT_USAGE
    loaded = validate_locally(args.file)
    ensure_fits_environment(loaded, args.env)  # offline, from the environment's Terraform variables
    context = RemoteContext.from_args(args)  # after validation: a bad file never needs AWS
    if _refuses_data_requests(args.file, loaded, context.deployment):
        return EXIT_USAGE
    workflow_id = args.execution_name or new_workflow_id(loaded.workflow.name)
    context.executions.ensure_name_free(workflow_id)
    ensure_fits(loaded, _deployed_capacity(context, args.env))  # before anything is uploaded or started
    definition_uri = upload_definition(context, workflow_id, args.file)
    console.print(f"[green]✓[/] uploaded   {definition_uri}", highlight=False)
    execution_arn = context.executions.start(
        workflow_id, {"workflow_id": workflow_id, "definition_uri": definition_uri}
    )
    _print_started(context, workflow_id, execution_arn)
    if args.watch:
        from stepspot.cli.remote_status import watch_workflow

        return watch_workflow(context, workflow_id, args.interval)
    return EXIT_OK


def _refuses_data_requests(path: Path, loaded: LoadedWorkflow, deployment: Deployment) -> bool:
    """A shared file system or ``uri`` buckets the deployment lacks: printed, True (exit 2, nothing started)."""
    lacks_filesystem = refuses_missing_shared_filesystem(
        path, loaded, deployment.environment, deployment.has_shared_filesystem
    )
    return refuses_unreadable_inputs(path, loaded, deployment) or lacks_filesystem


def _deployed_capacity(context: RemoteContext, environment: str) -> DeploymentCapacity:
    """The deployed queues: from the Terraform outputs when they list the instance types (CONTRACTS.md),
    else as AWS Batch describes the compute environments behind the queues."""
    outputs = context.deployment.other_outputs
    if any(outputs.get(name) for name in CAPACITY_OUTPUTS):
        return deployed_capacity(environment, outputs)
    arns = {
        "spot": context.deployment.spot_job_queue_arn,
        "on-demand": context.deployment.ondemand_job_queue_arn,
        **{key: outputs[name] for key, name in QUEUE_OUTPUTS.items() if outputs.get(name)},
    }
    try:
        with aws_call("describe the compute environments"):
            return described_capacity(environment, context.client("batch"), arns)
    except AwsAccessDeniedError as exc:  # a role without batch:Describe*: the Terraform variables still tell
        err_console.print(f"  [yellow]note[/] {exc.message} Checked against the Terraform variables.", highlight=False)
        return offline_capacity(environment)


def _print_started(context: RemoteContext, workflow_id: str, execution_arn: str) -> None:
    env = context.deployment.environment
    console.print(f"[green]✓[/] started    {execution_arn}", highlight=False, soft_wrap=True)
    console.print(f"  workflow   [bold]{workflow_id}[/]", highlight=False)
    console.print(
        f"  console    {context.deployment.console_execution_url(execution_arn)}", highlight=False, soft_wrap=True
    )
    console.print(f"  next       stepspot watch {workflow_id} --env {env}", highlight=False)


# --------------------------------------------------------------------------- cancel


@usage_errors_exit_2
def run_cancel(args: argparse.Namespace) -> int:
    context = RemoteContext.from_args(args)
    workflow_id = workflow_id_from(args.workflow)
    execution = context.executions.latest_for_workflow(workflow_id)
    if execution.finished:
        console.print(f"Workflow {workflow_id} already ended {execution.status}: nothing to cancel.")
        return EXIT_OK
    if not args.yes:
        if not sys.stdin.isatty():
            err_console.print("stepspot: cancel needs --yes when not run from a terminal.", highlight=False)
            return EXIT_USAGE
        answer = console.input(f"Stop workflow [bold]{workflow_id}[/] and its running tasks? [y/N] ")
        if answer.strip().lower() not in {"y", "yes"}:
            console.print("Nothing stopped.")
            return EXIT_FAILED
    context.executions.stop(execution.arn, args.reason)
    console.print(f"[yellow]■[/] stopped    {execution.arn}", highlight=False, soft_wrap=True)
    _, tasks = context.records.workflow_items(workflow_id)
    stopped = 0
    for task in tasks:
        task_execution = task.get(Task.EXECUTION_ARN)
        if task.get(Task.STATE) == TaskState.RUNNING and task_execution:
            # Stopping a task execution makes Step Functions terminate its `.sync` Batch job.
            context.executions.stop(str(task_execution), args.reason)
            stopped += 1
    console.print(f"  tasks      {stopped} running task execution(s) stopped; checkpoints kept", highlight=False)
    console.print(f"  next       stepspot resume {workflow_id} --env {context.deployment.environment}", highlight=False)
    return EXIT_OK


# --------------------------------------------------------------------------- resume


def redrivable(execution: ExecutionSummary, now: datetime) -> bool:
    return (
        execution.status in REDRIVABLE_STATUSES
        and execution.stop_date is not None
        and now - execution.stop_date <= REDRIVE_WINDOW
    )


def next_resubmission_name(workflow_id: str, existing: list[str]) -> str:
    numbers = [
        int(name.rsplit(RESUBMIT_SEPARATOR, 1)[1])
        for name in existing
        if name.rsplit(RESUBMIT_SEPARATOR, 1)[-1].isdigit()
    ]
    return f"{workflow_id}{RESUBMIT_SEPARATOR}{max(numbers, default=0) + 1}"


@usage_errors_exit_2
def run_resume(args: argparse.Namespace) -> int:
    if args.definition is not None and not args.resubmit:
        err_console.print("stepspot: --definition only applies with --resubmit.", highlight=False)
        return EXIT_USAGE
    loaded = validate_locally(args.definition) if args.definition is not None else None
    if loaded is not None:
        ensure_fits_environment(loaded, args.env)
    context = RemoteContext.from_args(args)
    if loaded is not None and _refuses_data_requests(args.definition, loaded, context.deployment):
        return EXIT_USAGE
    workflow_id = workflow_id_from(args.workflow)
    execution = context.executions.latest_for_workflow(workflow_id)
    if execution.status == "RUNNING":
        err_console.print(
            f"stepspot: workflow {workflow_id} is still running: `stepspot watch {workflow_id}`.", highlight=False
        )
        return EXIT_USAGE
    if execution.status == "SUCCEEDED":
        console.print(f"Workflow {workflow_id} already succeeded: nothing to resume.")
        return EXIT_OK
    now = datetime.now(UTC)
    if not args.resubmit and (args.redrive or redrivable(execution, now)):
        if not redrivable(execution, now):
            err_console.print(
                f"stepspot: execution {execution.name} ({execution.status}) cannot be redriven (only failed, "
                "timed-out or aborted executions that stopped less than 14 days ago can): use --resubmit.",
                highlight=False,
                soft_wrap=True,
            )
            return EXIT_USAGE
        context.executions.redrive(execution.arn)
        console.print(f"[green]✓[/] redriven   {execution.arn}", highlight=False, soft_wrap=True)
        console.print(
            f"  console    {context.deployment.console_execution_url(execution.arn)}", highlight=False, soft_wrap=True
        )
        if args.watch:
            from stepspot.cli.remote_status import watch_workflow

            return watch_workflow(context, workflow_id, args.interval)
        return EXIT_OK
    return _resubmit(context, args, workflow_id, loaded)


def _resubmit(context: RemoteContext, args: argparse.Namespace, workflow_id: str, loaded: LoadedWorkflow | None) -> int:
    _, tasks = context.records.workflow_items(workflow_id)
    finished = [t["task_id"] for t in tasks if t.get(Task.STATE) == TaskState.SUCCEEDED]
    bucket = context.deployment.bucket_name
    if loaded is not None:
        known = {task.id for task in loaded.workflow.tasks}
        dropped = [task_id for task_id in finished if task_id not in known]
        if dropped:
            err_console.print(
                f"  [yellow]note[/] not in the new definition, so not skipped: {', '.join(dropped)}", highlight=False
            )
        finished = [task_id for task_id in finished if task_id in known]
        definition_uri = upload_definition(context, workflow_id, args.definition)
        console.print(f"[green]✓[/] uploaded   {definition_uri}", highlight=False)
    else:
        definition_uri = f"s3://{bucket}/{definition_key(workflow_id)}"
    name = next_resubmission_name(workflow_id, context.executions.resubmission_names(workflow_id))
    execution_input = {
        "workflow_id": workflow_id,
        "definition_uri": definition_uri,
        "skip_tasks": sorted(finished),
        # Tells the parser this is a deliberate re-run of an existing workflow id (re-register its task
        # items), and lets it recognise a Step Functions retry of the same resubmission (same number).
        "resubmission": int(name.rsplit(RESUBMIT_SEPARATOR, 1)[1]),
    }
    execution_arn = context.executions.start(name, execution_input)
    console.print(f"  skipping   {len(finished)} finished task(s)", highlight=False)
    _print_started(context, workflow_id, execution_arn)
    if args.watch:
        from stepspot.cli.remote_status import watch_workflow

        return watch_workflow(context, workflow_id, args.interval)
    return EXIT_OK
