"""Local mode's Lambda functions in processes of their own, as on AWS each function runs in its own
execution environment: one warm container per function, one invocation at a time.

Why: in one process every handler, the Step Functions interpreter and the Batch emulator share one
interpreter lock. The scheduler's invocations, which start the tasks one after another, waited for it
between every call they made, and the handlers' own work (the SDK's serialising and parsing, the handler
code, Powertools) took the lock from everything else. A function's process runs its handler on its own;
its DynamoDB calls go straight to the DynamoDB process (``stepspot.local.dynamodb_process``), and only its
other AWS calls come back to the engine.

How: ``forked()`` forks one process per function once the run's resources exist and before the run starts
threads of its own; each inherits the imported handler modules, moto patched (never reached: every call
is forwarded) and the environment of the run. ``FunctionProcess.invoke`` sends the event and, until the
answer comes, serves the function's calls in the invoking thread: each is answered as the engine's own
handler session answers it (its ``before-call`` hooks: injected faults, the local Batch's DescribeJobs,
direct Step Functions calls; else moto's HTTP stub), so what the handlers see is what they saw in-process.
A handler's exception comes back as an exception of the same class name (the ASL error name). Log lines
go to the run's ``lambdas.log``, each tagged with its function, and the EMF metrics are counted and sent
back with each answer. An observer's process (``lambdas.OBSERVERS``: the workflow monitor) lowers its own
CPU priority first. Each process then builds its function's cold-start state (``lambdas.initialise``) while
the run starts, before its first event; the engine answers a function's calls only during an invocation, so
one made before (none of the handlers' builders makes any) is refused rather than sent.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from botocore.awsrequest import AWSRequest, AWSResponse
from moto.core.botocore_stubber import MockRawResponse

from stepspot import _gc, call_log
from stepspot.local.contained import handler_log_handlers
from stepspot.local.direct_calls import DirectCalls, http_headers
from stepspot.local.dynamodb_process import ask, call_message
from stepspot.local.forking import Channel, end_children, fork_child, quiet_child_output
from stepspot.local.lambdas import (
    OBSERVER_NICENESS,
    OBSERVERS,
    OutputRouter,
    initialise,
    lambda_principal,
    run_handler,
)

Serve = Callable[[tuple[Any, ...]], tuple[Any, ...]]


class FunctionError(Exception):
    """A handler's exception, raised in the engine under the handler's exception class name (what the
    interpreter makes the ASL error of), with the handler's last stack frames and the metrics it emitted."""

    trace: list[str]
    metrics: dict[str, float]


_error_classes: dict[str, type[FunctionError]] = {}


def function_error(name: str, message: str, trace: list[str], metrics: dict[str, float]) -> FunctionError:
    cls = _error_classes.get(name)
    if cls is None:
        cls = _error_classes[name] = type(name, (FunctionError,), {})
    error = cls(message)
    error.trace, error.metrics = trace, metrics
    return error


class FunctionProcess:
    """The engine's end of one function's process."""

    def __init__(self, pid: int, sock: socket.socket) -> None:
        self.pid = pid
        self.sock = sock
        self._channel = Channel(sock)

    def invoke(self, event: Mapping[str, Any], twice: bool, serve: Serve) -> tuple[Any, dict[str, float]]:
        """(the handler's result, the metrics it emitted); raises what the handler raised (by class name)."""
        self._channel.send(("invoke", dict(event), twice))
        while True:
            message = self._channel.receive()
            if message[0] == "aws":
                try:
                    reply: tuple[Any, ...] = serve(message)
                except Exception as bug:  # on the engine's side: the handler sees it as its call's failure
                    reply = ("fail", f"{type(bug).__name__}: {bug}\n{traceback.format_exc()}")
                self._channel.send(reply)
            elif message[0] == "ok":
                return message[1], message[2]
            else:
                _, name, text, trace, metrics = message
                raise function_error(name, text, trace, metrics)


@contextlib.contextmanager
def forked(
    dynamodb_sockets: Mapping[str, socket.socket], log_path: Path, handler_events: Any
) -> Iterator[dict[str, FunctionProcess]]:
    """One process per function of ``dynamodb_sockets`` (function key -> its connection to the DynamoDB
    process), while inside; they end when it ends."""
    processes: dict[str, FunctionProcess] = {}
    try:
        for key, dynamodb in dynamodb_sockets.items():
            ours, theirs = socket.socketpair()

            pid = fork_child(
                functools.partial(_start, key, ours, theirs, dynamodb, processes, log_path, handler_events)
            )
            theirs.close()
            dynamodb.close()  # the function's own now
            processes[key] = FunctionProcess(pid, ours)
        yield processes
    finally:
        end_children([p.pid for p in processes.values()], [p.sock for p in processes.values()])


def release(processes: Mapping[str, FunctionProcess]) -> None:
    """Let the functions' processes go now (the run invokes them no more): each leaves as soon as it sees
    its connection end; ``forked`` reaps them when it ends."""
    for process in processes.values():
        with contextlib.suppress(OSError):
            process.sock.shutdown(socket.SHUT_RDWR)


