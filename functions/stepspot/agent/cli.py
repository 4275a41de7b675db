"""``stepspot-agent`` command line: ``run``, ``save`` and ``restore`` (``mpi``: ``stepspot.mpi``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import shutil
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from stepspot.agent.checkpoints import (
    aws_clients,
    build_store,
    check_workflow,
    exit_code_for,
    report_checkpoint_failure,
)
from stepspot.agent.settings import (
    EXIT_BAD_DIRECTORY,
    EXIT_COMMAND_NOT_FOUND,
    EXIT_INTERNAL,
    EXIT_SPOT_NOTICE,
    EXIT_USAGE,
    AgentExit,
    AgentSettings,
    settings_from,
)
from stepspot.agent.staging import Stager
from stepspot.agent.supervisor import Agent
from stepspot.agent_exit_codes import EXIT_MISCONFIGURATION
from stepspot.build_info import deployment_version, version_mismatch
from stepspot.checkpointing.files import DirectoryScanner, check_directory
from stepspot.checkpointing.store import SaveResult
from stepspot.errors import StepspotError

log = logging.getLogger("stepspot.agent")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"stepspot-agent: error: {message}\n")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workflow-id", help="workflow id (env STEPSPOT_WORKFLOW_ID)")
    parser.add_argument("--task-id", help="task id (env STEPSPOT_TASK_ID)")
    parser.add_argument("--bucket", help="checkpoint and data bucket (env STEPSPOT_BUCKET)")
    parser.add_argument("--table", help="checkpoint table (env STEPSPOT_CHECKPOINT_TABLE)")
    parser.add_argument("--checkpoint-dir", help="directory the program writes (env STEPSPOT_CHECKPOINT_DIR)")
    parser.add_argument("--endpoint-url", help="AWS endpoint, e.g. a moto server (env AWS_ENDPOINT_URL)")
    parser.add_argument("--region", help="AWS region (env AWS_REGION / AWS_DEFAULT_REGION)")
    parser.add_argument(
        "--state-table", help="check the workflow exists in this state table (env STEPSPOT_STATE_TABLE; off when unset)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    for name in (
        "interval",
        "mtbi",
        "signal",
        "grace",
        "settle",
        "stop_timeout",
        "imds_endpoint",
        "imds_poll",
        "reclaim_wait",
        "work_dir",
    ):
        parser.set_defaults(**{name: None})
    parser.set_defaults(no_imds=False, no_checkpoint=False)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="stepspot-agent", description="Checkpoint and data staging agent for stepspot jobs.")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    commands.required = True

    run = commands.add_parser(
        "run",
        help="stage inputs, restore, run CMD, checkpoint periodically and on notice, publish outputs",
        usage="stepspot-agent run [options] -- CMD [ARGS...]",
    )
    _common(run)
    run.add_argument("--interval", help="seconds between checkpoints or 'auto' (env STEPSPOT_CHECKPOINT_INTERVAL)")
    run.add_argument("--mtbi", help="expected seconds between interruptions for 'auto' (env STEPSPOT_CHECKPOINT_MTBI)")
    run.add_argument("--signal", help="signal telling the program to write now (env STEPSPOT_CHECKPOINT_SIGNAL, TERM)")
    run.add_argument("--grace", help="max seconds to wait for the program's write (env STEPSPOT_CHECKPOINT_GRACE, 60)")
    run.add_argument("--settle", help="seconds of quiet that mean the write is done (env STEPSPOT_CHECKPOINT_SETTLE)")
    run.add_argument(
        "--stop-timeout", help="after SIGTERM, seconds before the program is killed (env STEPSPOT_STOP_TIMEOUT)"
    )
    run.add_argument("--imds-endpoint", help="instance metadata endpoint (env STEPSPOT_IMDS_ENDPOINT; 'off')")
    run.add_argument("--imds-poll", help="seconds between IMDS polls (env STEPSPOT_IMDS_POLL_INTERVAL, 5)")
    run.add_argument("--no-imds", action="store_true", help="do not poll IMDS (SIGTERM still works)")
    run.add_argument(
        "--reclaim-wait",
        help="after an IMDS notice, max seconds (from the notice) a failed program's exit waits for the host "
        f"to be reclaimed before exiting {EXIT_SPOT_NOTICE} (env STEPSPOT_RECLAIM_WAIT, 150)",
    )
    run.add_argument(
        "--save-on-success",
        action="store_true",
        help="also checkpoint when the program exits 0 (env STEPSPOT_CHECKPOINT_ON_SUCCESS)",
    )
    run.add_argument(
        "--no-checkpoint",
        action="store_true",
        help="stage inputs/outputs only, no checkpoints (env STEPSPOT_CHECKPOINT_ENABLED=false)",
    )
    run.add_argument(
        "--work-dir",
        help="where the program runs and inputs/outputs live (env STEPSPOT_WORK_DIR; default: current directory)",
    )
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")

    save = commands.add_parser("save", help="checkpoint the directory once and print the result as JSON")
    _common(save)
    restore = commands.add_parser("restore", help="restore the latest valid checkpoint and print it as JSON")
    _common(restore)
    # Listed for --help only: main() hands `mpi ...` to stepspot.mpi before this parser sees it.
    commands.add_parser(
        "mpi",
        help="multi-node job: the main node runs CMD with a host file, the other nodes serve it",
        add_help=False,
    )
    return parser


def _command(args: argparse.Namespace) -> list[str]:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise AgentExit(
            EXIT_USAGE, "No command to run: put it after '--', e.g. stepspot-agent run -- python simulate.py."
        )
    if os.sep not in command[0] and shutil.which(command[0]) is None:
        raise AgentExit(
            EXIT_COMMAND_NOT_FOUND,
            f"Command {command[0]!r} was not found on PATH: check the task's command and the image's PATH.",
        )
    return command


def _execute(args: argparse.Namespace) -> int:
    mismatch = version_mismatch(os.environ)
    if mismatch:
        raise AgentExit(EXIT_MISCONFIGURATION, mismatch)
    settings = settings_from(args)
    command = _command(args) if args.action == "run" else []
    if settings.checkpointing:
        problem = check_directory(settings.directory)
        if problem:
            raise AgentExit(
                EXIT_BAD_DIRECTORY, f"The {problem}: point STEPSPOT_CHECKPOINT_DIR at a writable directory."
            )
    if settings.staging and settings.work_dir is None:
        settings = _with_work_dir(settings)
    if settings.work_dir is not None:
        problem = check_directory(settings.work_dir)
        if problem:
            problem = problem.replace("checkpoint directory", "working directory", 1)
            raise AgentExit(EXIT_BAD_DIRECTORY, f"The {problem}: point STEPSPOT_WORK_DIR at a writable directory.")
    needs_aws = settings.checkpointing or settings.staging or bool(settings.state_table)
    s3, ddb = aws_clients(settings) if needs_aws else (None, None)
    store = build_store(settings, s3, ddb) if settings.checkpointing else None
    if settings.state_table:
        check_workflow(settings, ddb)
    if args.action == "run":
        log.info("task runner %s on Python %s (%s)", deployment_version(), platform.python_version(), sys.executable)
        stager = Stager(settings, s3) if settings.staging else None
        return Agent(settings, store, stager).run(command)
    assert store is not None
    if args.action == "save":
        scanner = DirectoryScanner(settings.directory)
        try:
            result = store.save(settings.workflow_id, settings.task_id, scanner.scan(), settings.directory)
        except (StepspotError, OSError) as exc:
            unreadable = f"could not read the checkpoint directory: {exc}"
            reason = exc.message if isinstance(exc, StepspotError) else unreadable
            report_checkpoint_failure(settings, "save command", reason)
            raise
        print(json.dumps(_save_summary(result, store.bucket)))
        return 0
    outcome = store.restore(settings.workflow_id, settings.task_id, settings.directory)
    found = outcome.found
    print(
        json.dumps(
            {
                "found": found is not None,
                "sequence": found.record.sequence if found else None,
                "uri": store.uri(found.record) if found else None,
                "restored_bytes": outcome.restored_bytes,
                "seconds": round(outcome.seconds, 3),
                "skipped": [{"sequence": s.sequence, "reason": s.reason} for s in outcome.skipped],
            }
        )
    )
    return 0


def _with_work_dir(settings: AgentSettings) -> AgentSettings:
    """Staging without STEPSPOT_WORK_DIR: the program's current directory is its working directory."""
    return dataclasses.replace(settings, work_dir=Path.cwd())


