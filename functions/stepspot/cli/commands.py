"""The argument parser of the `stepspot` command: every subcommand's options and help, and nothing else.

This module is what `stepspot --help` (and every command) imports before it parses its arguments, so it
imports only the standard library's light modules: no subcommand module, no boto3, rich or pydantic. Each
subcommand sets ``handler`` to ``"module:function"``; ``stepspot.cli.main`` imports that module only when
the command is chosen. ``tests/unit/test_cli_imports.py`` guards this.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from stepspot.environments import ENVIRONMENTS

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

# Workflow ids are Step Functions execution names (80 characters at most); 64 leaves room for the
# `--r<n>` suffix of resubmissions.
MAX_WORKFLOW_ID_LENGTH = 64
DEFAULT_MAX_ROWS = 200  # rows of `stepspot plan`'s task table


# --------------------------------------------------------------------------- shared arguments


def _add_env(parser: argparse.ArgumentParser, what: str, note: str = "") -> None:
    """The one definition of ``--env``: its flags, choices and default; callers say what it selects."""
    parser.add_argument(
        "--env",
        "-e",
        choices=ENVIRONMENTS,
        default=os.environ.get("STEPSPOT_ENV", "dev"),
        help=f"{what} ({note}default: $STEPSPOT_ENV or dev)",
    )


def add_capacity_env_argument(parser: argparse.ArgumentParser, what: str) -> None:
    _add_env(parser, what, note="terraform/environments/ENV.tfvars; ")


def add_env_argument(parser: argparse.ArgumentParser) -> None:
    _add_env(parser, "environment whose deployment to use")


def add_definition_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="workflow definition (.json, .yaml, .yml)")


def add_watch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--watch", action="store_true", help="follow progress until the workflow ends")
    parser.add_argument("--interval", type=float, default=10.0, help="refresh interval of --watch in seconds")


def add_json_argument(parser: argparse.ArgumentParser, help_text: str = "print JSON instead of a table") -> None:
    parser.add_argument("--json", action="store_true", help=help_text)


def add_workdir_argument(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--workdir", type=_path, default=".stepspot", metavar="DIR", help=help_text)


def add_workflow_argument(parser: argparse.ArgumentParser, help_text: str, optional: bool = False) -> None:
    parser.add_argument(
        "workflow",
        metavar="WORKFLOW",
        nargs="?" if optional else None,
        help=f"{help_text} (the workflow id printed by `stepspot submit`, or its execution ARN)",
    )


def _path(text: str) -> Path:
    """``type=Path`` without importing pathlib (and urllib) before a command is chosen."""
    from pathlib import Path

    return Path(text)


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give a rate between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is outside 0..1; give the share of attempts, e.g. 0.3")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be greater than 0")
    return value


# --------------------------------------------------------------------------- subcommands


def _validate(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check a workflow definition (JSON or YAML)",
        description="Check a workflow definition and report every problem with its location. "
        "Exit code 0 when valid, 2 when not.",
    )
    add_definition_argument(parser)
    parser.add_argument("--output", choices=("text", "json"), default="text", help="output format (default: text)")
    add_capacity_env_argument(parser, "environment whose compute queues every task must fit")
    parser.set_defaults(handler="stepspot.cli.validate:run")


def _plan(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="dry run: tasks, levels, critical path, duration and cost estimates",
        description="Validate and plan a workflow without running it: order, levels, critical path, "
        "duration and cost estimates (Spot vs On-Demand).",
    )
    add_definition_argument(parser)
    parser.add_argument(
        "--output", choices=("table", "json", "mermaid"), default="table", help="output format (default: table)"
    )
    parser.add_argument("--workflow-id", default="dry-run", help="workflow id to plan under (default: dry-run)")
    parser.add_argument(
        "--max-rows",
        type=int,
        default=DEFAULT_MAX_ROWS,
        metavar="N",
        help=f"rows of the task table to show (default: {DEFAULT_MAX_ROWS})",
    )
    add_capacity_env_argument(parser, "environment whose compute queues every task must fit")
    parser.set_defaults(handler="stepspot.cli.plan:run")


def _schema(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "schema",
        help="print the JSON Schema of workflow definitions",
        description="Print the JSON Schema of workflow definitions (for editors and other tools).",
    )
    parser.add_argument("-o", "--output-file", metavar="FILE", help="write to FILE instead of standard output")
    parser.set_defaults(handler="stepspot.cli.schema:run")


def _local(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "local",
        help="run a workflow on this machine (no AWS account), with optional fault injection",
        description="No AWS account: moto's Step Functions interpreter runs the rendered definitions, the "
        "Lambdas run in-process, each task's command runs as a local process under the checkpoint agent. Fault "
        "injection flags make Spot reclaims, capacity shortages and application failures happen on purpose. "
        "Exit codes: 0 the workflow succeeded, 1 it failed, 2 bad input (file, flag, task id, missing command), "
        "130 interrupted (Ctrl-C: the jobs are stopped, the run's files and summary kept).",
    )
    add_definition_argument(parser)
    faults = parser.add_argument_group("fault injection (repeatable with --seed)")
    faults.add_argument(
        "--spot-interruptions",
        type=_rate,
        default=0.0,
        metavar="RATE",
        help="share of Spot attempts reclaimed: a 2-minute notice (IMDS + EventBridge), then the host goes",
    )
    faults.add_argument(
        "--interruptions-per-hour",
        type=_rate,
        default=0.0,
        metavar="RATE",
        help="Spot interruptions per hour of run time (e.g. 0.0003: 20 %% of a pool reclaimed in a month, where "
        "the Spot Instance Advisor's worst bucket begins; the demo uses it)",
    )
    faults.add_argument(
        "--capacity-shortage",
        action="store_true",
        help="the Spot queue cannot place jobs: they are cancelled by the queue's time limit",
    )
    faults.add_argument(
        "--app-failures",
        type=_rate,
        nargs="?",
        const=0.25,
        default=0.0,
        metavar="RATE",
        help="share of attempts whose program exits non-zero (default when given without RATE: 0.25)",
    )
    faults.add_argument("--fail-task", action="append", default=[], metavar="ID", help="every attempt of ID fails")
    faults.add_argument(
        "--reclaim-task", action="append", default=[], metavar="ID", help="every Spot attempt of ID is reclaimed"
    )
    faults.add_argument(
        "--reclaim-once",
        action="append",
        default=[],
        metavar="ID",
        help="the first Spot attempt of ID is reclaimed (after its first or second checkpoint): one interruption "
        "to watch a resume, on top of a realistic --interruptions-per-hour",
    )
    faults.add_argument(
        "--aws-faults",
        type=_rate,
        default=0.0,
        metavar="RATE",
        help="share of AWS calls that fail as the services do under load: DynamoDB transaction conflicts and "
        "throttling, Lambda throttles and timeouts, SubmitJob and StartExecution throttling, duplicated and "
        "delayed EventBridge events (stepspot.local.aws_faults)",
    )
    faults.add_argument("--seed", type=int, default=0, metavar="N", help="random seed of the injected faults")
    parser.add_argument(
        "--time-scale",
        type=_positive,
        default=600.0,
        metavar="X",
        help="simulated seconds per real second for waits, notices and timers (default 600)",
    )
    parser.add_argument("--policy", type=_path, metavar="FILE", help="JSON/YAML file overriding policy knobs")
    parser.add_argument("--summary-json", type=_path, metavar="PATH", help="write the run summary as JSON")
    parser.add_argument(
        "--report", type=_path, metavar="PATH", help="write the run report (one self-contained HTML file)"
    )
    parser.add_argument("--max-parallel-jobs", type=int, default=None, metavar="N", help="local job slots")
    parser.add_argument("--timeout", type=_positive, default=900.0, metavar="SECONDS", help="give up after")
    add_workdir_argument(parser, "run files")
    parser.add_argument("--no-progress", action="store_true", help="no live display (CI logs)")
    add_capacity_env_argument(parser, "environment whose queues and instance types local mode emulates")
    parser.set_defaults(handler="stepspot.cli.local:run")


def _remote(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    submit = subparsers.add_parser(
        "submit",
        help="validate a workflow and start it on a deployed environment",
        description="Validate a workflow definition locally, upload it, and start it on the environment's "
        "workflow state machine. Prints the workflow id, the execution ARN and the console link.",
        epilog="example: stepspot submit examples/molecular-dynamics/workflow.json --env dev --watch",
    )
    submit.add_argument("file", metavar="FILE", type=_path, help="workflow definition (.json, .yaml or .yml)")
    add_env_argument(submit)
    submit.add_argument(
        "--execution-name",
        metavar="NAME",
        help=f"workflow id and execution name (1-{MAX_WORKFLOW_ID_LENGTH} of [A-Za-z0-9_-]; "
        "default: <workflow name>-<UTC time>-<random>)",
    )
    add_watch_arguments(submit)
    submit.set_defaults(handler="stepspot.cli.remote:run_submit")

    cancel = subparsers.add_parser(
        "cancel",
        help="stop a running workflow and its tasks",
        description="Stop a running workflow: its execution and the task executions still running (Step "
        "Functions terminates their Batch jobs). Checkpoints are kept, so `stepspot resume` can continue.",
    )
    add_workflow_argument(cancel, "workflow to stop")
    add_env_argument(cancel)
    cancel.add_argument("--reason", default="cancelled from the stepspot CLI", help="recorded as the cause")
    cancel.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    cancel.set_defaults(handler="stepspot.cli.remote:run_cancel")

    resume = subparsers.add_parser(
        "resume",
        help="continue a failed or cancelled workflow",
        description="Continue a workflow that failed, timed out or was cancelled. By default the failed "
        "execution is redriven from the state that failed (possible for 14 days); otherwise, or with "
        "--resubmit, a new execution of the same workflow id starts and skips the tasks that succeeded. "
        "Interrupted tasks resume from their latest checkpoint either way.",
    )
    add_workflow_argument(resume, "workflow to continue")
    add_env_argument(resume)
    strategy = resume.add_mutually_exclusive_group()
    strategy.add_argument("--redrive", action="store_true", help="only redrive; fail if AWS cannot")
    strategy.add_argument("--resubmit", action="store_true", help="start a new execution skipping finished tasks")
    resume.add_argument(
        "--definition",
        metavar="FILE",
        type=_path,
        help="with --resubmit: use this (fixed) definition instead of the one submitted first",
    )
    add_watch_arguments(resume)
    resume.set_defaults(handler="stepspot.cli.remote:run_resume")


def _remote_status(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = subparsers.add_parser(
        "status",
        help="show a workflow's tasks (or list recent workflows)",
        description="Show a workflow's execution status and a table of its tasks: state, attempts, "
        "Spot interruptions, checkpoints, queue. Without WORKFLOW, list the recent workflows.",
    )
    add_workflow_argument(status, "workflow to show; omit to list recent ones", optional=True)
    add_env_argument(status)
    add_json_argument(status, "print a JSON document instead of tables")
    status.add_argument("--limit", type=int, default=20, help="how many recent workflows to list (default 20)")
    status.set_defaults(handler="stepspot.cli.remote_status:run_status")

    watch = subparsers.add_parser(
        "watch",
        help="follow a workflow's progress until it ends",
        description="Follow a workflow until it ends, then exit 0 if it succeeded, 1 otherwise. "
        "On a terminal the table refreshes in place; elsewhere (CI, pipes) each change is one line. "
        "Ctrl-C stops watching, not the workflow.",
    )
    add_workflow_argument(watch, "workflow to follow")
    add_env_argument(watch)
    watch.add_argument("--interval", type=float, default=10.0, help="seconds between refreshes (default 10)")
    watch.set_defaults(handler="stepspot.cli.remote_status:run_watch")

    logs = subparsers.add_parser(
        "logs",
        help="print a task's AWS Batch job logs",
        description="Print the CloudWatch logs of a task's AWS Batch job (latest attempt by default).",
    )
    add_workflow_argument(logs, "workflow of the task")
    logs.add_argument("task", metavar="TASK", help="task id")
    add_env_argument(logs)
    logs.add_argument("--attempt", type=int, help="the job attempt to show (1 = first; default: latest)")
    logs.add_argument("--tail", type=int, default=200, help="how many of the last lines (default 200)")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new lines until the task ends")
    logs.set_defaults(handler="stepspot.cli.remote_status:run_logs")

    checkpoints = subparsers.add_parser(
        "checkpoints",
        help="list a workflow's checkpoints",
        description="List the checkpoints saved for a workflow's tasks (or one task): sequence, status, "
        "time, files, size; `*` marks the one a restarted task resumes from.",
    )
    add_workflow_argument(checkpoints, "workflow whose checkpoints to list")
    add_env_argument(checkpoints)
    checkpoints.add_argument("--task", help="only this task")
    add_json_argument(checkpoints)
    checkpoints.set_defaults(handler="stepspot.cli.remote_status:run_checkpoints")


def _outputs(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    outputs = subparsers.add_parser(
        "outputs",
        help="list (and download) the outputs tasks published",
        description="List the files each task of a workflow published (its declared outputs), or of one task; "
        "--download DIR fetches them into DIR/<task>/. For a local run, shows where they are on disk.",
    )
    add_workflow_argument(outputs, "workflow whose outputs to list")
    outputs.add_argument("task", metavar="TASK", nargs="?", help="only this task")
    outputs.add_argument("--download", type=_path, metavar="DIR", help="fetch the files into DIR/<task>/...")
    add_env_argument(outputs)
    add_workdir_argument(outputs, "run files of local runs")
    add_json_argument(outputs)
    outputs.set_defaults(handler="stepspot.cli.outputs:run_outputs")


def _templates(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    listing = subparsers.add_parser(
        "templates",
        help="list the workflow templates and their parameters",
        description="List the workflow templates (templates/workflows/) with their parameters and defaults.",
    )
    add_json_argument(listing, "print the list as JSON")
    listing.set_defaults(handler="stepspot.cli.templates:run_templates")

    new = subparsers.add_parser(
        "new",
        help="render a workflow definition from a template",
        description="Render a workflow definition from a template, validate it, and write it. "
        "Parameters not given keep their defaults (`stepspot templates` lists them).",
        epilog="example: stepspot new parameter-sweep --set members=50 --set stop=2.5 -o sweep.yaml",
    )
    new.add_argument("template", metavar="TEMPLATE", help="template name (see `stepspot templates`)")
    new.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a template parameter (repeatable)",
    )
    new.add_argument(
        "-o",
        "--output",
        type=_path,
        help="file to write (.json writes JSON, anything else YAML); default: standard output",
    )
    new.add_argument("--force", action="store_true", help="overwrite the output file if it exists")
    new.set_defaults(handler="stepspot.cli.templates:run_new")


def _cleanup(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "cleanup-job-definitions",
        help="deregister the job definitions the attempt manager derived per image (run by make destroy)",
        description="`stepspot cleanup-job-definitions --env ENV`: deregister the derived job definitions of a "
        "deployment.",
    )
    add_env_argument(parser)
    parser.set_defaults(handler="stepspot.cli.cleanup:run")


def _report(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = subparsers.add_parser(
        "report",
        help="write a workflow's run report: timeline, DAG, cost and savings (one HTML file)",
        description="Write one self-contained HTML file (opens offline) telling what a workflow did: a "
        "timeline of every attempt (Spot/On-Demand, reclaims, checkpoints, waits), the DAG with each "
        "task's state, the cost ledger against all On-Demand, lost work and failure classes.",
    )
    add_workflow_argument(report, "workflow to report on")
    add_env_argument(report)
    report.add_argument("-o", "--output", type=_path, required=True, metavar="PATH", help="HTML file to write")
    report.set_defaults(handler="stepspot.cli.report:run_report")


# The subcommands, in the order `stepspot --help` lists them.
COMMANDS: tuple[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None], ...] = (
    _validate,
    _plan,
    _schema,
    _local,
    _remote,
    _remote_status,
    _outputs,
    _templates,
    _cleanup,
    _report,
)
