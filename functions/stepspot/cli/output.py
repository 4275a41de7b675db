"""Terminal output shared by the subcommands. rich degrades to plain text when not on a terminal
(CI logs, pipes) and honours NO_COLOR."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable

from rich.console import Console

from stepspot.errors import Problem

# Off a terminal (pipes, CI logs) rich assumes 80 columns; tables of task ids need more.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


def end_process(args: argparse.Namespace, code: int) -> int:
    """``code``; but when the command runs as the `stepspot` process itself (``main()`` from the command
    line), that process ends here with ``code`` once its output is flushed, leaving the objects the command
    built to the operating system: freeing a 100,000-task workflow's millions of objects one by one takes
    longer than reading its file. For commands whose only effects are their output and files they have
    closed (validate, plan, a local run that ended)."""
    if getattr(args, "own_process", False):
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:  # a closed pipe: the interpreter's usual exit reports it
            return code
        os._exit(code)
    return code


def print_problems(problems: Iterable[Problem], source: str | None = None) -> None:
    """Print validation errors (to stderr) as one line each: location, then what to do."""
    problems = list(problems)
    errors = [p for p in problems if p.severity == "error"]
    where = f"{source}: " if source else ""
    if errors:
        noun = "problem" if len(errors) == 1 else "problems"
        err_console.print(f"[bold red]{where}invalid workflow, {len(errors)} {noun}:[/]", highlight=False)
    for problem in problems:
        style = "red" if problem.severity == "error" else "yellow"
        err_console.print(
            f"  [{style}]{problem.severity}[/] [bold]{problem.location}[/]: {problem.message}",
            highlight=False,
            soft_wrap=True,
        )