def server(handler_events: Any, botocore_session: Any) -> Serve:
    """The engine's answer to a function's AWS call: what its handler session would answer in-process."""
    from moto.core.models import botocore_stubber

    service_model = functools.lru_cache(maxsize=None)(botocore_session.get_service_model)  # a new one per call

    def serve(message: tuple[Any, ...]) -> tuple[Any, ...]:
        if message[1] == "send":  # a request no hook answered, signed by the function's SDK: moto's stub
            _, _, event_name, method, url, headers, body = message
            prepared = AWSRequest(method=method, url=url, headers=headers, data=body).prepare()
            http = botocore_stubber(event_name=event_name, request=prepared)
            if http is None:
                raise RuntimeError(f"no local service answers {event_name} ({url})")
            return ("raw", http.status_code, dict(http.headers), http.content)
        _, _, service_name, service_id, operation, request = message
        model = service_model(service_name).operation_model(operation)
        _, response = handler_events.emit_until_response(
            f"before-call.{service_id}.{operation}", model=model, params=request, request_signer=None, context={}
        )
        if response is None:
            return ("none",)
        http, parsed = response
        return ("parsed", http.status_code, dict(http.headers), parsed)

    return serve


def _start(
    key: str,
    ours: socket.socket,
    theirs: socket.socket,
    dynamodb: socket.socket,
    others: Mapping[str, FunctionProcess],
    log_path: Path,
    handler_events: Any,
) -> None:
    """In the child: close the engine's ends, then serve."""
    ours.close()
    for process in others.values():
        process.sock.close()
    _serve(key, Channel(theirs), Channel(dynamodb), log_path, handler_events)


def _serve(key: str, channel: Channel, dynamodb: Channel, log_path: Path, handler_events: Any) -> None:
    """A function's process: one invocation at a time, until the engine's end closes."""
    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    router = OutputRouter(devnull, log_path)
    sys.stdout = router
    for handler in handler_log_handlers():
        handler.setStream(router)
    quiet_child_output()
    _gc.collected_in_forked_server()
    call_log.set_default_principal(lambda_principal(key))
    if key in OBSERVERS:
        os.nice(OBSERVER_NICENESS)
    invoked = threading.Event()  # the engine answers a function's calls only while it invokes it
    _route_calls(channel, dynamodb, handler_events, invoked)
    initialise(key)
    invoked.set()
    while True:
        try:
            _, event, twice = channel.receive()
        except (EOFError, OSError):
            return
        reported = dict(router.metrics)
        try:
            with router.capture(key):
                result = run_handler(key, event, twice)
            reply: tuple[Any, ...] = ("ok", result, _new(router.metrics, reported))
        except Exception as exc:  # the Lambda runtime reports every exception as a function error
            trace = traceback.format_exception(exc)[-5:]
            reply = ("error", type(exc).__name__, str(exc), trace, _new(router.metrics, reported))
        try:
            channel.send(reply)
        except OSError:
            return


def _new(metrics: Mapping[str, float], reported: Mapping[str, float]) -> dict[str, float]:
    """What was counted since ``reported`` (a metric first emitted with 0 included: it was emitted)."""
    return {name: value - reported.get(name, 0.0) for name, value in metrics.items() if reported.get(name) != value}


def _route_calls(channel: Channel, dynamodb: Channel, handler_events: Any, invoked: threading.Event) -> None:
    """Every call of the handlers' clients: DynamoDB to its process, the rest to the engine, which serves
    them only during an invocation: one before the first (``invoked`` not set) is refused, never sent."""
    # A handler may call from several threads (parallel S3 transfers): one exchange at a time per channel.
    engine_lock, dynamodb_lock = threading.Lock(), threading.Lock()

    def to_dynamodb(operation: str, params: dict[str, Any]) -> Any:
        with dynamodb_lock:
            return ask(dynamodb, call_message(operation, params))

    direct = DirectCalls({"dynamodb": to_dynamodb})

    def forward(model: Any, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        service_model = model.service_model
        service_id = service_model.service_id.hyphenize()
        if service_id == "dynamodb":
            answered = direct(model=model, params=params)
            if answered is not None:
                return answered
        body: Any = params.get("body")
        if hasattr(body, "read"):  # a stream: read for the hooks, left where it was for the SDK
            start = body.tell()
            body, _ = body.read(), body.seek(start)
        request = {**{k: v for k, v in params.items() if k != "context"}, "body": body, "context": {}}
        reply = engine(("aws", "call", service_model.service_name, service_id, model.name, request))
        if reply[0] == "none":
            return None  # on to signing and before-send, as for AWS
        _, status, headers, parsed = reply
        return AWSResponse(params["url"], status, http_headers(headers), None), parsed

    def send(request: Any, event_name: str, **_: Any) -> AWSResponse:
        body = request.body
        if hasattr(body, "read"):
            body = body.read()
        reply = engine(("aws", "send", event_name, request.method, request.url, dict(request.headers), body))
        _, status, headers, content = reply
        return AWSResponse(request.url, status, http_headers(headers), MockRawResponse(content or b""))

    def engine(message: tuple[Any, ...]) -> tuple[Any, ...]:
        if not invoked.is_set():  # nobody would answer; an answer to it would be taken for an invocation
            raise RuntimeError(f"{message[1:5]} outside an invocation: the local engine answers none")
        with engine_lock:
            channel.send(message)
            reply: tuple[Any, ...] = channel.receive()
        if reply[0] == "fail":
            raise RuntimeError(f"the local engine failed to answer {message[1:4]}: {reply[1]}")
        return reply

    handler_events.register_first("before-send", send, unique_id="stepspot-function-process-send")
    # botocore runs every before-send handler: moto's own stub must not answer (from this process's stale
    # copy of moto) as well.
    from moto.core.models import botocore_stubber

    botocore_stubber.enabled = False
    handler_events.register_first("before-call", forward, unique_id="stepspot-function-process")
