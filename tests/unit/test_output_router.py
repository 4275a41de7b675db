"""The output router of a local run (issue 10: `stepspot local` hung in a terminal, rich's FileProxy and the
router writing into each other without end). Handler output goes to the run's log, never to the terminal;
a stream that writes back into the router cannot make it recurse."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from rich.console import Console
from rich.file_proxy import FileProxy

from stepspot.local.lambdas import OutputRouter


class _WritesToStdout(io.TextIOBase):
    """A stream that forwards to whatever ``sys.stdout`` is now (a proxy installed before the router)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)


def test_a_stream_that_writes_back_into_the_router_does_not_recurse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    router = OutputRouter(_WritesToStdout(), tmp_path / "lambdas.log")
    monkeypatch.setattr(sys, "stdout", router)
    assert router.write("progress\n") == len("progress\n")  # dropped, not a RecursionError
    router.close()


def test_behind_richs_file_proxy_the_terminal_gets_display_text_once_and_no_handler_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = io.StringIO()
    # What Live(redirect_stdout=True) puts in sys.stdout: a proxy printing into a console whose file is
    # sys.stdout, which is the router once the run starts (the loop of the hang).
    proxy = FileProxy(Console(), terminal)
    router = OutputRouter(proxy, tmp_path / "lambdas.log")
    monkeypatch.setattr(sys, "stdout", router)
    router.write("a: attempt 1 started on Spot\n")
    with router.capture("workflow_monitor"):
        router.write('{"level": "WARNING", "message": "task a: reclaimed"}\n')
    router.close()
    assert terminal.getvalue() == "a: attempt 1 started on Spot\n"
    assert "[workflow_monitor] " in (tmp_path / "lambdas.log").read_text()
