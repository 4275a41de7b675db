"""`stepspot validate FILE [--env ENV]`: check a workflow definition, and that every task fits a queue of
the environment; exit 0 when valid, 2 when not."""

from __future__ import annotations

import argparse
import json
import sys

from stepspot._gc import gc_paused
from stepspot.cli.capacity_check import ensure_fits_environment
from stepspot.cli.output import console, end_process, print_problems
from stepspot.errors import WorkflowValidationError
from stepspot.workflow import load_workflow_file

EXIT_OK, EXIT_INVALID = 0, 2


def run(args: argparse.Namespace) -> int:
    with gc_paused():  # the collector would only re-scan the workflow's millions of objects
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        loaded = load_workflow_file(args.file)
        ensure_fits_environment(loaded, args.env)
    except WorkflowValidationError as exc:
        if args.output == "json":
            print(json.dumps({"valid": False, "file": args.file, "problems": exc.details["problems"]}, indent=2))
            return EXIT_INVALID
        raise
    workflow = loaded.workflow
    if args.output == "json":
        warnings = [w.to_dict() for w in loaded.warnings]
        print(json.dumps({"valid": True, "file": args.file, "name": workflow.name, "warnings": warnings}, indent=2))
        return end_process(args, EXIT_OK)
    print_problems(loaded.warnings)
    noun = "task" if len(workflow.tasks) == 1 else "tasks"
    console.print(f"[green]valid[/]: {args.file}: {workflow.name!r}, {len(workflow.tasks)} {noun}", highlight=False)
    sys.stdout.flush()
    return end_process(args, EXIT_OK)
