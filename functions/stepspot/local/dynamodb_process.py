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
import json
import queue
import selectors
import socket
import traceback
from collections.abc import Iterator
from typing import Any

from stepspot import _gc
from stepspot.local.aws_faults import DYNAMODB_WRITES, AwsFaults, request_body
from stepspot.local.direct_calls import Answer, DirectCalls
from stepspot.local.forking import Channel, end_children, fork_child, quiet_child_output
from stepspot.local.lambdas import REGION
from stepspot.local.moto_patching import Patches, moto_module

# Connections to the child: more than the engine's threads that call DynamoDB at once ever number (a
# caller beyond them waits for a free one).
CONNECTIONS = 32


class DynamoDBProcessError(RuntimeError):
    """The local DynamoDB process failed to answer (a bug in it or in moto, or it has ended)."""


def ask(channel: Channel, message: Any) -> Any:
    """Send ``message`` and return the child's answer (``DynamoDBProcessError`` for a failure of the child)."""
    try:
        channel.send(message)
        reply = channel.receive()
    except (EOFError, OSError) as error:
        raise DynamoDBProcessError(f"the local DynamoDB process ended while answering: {error!r}") from None
    if reply[0] == "error":
        raise DynamoDBProcessError(f"the local DynamoDB process failed: {reply[1]}\n{reply[2]}")
    return reply[1]


