"""Local mode's DynamoDB in a process of its own, as on AWS a service apart from its callers.

Why: a local run is one Python process. Every Lambda, the Step Functions interpreter and the Batch
emulator share its interpreter lock, so it used one core of two, and moto's DynamoDB was over a quarter
of that core (1.9 s of 6.7 s of CPU in the 200-task fan-out). Served by a forked process, DynamoDB's work
runs on the other core; a thread of the engine that calls it waits on a socket, the lock released, and the
others go on.

How: ``forked()`` forks the server right after moto's mock has started, before the run has a table or a
thread of its own. The child inherits moto with the patches of ``stepspot.local.moto_dynamodb``, and
answers one request at a time (the serialisation those patches give in-process) until its socket closes.
Every way to DynamoDB in the engine's process leads to it:

- the direct calls of ``stepspot.local.direct_calls`` (the Lambdas and the engine): the request botocore
  serialised, answered by the child with the same ``DirectCalls.answer``;
- moto's own dispatch (a client's HTTP stub, the emulator server the jobs call): ``DynamoHandler``'s
  dispatch forwards the request moto normalised, and the child dispatches it.

The run's DynamoDB data lives only in the child and goes with it: the engine's own moto never holds it
(``tests/e2e/test_local_containment.py``). A request that fails in the child for a reason that is not an
AWS error (a bug) raises ``DynamoDBProcessError`` in the caller with the child's traceback.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import selectors
import signal
import socket
import struct
import time
import traceback
from collections.abc import Iterator
from typing import Any

from stepspot import _gc
from stepspot.local.direct_calls import Answer, DirectCalls
from stepspot.local.moto_patching import Patches, moto_module

_LENGTH = struct.Struct("!Q")
# How long closing waits for the child to end on its own (it ends as soon as its socket closes) before
# killing it.
EXIT_WAIT_SECONDS = 5.0
# Connections to the child: more than the engine's threads that call DynamoDB at once ever number (a
# caller beyond them waits for a free one).
CONNECTIONS = 32


class DynamoDBProcessError(RuntimeError):
    """The local DynamoDB process failed to answer (a bug in it or in moto, or it has ended)."""


class _Channel:
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


class DynamoDBProcess:
    """The engine's end: ``call`` and ``dispatch`` ask the child; ``close`` ends it.

    A caller takes a connection of its own from a pool for its request and its answer: no lock is held
    while it waits, so a caller that waits for the interpreter lock after its answer came holds up no
    other caller (one shared connection and a lock made every DynamoDB call wait for the slowest)."""

    def __init__(self, pid: int, socks: list[socket.socket]) -> None:
        self.pid = pid
        self._socks = socks
        self._free: queue.SimpleQueue[_Channel] = queue.SimpleQueue()
        for sock in socks:
            self._free.put(_Channel(sock))
        self._closed = False

    def call(self, operation: str, params: dict[str, Any]) -> Answer:
        """Answer a serialised JSON-protocol request (``DirectCalls.answer``'s arguments)."""
        request = {"url": params["url"], "headers": dict(params.get("headers", {})), "body": params.get("body")}
        answer: Answer = self._ask(("call", operation, request))
        return answer

    def dispatch(self, request: Any, full_url: str, headers: Any) -> Answer:
        """Answer a request moto normalised (``moto.core.request.Request``) as moto's dispatch does."""
        message = (
            "dispatch",
            request.method,
            request.raw_url,
            list(request.headers.items()),
            request.get_data(),
            bool(request.from_wsgi_server),
            full_url,
            dict(headers) if headers is not None else None,
        )
        answer: Answer = self._ask(message)
        return answer

    def _ask(self, message: Any) -> Any:
        if self._closed:
            raise DynamoDBProcessError("the local DynamoDB process has ended (the run is over)")
        channel = self._free.get()
        try:
            channel.send(message)
            reply = channel.receive()
        except (EOFError, OSError) as error:
            raise DynamoDBProcessError(f"the local DynamoDB process ended while answering: {error!r}") from None
        self._free.put(channel)
        if reply[0] == "error":
            raise DynamoDBProcessError(f"the local DynamoDB process failed: {reply[1]}\n{reply[2]}")
        return reply[1]

    def close(self) -> None:
        """End the child: its sockets close (a caller still waiting gets ``DynamoDBProcessError``), it
        exits, it is reaped; killed if it has not ended within ``EXIT_WAIT_SECONDS``."""
        self._closed = True
        for sock in self._socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + EXIT_WAIT_SECONDS
        while True:
            try:
                pid, _ = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                break
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(self.pid, 0)
                break
            time.sleep(0.005)
        for sock in self._socks:
            sock.close()


@contextlib.contextmanager
def forked() -> Iterator[DynamoDBProcess]:
    """Serve DynamoDB from a forked process while inside (see the module docstring). Call it with moto's
    mock started and patched, before the run starts threads of its own."""
    pairs = [socket.socketpair() for _ in range(CONNECTIONS)]
    # Ctrl-C reaches the whole process group, the child too: it must ignore it from its first instruction
    # on (the engine decides, and closes the child). The forking thread holds SIGINT back until then.
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    pid = os.fork()
    if pid == 0:  # the child: serve until the engine's end closes, then leave without any cleanup
        code = 1
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
            for ours, _ in pairs:
                ours.close()
            _serve([_Channel(theirs) for _, theirs in pairs])
            code = 0
        finally:
            os._exit(code)
    signal.pthread_sigmask(signal.SIG_SETMASK, held)
    for _, theirs in pairs:
        theirs.close()
    process = DynamoDBProcess(pid, [ours for ours, _ in pairs])
    patches = Patches()
    try:
        _dispatch_to(process, patches)
        yield process
    finally:
        patches.undo()
        process.close()


def _dispatch_to(process: DynamoDBProcess, patches: Patches) -> None:
    """moto's dispatch of DynamoDB requests in the engine's process asks the child instead."""
    handler = moto_module("moto.dynamodb.responses").DynamoHandler

    def dispatch(self: Any, request: Any, full_url: str | None = None, headers: Any = None) -> Answer:
        return process.dispatch(request, full_url or request.raw_url, headers)

    patches.replace(handler, "_dispatch", dispatch)


def _serve(channels: list[_Channel]) -> None:
    """The child's loop: one request at a time, from whichever connection has one, until the engine's end
    closes."""
    # Nothing of the engine's output is this process's to write (what is buffered is the engine's).
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    _gc.collected_in_forked_server()
    from moto.dynamodb.responses import DynamoHandler

    answerer = _Answerer(DynamoHandler)
    waiting = selectors.DefaultSelector()
    for channel in channels:
        waiting.register(channel.sock, selectors.EVENT_READ, channel)
    while True:
        for ready, _ in waiting.select():
            channel = ready.data
            try:
                message = channel.receive()
            except (EOFError, OSError):
                return
            with contextlib.suppress(OSError):  # the engine's end closed: the next receive says so
                channel.send(answerer.reply(message))


class _Answerer:
    """The child's answers: moto's, as ``DirectCalls.answer`` and moto's dispatch give them."""

    def __init__(self, handler: Any) -> None:
        self._handler = handler
        self._model: Any = None

    def reply(self, message: Any) -> tuple[Any, ...]:
        try:
            if message[0] == "call":
                _, operation, params = message
                return ("ok", DirectCalls.answer(self._handler(), self._operation(operation), params))
            _, method, url, header_items, body, from_wsgi_server, full_url, headers = message
            from moto.core.request import Request

            request = Request.from_primitives(method, url, dict(header_items), body)
            request.from_wsgi_server = from_wsgi_server
            return ("ok", self._handler.dispatch(request, full_url, headers))
        except Exception as error:  # a bug: the caller raises it with this traceback
            return ("error", f"{type(error).__name__}: {error}", traceback.format_exc())

    def _operation(self, name: str) -> Any:
        if self._model is None:  # loaded here, on the child's core, when first needed
            import botocore.session

            self._model = botocore.session.get_session().get_service_model("dynamodb")
        return self._model.operation_model(name)