def _save_summary(result: SaveResult, bucket: str) -> dict[str, Any]:
    record = result.record
    return {
        "saved": record is not None,
        "sequence": record.sequence if record else None,
        "uri": f"s3://{bucket}/{record.manifest_key}" if record else None,
        "uploaded_files": result.uploaded_files,
        "uploaded_bytes": result.uploaded_bytes,
        "reused_files": result.reused_files,
        "seconds": round(result.seconds, 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["mpi"]:  # multi-node roles (stepspot.mpi) take `mpi -- CMD`, not the agent's flags
        from stepspot.mpi import main as mpi_main

        return mpi_main(arguments[1:])
    args = build_parser().parse_args(arguments)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s stepspot-agent %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)
    try:
        return _execute(args)
    except AgentExit as exc:
        print(f"stepspot-agent: error: {exc.message}", file=sys.stderr)
        return exc.code
    except StepspotError as exc:
        print(f"stepspot-agent: error: {exc.message}", file=sys.stderr)
        return exit_code_for(exc)
    except Exception:
        # A bug in the agent: its own exit code, so it is never taken for the program's exit 1.
        traceback.print_exc(file=sys.stderr)
        print(f"stepspot-agent: internal error (exit {EXIT_INTERNAL}): the traceback above is a bug", file=sys.stderr)
        return EXIT_INTERNAL
