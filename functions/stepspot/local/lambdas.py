"""The Lambda functions of local mode: the real handlers, each function in a process of its own.

``LocalLambda`` is what moto's interpreter gets as its Lambda client: ``invoke(FunctionName, Payload)``
runs the handler module mapped to that function ARN and returns an AWS-shaped response; an exception
becomes ``FunctionError`` with ``errorType`` = the exception's class name, which the interpreter turns
into the ASL error name, as on AWS. One invocation per function runs at a time (like one warm Lambda
container). A local run gives each function a process of its own (``stepspot.local.lambda_processes``),
as each has its own execution environment on AWS; without processes (the tests of the event bus and the
output router) the handlers run in this process. An asynchronous
invocation (``InvocationType="Event"``: the scheduler's fan-out continuations, the monitor's reports,
made by the handlers through boto3 and routed here by ``stepspot.local.moto_patches``) is queued and run
on one worker thread, retried twice when the handler fails, as Lambda does.

Handler output (Powertools JSON logs and EMF metrics on stdout) is routed away from the terminal by
``OutputRouter``: metrics are counted for the summary (each emission once, ``stepspot.emf.counted``),
logs are appended to the run's log file. Handler output never reaches the console: the live display (the
CLI) is the only writer to the terminal. The router is installed for one run only
(``stepspot.local.contained``).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import queue
import threading
import traceback
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from stepspot import call_log, emf

log = logging.getLogger(__name__)

ACCOUNT_ID = "123456789012"
# Lambda runs a failed asynchronous event twice more before its on-failure destination gets it.
ASYNC_RETRIES = 2
REGION = "us-east-1"

# key (contracts: Terraform for_each key) -> handler module
FUNCTIONS = {
    "workflow_parser": "stepspot.handlers.workflow_parser",
    "scheduler": "stepspot.handlers.scheduler",
    "checkpoint_manager": "stepspot.handlers.checkpoint_manager",
    "attempt_manager": "stepspot.handlers.attempt_manager",
    "interruption_handler": "stepspot.handlers.interruption_handler",
    "workflow_monitor": "stepspot.handlers.workflow_monitor",
}


# Functions off the tasks' path: the workflow monitor records what happens (three Batch events per job:
# statuses, metrics, costs) and steps in only when a task execution ended without telling the scheduler
# (a report that waits for nothing urgent). On AWS every function has a CPU of its own; locally all
# share the machine's, and the monitor's share slowed the functions, DynamoDB and jobs that move the tasks
# on. Its process runs at a lower priority (it waits only while every core is busy); what it does and in
# which order is unchanged, and its backlog is delivered before a run is summarised.
OBSERVERS = frozenset({"workflow_monitor"})
OBSERVER_NICENESS = 10


def lambda_principal(key: str) -> str:
    """The principal name of a function's role in the recorded AWS calls (stepspot.call_log)."""
    return f"lambda:{key}"


def function_arn(key: str, prefix: str = "stepspot-local") -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{prefix}-{key.replace('_', '-')}"


@dataclass
class FakeContext:
    """The parts of the Lambda context Powertools reads."""

    function_name: str
    invoked_function_arn: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def run_handler(key: str, event: dict[str, Any], twice: bool = False) -> Any:
    """Run function ``key``'s handler on ``event`` in this process, as its Lambda runtime would (``twice``:
    the event delivered again, as at-least-once delivery may); returns the first answer."""
    module = importlib.import_module(FUNCTIONS[key])
    result = module.lambda_handler(event, FakeContext(function_name=key, invoked_function_arn=function_arn(key)))
    if twice:
        twin = FakeContext(function_name=key, invoked_function_arn=function_arn(key))
        module.lambda_handler(json.loads(json.dumps(event)), twin)
    return result


