"""What the processes a local run forks share: starting one safely, talking to it, ending it.

A local run forks its DynamoDB (``dynamodb_process``) and one process per Lambda function
(``lambda_processes``) while it sets up. A forked child has only the forking thread: a lock another
thread held at that moment stays held in the child for good, so each module-level lock a child takes is
made anew in the child (``os.register_at_fork``: ``stepspot.call_log``, ``stepspot.local.moto_dynamodb``),
and Ctrl-C, which a terminal sends to the whole process group, is the engine's alone to handle: a child
ignores SIGINT from its first instruction on and ends when its sockets close.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

_LENGTH = struct.Struct("!Q")
# How long ending a child waits for it to leave on its own (it leaves as soon as its sockets close)
# before killing it.
EXIT_WAIT_SECONDS = 5.0


class Channel:
    """Length-prefixed pickles over a stream socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def send(self, message: Any) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self.sock.sendall(_LENGTH.pack(len(data)) + data)

    def receive(self) -> Any:
        (length,) = _LENGTH.unpack(self._exactly(_LENGTH.size))
        return pickle.loads(self._exactly(length))

    def _exactly(self, size: int) -> bytearray:
        buffer = bytearray(size)
        view = memoryview(buffer)
        got = 0
        while got < size:
            count = self.sock.recv_into(view[got:])
            if count == 0:
                raise EOFError
            got += count
        return buffer


def fork_child(serve: Callable[[], None]) -> int:
    """Fork a child that ignores SIGINT, runs ``serve`` and leaves with no clean-up of the engine's (its
    buffers, atexit handlers and finalisers are the engine's); returns its pid."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            serve()
            code = 0
        finally:
            os._exit(code)
    signal.pthread_sigmask(signal.SIG_SETMASK, held)
    return pid


def quiet_child_output() -> None:
    """A child writes nothing to the engine's terminal: its standard output and error go to /dev/null
    (what a handler writes is routed before that, through ``sys.stdout``)."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)


def end_children(pids: list[int], socks: list[socket.socket]) -> None:
    """Close ``socks`` (a child waiting on one sees the end, a caller of the engine waiting on one gets an
    error), then reap each child: killed if it has not left within ``EXIT_WAIT_SECONDS``."""
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    deadline = time.monotonic() + EXIT_WAIT_SECONDS
    for pid in pids:
        while True:
            try:
                ended, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                break
            if ended:
                break
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
                break
            time.sleep(0.005)
    for sock in socks:
        sock.close()