def call_message(operation: str, params: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """The message asking for a serialised JSON-protocol request (``DirectCalls.answer``'s arguments)."""
    return (
        "call",
        operation,
        {"url": params["url"], "headers": dict(params.get("headers", {})), "body": params.get("body")},
    )


class DynamoDBProcess:
    """The engine's end: ``call`` and ``dispatch`` ask the child; ``close`` ends it.

    A caller takes a connection of its own from a pool for its request and its answer: no lock is held
    while it waits, so a caller that waits for the interpreter lock after its answer came holds up no
    other caller (one shared connection and a lock made every DynamoDB call wait for the slowest)."""

    def __init__(self, pid: int, socks: list[socket.socket], reserved: list[socket.socket]) -> None:
        self.pid = pid
        self._socks = socks
        self._free: queue.SimpleQueue[Channel] = queue.SimpleQueue()
        for sock in socks:
            self._free.put(Channel(sock))
        self._closed = False
        self.reserved = reserved  # connections for the processes forked later (``forked(reserved=)``)

    def call(self, operation: str, params: dict[str, Any]) -> Answer:
        """Answer a serialised JSON-protocol request (``DirectCalls.answer``'s arguments)."""
        answer: Answer = self._ask(call_message(operation, params))
        return answer

    def injected_faults(self) -> dict[str, int]:
        """The faults injected into the Lambdas' DynamoDB writes so far, by kind."""
        counts: dict[str, int] = self._ask(("faults",))
        return counts

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
        reply = ask(channel, message)
        self._free.put(channel)
        return reply

    def close(self) -> None:
        """End the child: its sockets close (a caller still waiting gets ``DynamoDBProcessError``), it
        leaves and is reaped (``forking.end_children``)."""
        self._closed = True
        end_children([self.pid], [*self._socks, *self.reserved])


@contextlib.contextmanager
def forked(reserved: int = 0, faults: AwsFaults | None = None) -> Iterator[DynamoDBProcess]:
    """Serve DynamoDB from a forked process while inside (see the module docstring). Call it with moto's
    mock started and patched, before the run starts threads of its own. ``reserved`` more connections are
    left out of the pool, in ``DynamoDBProcess.reserved``: for processes forked later that call it
    themselves (``stepspot.local.lambda_processes``): the Lambdas, whose writes get the injected ``faults``
    here, where every one of them arrives (``DynamoDBProcess.injected_faults`` counts them)."""
    pairs = [socket.socketpair() for _ in range(CONNECTIONS + reserved)]

    def serve() -> None:
        for ours, _ in pairs:
            ours.close()
        _serve([Channel(theirs) for _, theirs in pairs], CONNECTIONS, faults)

    pid = fork_child(serve)
    for _, theirs in pairs:
        theirs.close()
    engine_ends = [sock for sock, _ in pairs]
    process = DynamoDBProcess(pid, engine_ends[:CONNECTIONS], engine_ends[CONNECTIONS:])
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


def _serve(channels: list[Channel], first_faulted: int, faults: AwsFaults | None) -> None:
    """The child's loop: one request at a time, from whichever connection has one, until the engine's end
    closes."""
    quiet_child_output()
    _gc.collected_in_forked_server()
    if faults is not None:
        faults.renew_lock()  # another thread of the engine may have held it at the fork
    from moto.dynamodb.responses import DynamoHandler

    answerer = _Answerer(DynamoHandler, faults)
    answerer.prepare()
    waiting = selectors.DefaultSelector()
    for index, channel in enumerate(channels):
        waiting.register(channel.sock, selectors.EVENT_READ, (channel, index >= first_faulted))
    while waiting.get_map():
        for ready, _ in waiting.select():
            channel, faulted = ready.data
            try:
                message = channel.receive()
            except (EOFError, OSError):  # that caller has gone: serve the others until none is left
                waiting.unregister(channel.sock)
                continue
            with contextlib.suppress(OSError):  # the caller has gone: the next receive says so
                channel.send(answerer.reply(message, faulted))


def _error_answer(code: str, message: str, reasons: list[dict[str, Any]] | None) -> Answer:
    """DynamoDB's HTTP answer of an error (what botocore parses into the ``ClientError``)."""
    body: dict[str, Any] = {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}
    if reasons is not None:
        body["CancellationReasons"] = reasons
    return 400, {"content-type": "application/x-amz-json-1.0"}, json.dumps(body).encode()


class _Answerer:
    """The child's answers: moto's, as ``DirectCalls.answer`` and moto's dispatch give them."""

    def __init__(self, handler: Any, faults: AwsFaults | None) -> None:
        self._handler = handler
        self._faults = faults if faults is not None and faults.enabled else None
        self._model: Any = None

    def reply(self, message: Any, faulted: bool) -> tuple[Any, ...]:
        try:
            if message[0] == "faults":
                return ("ok", dict(self._faults.injected) if self._faults else {})
            if message[0] == "call":
                _, operation, params = message
                if faulted and self._faults is not None and operation in DYNAMODB_WRITES:
                    fault = self._faults.dynamodb_fault(operation, request_body(params))
                    if fault is not None:
                        return ("ok", _error_answer(*fault))
                return ("ok", DirectCalls.answer(self._handler(), self._operation(operation), params))
            _, method, url, header_items, body, from_wsgi_server, full_url, headers = message
            from moto.core.request import Request

            request = Request.from_primitives(method, url, dict(header_items), body)
            request.from_wsgi_server = from_wsgi_server
            return ("ok", self._handler.dispatch(request, full_url, headers))
        except Exception as error:  # a bug: the caller raises it with this traceback
            return ("error", f"{type(error).__name__}: {error}", traceback.format_exc())

    def prepare(self) -> None:
        """Build now, while the engine still sets up, what the first request would build first: the
        region's DynamoDB backend (moto makes it on first use, through a session of its own) and the service
        models moto and the answers read (the engine's first CreateTable waited 40 ms for them)."""
        from moto.core.models import DEFAULT_ACCOUNT_ID
        from moto.core.utils import get_service_model
        from moto.dynamodb.models import dynamodb_backends

        dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION]
        get_service_model("dynamodb")
        self._operation("GetItem")

    def _operation(self, name: str) -> Any:
        if self._model is None:  # loaded here, on the child's core, when first needed
            import botocore.session

            self._model = botocore.session.get_session().get_service_model("dynamodb")
        return self._model.operation_model(name)