def initialise(key: str) -> None:
    """Build function ``key``'s cold-start state (its handler's ``runtime()``: settings, clients) before its
    first event. Lambda initialises an execution environment before the first invocation; the handlers
    defer this part of it to that invocation, and local mode does it while the run starts, when the
    function's process is otherwise idle: the first tasks wait for three functions' first invocations one
    after another. A failure is left to the first invocation, which builds the state again and reports it
    (the cache keeps no failure)."""
    runtime = getattr(importlib.import_module(FUNCTIONS[key]), "runtime", None)
    if runtime is not None:
        with contextlib.suppress(Exception):
            runtime()


class OutputRouter(io.TextIOBase):
    """Stands in for ``sys.stdout`` while a run goes: writes made by a thread that is running a Lambda
    handler go to the metrics counter (EMF documents) or the run's log file; all other writes (the
    terminal display) pass through unchanged."""

    def __init__(self, passthrough: TextIO, log_path: Path) -> None:
        self._passthrough = _unproxied(passthrough)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._log: TextIO | None = log_path.open("a", encoding="utf-8")
        self.metrics: defaultdict[str, float] = defaultdict(float)

    def capture(self, function: str) -> _Capture:
        return _Capture(self, function)

    def write(self, text: str) -> int:
        function = getattr(self._local, "function", None)
        if function is None:
            if getattr(self._local, "passing", False):
                # The passthrough wrote back into this router (a proxy around sys.stdout, such as rich's
                # FileProxy, that was swapped in later): drop the text rather than recurse forever.
                return len(text)
            self._local.passing = True
            try:
                return self._passthrough.write(text)
            finally:
                self._local.passing = False
        for line in text.splitlines():
            self._route(function, line)
        return len(text)

    def flush(self) -> None:
        self._passthrough.flush()
        with self._lock:
            if self._log:
                self._log.flush()

    def isatty(self) -> bool:
        return self._passthrough.isatty()

    def fileno(self) -> int:
        return self._passthrough.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._passthrough, "encoding", "utf-8")

    def count(self, metrics: Mapping[str, float]) -> None:
        """Add counted metrics (an EMF document written here, or a function's own process's counts)."""
        with self._lock:
            for name, value in metrics.items():
                self.metrics[name] += value

    def _route(self, function: str, line: str) -> None:
        if not line.strip():
            return
        try:
            document = json.loads(line)
        except ValueError:
            document = None
        if isinstance(document, dict) and "_aws" in document:
            self.count(emf.counted(document))
            return
        with self._lock:
            if self._log:
                self._log.write(f"[{function}] {line}\n")

    def close(self) -> None:
        with self._lock:
            if self._log:
                self._log.close()
                self._log = None


class _Capture:
    def __init__(self, router: OutputRouter, function: str) -> None:
        self._router = router
        self._function = function

    def __enter__(self) -> None:
        self._router._local.function = self._function

    def __exit__(self, *exc: object) -> None:
        self._router._local.function = None


