"""The run's state machines parsed in a forked process while the engine creates the other resources.

Why: moto's interpreter parses a definition with ANTLR, 40 ms and more a state machine (the first parse of
a process also builds ANTLR's tables), on the engine's one core while the machine's other core waits for
the run to start. A child forked when the definitions are rendered parses them while the engine creates
the bucket, tables and job definitions, and sends back the programs (plain component objects: they pickle).

How: ``start(definitions, parse)`` forks the child; ``take()`` (``moto_patches``' memoised parse calls it
when a definition is first parsed) returns the programs, waiting for them at most ``WAIT_SECONDS``. Nothing
is lost when the child fails, is slow or a program does not pickle: what did not come is parsed in the
engine as before (an invalid definition fails there, with moto's own error). ``discard()`` ends a child
whose programs nobody took (a run that failed before its state machines were created).
"""

from __future__ import annotations

import contextlib
import functools
import socket
from collections.abc import Callable, Iterable
from typing import Any

from stepspot.local.forking import Channel, end_children, fork_child, quiet_child_output

# How long the engine waits for the child's programs before parsing them itself: several times what
# parsing takes on a loaded two-core machine.
WAIT_SECONDS = 5.0

Parse = Callable[[str], Any]  # moto's AmazonStateLanguageParser.parse: definition -> (program, parse tree)

_children: list[tuple[int, socket.socket]] = []  # the child parsing now (at most one)


def start(definitions: Iterable[str], parse: Parse) -> None:
    """Fork a child that parses ``definitions`` with ``parse`` (a previous child's programs are dropped)."""
    discard()
    wanted = list(dict.fromkeys(definitions))
    if not wanted:
        return
    ours, theirs = socket.socketpair()
    pid = fork_child(functools.partial(_serve, ours, theirs, wanted, parse))
    theirs.close()
    _children.append((pid, ours))


def take() -> dict[str, Any]:
    """The programs the child parsed, by definition (empty if there is no child or it failed)."""
    if not _children:
        return {}
    pid, sock = _children.pop()
    try:
        sock.settimeout(WAIT_SECONDS)
        programs: dict[str, Any] = Channel(sock).receive()
        return programs
    except Exception:  # failed, slow or unpicklable: the engine parses those definitions itself
        return {}
    finally:
        end_children([pid], [sock])


def discard() -> None:
    """End a child whose programs nobody took."""
    while _children:
        pid, sock = _children.pop()
        end_children([pid], [sock])


def _serve(ours: socket.socket, theirs: socket.socket, definitions: list[str], parse: Parse) -> None:
    """In the child: parse each definition and send the programs (what fails to parse is left out)."""
    ours.close()
    quiet_child_output()
    programs: dict[str, Any] = {}
    for definition in definitions:
        with contextlib.suppress(Exception):  # an invalid definition fails in the engine, as before
            programs[definition] = parse(definition)[0]
    with contextlib.suppress(Exception):  # not sent: the engine parses them itself
        Channel(theirs).send(programs)
