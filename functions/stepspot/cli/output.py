"""Terminal output shared by the subcommands. rich degrades to plain text when not on a terminal
(CI logs, pipes) and honours NO_COLOR."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from rich.console import Console

from stepspot.errors import Problem

# A command whose reader went away (its output piped into `head`, a pager quit): 128 + SIGPIPE, the status a
# shell shows for a command the closed pipe ended.
EXIT_READER_GONE = 141


class ReaderAwareConsole(Console):
    """rich's console, except when the reader of its output has gone (a closed pipe).

    rich then sends the rest of the output to /dev/null and raises ``SystemExit`` in the thread that
    printed. In a worker thread that ends the thread and nothing else: `stepspot local FILE | head` hung for
    ever, its state machine thread ended in the middle of a state. Here the output goes to /dev/null as
    well, the callbacks of ``when_reader_gone`` are called once (the local run stops, as on Ctrl-C), and only
    the main thread exits (``EXIT_READER_GONE``)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.reader_gone = threading.Event()
        self._when_reader_gone: list[Callable[[], None]] = []

    @contextlib.contextmanager
    def when_reader_gone(self, callback: Callable[[], None]) -> Iterator[None]:
        """Call ``callback`` (from the thread that printed) if the reader goes while inside."""
        self._when_reader_gone.append(callback)
        try:
            yield
        finally:
            self._when_reader_gone.remove(callback)

    def on_broken_pipe(self) -> None:
        self.quiet = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        with contextlib.suppress(OSError, ValueError):  # a stream without a descriptor has nothing to redirect
            os.dup2(devnull, self.file.fileno())  # later writes, the interpreter's last flush included, succeed
        os.close(devnull)
        if not self.reader_gone.is_set():
            self.reader_gone.set()
            for callback in self._when_reader_gone:
                callback()
        if threading.current_thread() is threading.main_thread():
            raise SystemExit(EXIT_READER_GONE)


# Off a terminal (pipes, CI logs) rich assumes 80 columns; tables of task ids need more.
console = ReaderAwareConsole(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err_console = ReaderAwareConsole(stderr=True)


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