class LocalLambda:
    """moto's Lambda client in local mode (see the module docstring)."""

    def __init__(
        self,
        arns: dict[str, str],
        router: OutputRouter,
        processes: Mapping[str, Any] | None = None,
        serve: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None,
    ) -> None:
        # key -> its process (stepspot.local.lambda_processes), whose AWS calls ``serve`` answers; none: the
        # handlers run in this process
        self._processes = dict(processes or {})
        self.serve = serve
        self._by_arn = {arn: key for key, arn in arns.items()}
        self._by_name = {arn.rsplit(":", 1)[-1]: key for key, arn in arns.items()}
        self._locks = {key: threading.Lock() for key in arns}
        self._lock = threading.Lock()
        self._router = router
        self.observers: list[Callable[[str, dict[str, Any], Any], None]] = []
        # Functions whose every event is delivered twice (at-least-once delivery, for tests).
        self.duplicate: set[str] = set()
        self._events: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._closed = False
        self.async_failed: Counter[str] = Counter()  # function -> asynchronous events that failed every try
        self.async_dropped = 0  # asynchronous events still queued when the run closed

    def serves(self, function_name: str) -> bool:
        """Whether ``function_name`` (a name or an ARN) is one of the run's functions."""
        return self._key(function_name) is not None

    def _key(self, function_name: str) -> str | None:
        return self._by_arn.get(function_name) or self._by_name.get(function_name.rsplit(":", 1)[-1])

    def call(self, key: str, event: dict[str, Any]) -> Any:
        """Invoke a handler directly (raises what the handler raises)."""
        with self._locks[key], call_log.acting_as(lambda_principal(key)):
            result = self._run(key, event)
        for observer in self.observers:
            observer(key, event, result)
        return result

    def _run(self, key: str, event: dict[str, Any]) -> Any:
        process = self._processes.get(key)
        if process is None:
            with self._router.capture(key):
                return run_handler(key, event, twice=key in self.duplicate)
        try:
            result, metrics = process.invoke(event, key in self.duplicate, self.serve)
        except Exception as error:  # a handler's exception (lambda_processes.FunctionError) carries its metrics
            self._router.count(getattr(error, "metrics", {}))
            raise
        self._router.count(metrics)
        return result

    def invoke(
        self, FunctionName: str, Payload: Any = None, InvocationType: str = "RequestResponse", **_: Any
    ) -> dict[str, Any]:
        key = self._key(FunctionName)
        if key is None:
            return self._error("ResourceNotFoundException", f"Function not found: {FunctionName}")
        if isinstance(Payload, bytes | bytearray):
            event = json.loads(Payload or b"{}")
        elif isinstance(Payload, str):
            event = json.loads(Payload or "{}")
        else:
            event = Payload or {}
        if InvocationType == "Event":
            self._enqueue(key, event)
            return {"StatusCode": 202, "ExecutedVersion": "$LATEST", "Payload": io.BytesIO(b"")}
        try:
            result = self.call(key, event)
        except Exception as exc:  # the Lambda runtime reports every exception as a function error
            return self._error(type(exc).__name__, str(exc), traceback.format_exception(exc)[-5:])
        return {
            "StatusCode": 200,
            "ExecutedVersion": "$LATEST",
            "Payload": io.BytesIO(json.dumps(result, default=str).encode()),
        }

    def close(self, timeout: float = 5.0) -> None:
        """Stop the asynchronous worker; events still queued are counted in ``async_dropped``."""
        with self._lock:
            self._closed = True
            worker = self._worker
        while True:
            try:
                item = self._events.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.async_dropped += 1
        self._events.put(None)
        if worker is not None:
            worker.join(timeout)

    def _enqueue(self, key: str, event: dict[str, Any]) -> None:
        with self._lock:
            if self._closed:
                self.async_dropped += 1
                return
            if self._worker is None:
                self._worker = threading.Thread(target=self._run_events, name="local-lambda-async", daemon=True)
                self._worker.start()
        self._events.put((key, event))

    def _run_events(self) -> None:
        while (item := self._events.get()) is not None:
            key, event = item
            for attempt in range(1 + ASYNC_RETRIES):
                try:
                    self.call(key, json.loads(json.dumps(event)))
                    break
                except Exception as exc:  # as on AWS: retried, then given up (the alert is the run's log)
                    log.warning("asynchronous %s event failed (attempt %d): %s", key, attempt + 1, exc)
                    if attempt == ASYNC_RETRIES:
                        self.async_failed[key] += 1

    @staticmethod
    def _error(error_type: str, message: str, trace: Iterable[str] = ()) -> dict[str, Any]:
        body = {"errorType": error_type, "errorMessage": message, "stackTrace": list(trace)}
        return {
            "StatusCode": 200,
            "FunctionError": "Unhandled",
            "ExecutedVersion": "$LATEST",
            "Payload": io.BytesIO(json.dumps(body).encode()),
        }


def _unproxied(stream: TextIO) -> TextIO:
    """The file behind rich's ``FileProxy`` (a live display redirecting stdout): writing through the
    proxy would print into the console, whose file is ``sys.stdout``, that is this router again."""
    return getattr(stream, "rich_proxied_file", stream)
