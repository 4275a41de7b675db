"""The CLI's consoles when the reader of their output has gone (a closed pipe: `stepspot local FILE | head`).

rich's own answer raises SystemExit in the thread that printed, which ends a worker thread and nothing else:
the local engine's state machine thread that printed an event line died mid-state and the run hung."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest

from stepspot.cli.output import EXIT_READER_GONE, ReaderAwareConsole


@pytest.fixture
def closed_pipe_console() -> Iterator[ReaderAwareConsole]:
    """A console writing to a pipe whose reading end is closed."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    with os.fdopen(write_end, "w") as stream:
        yield ReaderAwareConsole(file=stream, force_terminal=False)


def test_a_worker_thread_that_meets_a_closed_pipe_goes_on_and_the_callbacks_are_told_once(
    closed_pipe_console: ReaderAwareConsole,
) -> None:
    told: list[str] = []
    outcome: list[BaseException | None] = []

    def print_lines() -> None:
        try:
            closed_pipe_console.print("first line")
            closed_pipe_console.print("second line")
            outcome.append(None)
        except BaseException as raised:  # SystemExit included: what rich's own console raised here
            outcome.append(raised)

    with closed_pipe_console.when_reader_gone(lambda: told.append("gone")):
        worker = threading.Thread(target=print_lines)
        worker.start()
        worker.join(10)
    assert outcome == [None]  # the thread went on after the closed pipe
    assert told == ["gone"]  # once, although two lines met it
    assert closed_pipe_console.reader_gone.is_set()


def test_the_main_thread_exits_with_141_and_callbacks_outside_the_scope_are_not_told(
    closed_pipe_console: ReaderAwareConsole,
) -> None:
    told: list[str] = []
    with closed_pipe_console.when_reader_gone(lambda: told.append("gone")):
        pass
    with pytest.raises(SystemExit) as raised:
        closed_pipe_console.print("a line")
    assert raised.value.code == EXIT_READER_GONE == 141
    assert told == []
