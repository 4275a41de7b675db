"""AWS-side faults of local mode (``stepspot local --aws-faults RATE``): what moto never does.

moto never cancels a DynamoDB transaction on a conflict, never throttles, and local Lambdas, Batch and
EventBridge never fail on their own. This module injects those faults, at ``rate``, as the real
services raise them:

- DynamoDB: ``TransactionCanceledException`` with ``TransactionConflict`` / ``ThrottlingError``
  reasons on TransactWriteItems; ``ProvisionedThroughputExceededException`` on single writes (retried
  by the SDK as on AWS: the handler sees it only if every attempt the SDK makes is throttled);
- Lambda (as the state machines see it): ``Lambda.TooManyRequestsException`` before the handler runs,
  ``Lambda.ClientExecutionTimeoutException`` (a lost response) and ``Sandbox.Timedout`` (the function's
  own timeout) after it ran;
- Batch: ``TooManyRequestsException`` on SubmitJob (``Batch.AWSBatchException`` in the ASL);
- Step Functions: ``ThrottlingException`` on StartExecution (retried by the SDK likewise);
- EventBridge: duplicated and delayed deliveries.

Every decision is a pure function of (seed, kind, operation key, per-key call number), never of the
wall clock or thread timing, so a seed reproduces the same faults for the same sequence of calls.
Faults are injected only before a call reaches moto: a faulted call has no effect, as on AWS.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ClientError

# botocore's event names of the calls faults are injected into (service id as botocore spells it).
DYNAMODB_WRITES = ("TransactWriteItems", "UpdateItem", "PutItem", "DeleteItem")
START_EXECUTION = "StartExecution"
SUBMIT_JOB = "SubmitJob"

# The errors a faulted synchronous Lambda invocation raises in the state machine, and those injected
# only after the handler ran (a lost response; the function's own timeout, which the Retry lists name
# through stepspot.transient_errors.LAMBDA_FUNCTION_TIMEOUT_ERRORS).
LAMBDA_FAULTS = ("Lambda.TooManyRequestsException", "Lambda.ClientExecutionTimeoutException", "Sandbox.Timedout")
LAMBDA_FAULTS_AFTER_THE_HANDLER = frozenset(LAMBDA_FAULTS[1:])

# botocore's standard retry mode (boto3's default, here and in the Lambda layer) retries throttling
# errors (ProvisionedThroughputExceededException, ThrottlingException, ...) itself: 4 attempts in all for
# DynamoDB, 3 for the other services (botocore.retries.standard). Transaction cancellations are not retried.
SDK_ATTEMPTS = {"dynamodb": 4}
SDK_DEFAULT_ATTEMPTS = 3

# A fault is never injected more than this many times in a row for one key: the real services'
# faults are transient, and a bounded streak keeps every retry budget of the ASL and the adapters
# sufficient (the point is to exercise the retries, not to exhaust them).
MAX_CONSECUTIVE = 2


def request_body(params: dict[str, Any]) -> dict[str, Any]:
    """The API parameters of a ``before-call`` event (its ``params`` is the serialised request: the
    JSON body of DynamoDB, Step Functions and Batch calls)."""
    body = params.get("body") or b"{}"
    try:
        decoded = json.loads(body.decode() if isinstance(body, bytes) else body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return decoded if isinstance(decoded, dict) else {}


def error_response(
    code: str,
    message: str,
    status: int = 400,
    cancellation_reasons: list[dict[str, Any]] | None = None,
) -> tuple[AWSResponse, dict[str, Any]]:
    """What a botocore ``before-call`` handler returns to make the call fail as the service would."""
    parsed: dict[str, Any] = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": 0},
    }
    if cancellation_reasons is not None:
        parsed["CancellationReasons"] = cancellation_reasons
    return AWSResponse("https://stepspot.local/fault", status, HTTPHeaders(), None), parsed


@dataclass
class AwsFaults:
    """Seeded decisions and counters of the injected faults (thread-safe)."""

    rate: float = 0.0
    seed: int = 0
    injected: Counter[str] = field(default_factory=Counter)
    _calls: Counter[str] = field(default_factory=Counter)
    _streak: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def renew_lock(self) -> None:
        """A new lock, in a process forked from the engine (where another thread may have held the old)."""
        self._lock = threading.Lock()

    def decide(self, kind: str, key: str) -> bool:
        """Whether the next call of ``kind`` on ``key`` fails; counts it in ``injected`` if so."""
        if not self.enabled:
            return False
        with self._lock:
            slot = f"{kind}/{key}"
            self._calls[slot] += 1
            digest = hashlib.sha256(f"{self.seed}\x1f{slot}\x1f{self._calls[slot]}".encode()).digest()
            fault = int.from_bytes(digest[:8], "big") / 2**64 < self.rate and self._streak[slot] < MAX_CONSECUTIVE
            self._streak[slot] = self._streak[slot] + 1 if fault else 0
            if fault:
                self.injected[kind] += 1
            return fault

    def outlasts_the_sdk(self, kind: str, key: str, service: str) -> bool:
        """Whether a throttle the SDK retries fails every attempt the SDK makes (each faulted attempt is
        counted). An injected fault skips botocore's retry handler, so the hook plays it: a throttle the
        SDK absorbs never reaches the handler on AWS and must not here (its backoff is not waited)."""
        return all(self.decide(kind, key) for _ in range(SDK_ATTEMPTS.get(service, SDK_DEFAULT_ATTEMPTS)))

    def variant(self, kind: str, key: str, choices: int) -> int:
        """A seeded choice among ``choices`` for the current call of ``kind`` on ``key``."""
        with self._lock:
            n = self._calls[f"{kind}/{key}"]
        digest = hashlib.sha256(f"{self.seed}\x1fvariant\x1f{kind}/{key}\x1f{n}".encode()).digest()
        return digest[0] % choices

    # -- botocore hooks ---------------------------------------------------------------------------

    def _hooks(self) -> list[tuple[str, Any]]:
        hooks: list[tuple[str, Any]] = [(f"before-call.dynamodb.{op}", self._dynamodb_fault) for op in DYNAMODB_WRITES]
        hooks.append((f"before-call.sfn.{START_EXECUTION}", self._start_execution_fault))
        hooks.append((f"before-call.batch.{SUBMIT_JOB}", self._submit_job_fault))
        return hooks

    @contextlib.contextmanager
    def installed(self, botocore_session: Any) -> Iterator[None]:
        """Hook every client created from ``botocore_session`` while inside (the handlers' clients:
        they are created from boto3's default session after the engine clears their caches)."""
        if not self.enabled:
            yield
            return
        for event, handler in self._hooks():
            botocore_session.register(event, handler, unique_id=f"stepspot-aws-faults-{event}")
        try:
            yield
        finally:
            for event, _handler in self._hooks():
                botocore_session.unregister(event, unique_id=f"stepspot-aws-faults-{event}")

    def install(self, clients: Iterable[Any]) -> None:
        """Register the hooks on existing boto3 clients."""
        if not self.enabled:
            return
        for client in clients:
            for event, handler in self._hooks():
                client.meta.events.register(event, handler)

    def _dynamodb_fault(self, params: dict[str, Any], model: Any, **_: Any) -> Any:
        fault = self.dynamodb_fault(model.name, request_body(params))
        if fault is None:
            return None
        code, message, reasons = fault
        return error_response(code, message, cancellation_reasons=reasons)

    def dynamodb_fault(
        self, operation: str, params: dict[str, Any]
    ) -> tuple[str, str, list[dict[str, Any]] | None] | None:
        """(error code, message, cancellation reasons) of the fault the next DynamoDB write ``operation`` with
        the request ``params`` fails with, or None (the hook in this process; the DynamoDB process's own
        check of the Lambdas' calls, ``stepspot.local.dynamodb_process``)."""
        if operation == "TransactWriteItems":
            items = params.get("TransactItems", [])
            key = "|".join(_item_key(i) for i in items)
            if not self.decide("dynamodb.transaction", key):
                return None
            reason = ("TransactionConflict", "ThrottlingError")[self.variant("dynamodb.transaction", key, 2)]
            victim = self.variant("dynamodb.victim", key, max(1, len(items)))
            reasons = [{"Code": reason if i == victim else "None"} for i in range(len(items))]
            message = f"Transaction cancelled, please refer cancellation reasons for specific reasons [{reason}]"
            return "TransactionCanceledException", message, reasons
        key = f"{operation}:{_key_text(params.get('Key') or params.get('Item') or {})}"
        if not self.outlasts_the_sdk("dynamodb.throttle", key, "dynamodb"):
            return None
        message = "The level of configured provisioned throughput for the table was exceeded"
        return "ProvisionedThroughputExceededException", message, None

    def _start_execution_fault(self, params: dict[str, Any], **_: Any) -> Any:
        params = request_body(params)
        if not self.outlasts_the_sdk("sfn.start_execution", str(params.get("name", "")), "sfn"):
            return None
        return error_response("ThrottlingException", "Rate exceeded")

    def _submit_job_fault(self, params: dict[str, Any], **_: Any) -> Any:
        code = self.submit_job_error(str(request_body(params).get("jobName", "")))
        return error_response(code, "Too Many Requests", status=429) if code else None

    def submit_job_error(self, job_name: str) -> str | None:
        """The error code a throttled SubmitJob answers with, or None. Step Functions shows it as
        ``Batch.AWSBatchException`` (the SDK's base exception) or ``Batch.TooManyRequestsException``."""
        if not self.decide("batch.submit_job", job_name):
            return None
        return ("AWSBatchException", "TooManyRequestsException")[self.variant("batch.submit_job", job_name, 2)]

    # -- Lambda and EventBridge (called by the local Lambda and event bus) ------------------------

    def lambda_error(self, function: str, key: str) -> str | None:
        """The ASL error name a throttled or timed-out invocation raises, or None to run the handler."""
        if not self.decide("lambda", f"{function}/{key}"):
            return None
        return LAMBDA_FAULTS[self.variant("lambda", f"{function}/{key}", len(LAMBDA_FAULTS))]

    def event_deliveries(self, event_id: str) -> tuple[int, float]:
        """(copies, delay in seconds) for one EventBridge delivery: at least once, sometimes late."""
        copies = 2 if self.decide("events.duplicate", event_id) else 1
        delay = 0.2 * (1 + self.variant("events.delay", event_id, 4)) if self.decide("events.delay", event_id) else 0.0
        return copies, delay

    def summary(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self.injected.items()))

    # -- the local engine's own clients (moto's interpreter calls these, not botocore) ------------

    def lambda_client(self, lambdas: Any) -> Any:
        return _FaultyLambda(lambdas, self) if self.enabled else lambdas

    def batch_client(self, batch: Any) -> Any:
        return _FaultyBatch(batch, self) if self.enabled else batch


class _FaultyLambda:
    """The interpreter's Lambda client with throttles and timeouts. A timeout is injected after the
    handler ran (its effects stay, as when the response is lost or the function ran out of time on AWS):
    the retry must be harmless."""

    def __init__(self, lambdas: Any, faults: AwsFaults) -> None:
        self._lambdas = lambdas
        self._faults = faults

    def __getattr__(self, name: str) -> Any:
        return getattr(self._lambdas, name)

    def invoke(self, FunctionName: str, Payload: Any = None, **kwargs: Any) -> dict[str, Any]:
        if kwargs.get("InvocationType") == "Event":
            # A handler's asynchronous invocation: queued and retried by the local Lambda, not faulted here
            # (a function error would vanish into a 202 instead of failing the caller's API call).
            return dict(self._lambdas.invoke(FunctionName=FunctionName, Payload=Payload, **kwargs))
        key = hashlib.sha256(bytes(Payload or b"") if not isinstance(Payload, str) else Payload.encode()).hexdigest()
        error = self._faults.lambda_error(FunctionName.rsplit(":", 1)[-1], key[:16])
        if error is None:
            return dict(self._lambdas.invoke(FunctionName=FunctionName, Payload=Payload, **kwargs))
        if error in LAMBDA_FAULTS_AFTER_THE_HANDLER:
            self._lambdas.invoke(FunctionName=FunctionName, Payload=Payload, **kwargs)  # ran; answer lost
        body = {"errorType": error, "errorMessage": f"injected by --aws-faults: {error}", "stackTrace": []}
        return {
            "StatusCode": 200,
            "FunctionError": "Unhandled",
            "ExecutedVersion": "$LATEST",
            "Payload": io.BytesIO(json.dumps(body).encode()),
        }


class _FaultyBatch:
    """The interpreter's Batch client with throttled SubmitJob calls (no job is created)."""

    def __init__(self, batch: Any, faults: AwsFaults) -> None:
        self._batch = batch
        self._faults = faults

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    def submit_job(self, **params: Any) -> dict[str, Any]:
        name = str(params.get("jobName") or params.get("JobName") or "")
        code = self._faults.submit_job_error(name)
        if code:
            response: Any = {
                "Error": {"Code": code, "Message": "Too Many Requests"},
                "ResponseMetadata": {"HTTPStatusCode": 429, "RequestId": "local", "HTTPHeaders": {}},
            }
            raise ClientError(response, "SubmitJob")
        return dict(self._batch.submit_job(**params))


def _key_text(key: dict[str, Any]) -> str:
    parts = []
    for name in ("pk", "sk"):
        value = key.get(name)
        if isinstance(value, dict):  # client-level AttributeValue
            value = next(iter(value.values()), "")
        if value is not None:
            parts.append(str(value))
    return "/".join(parts)


def _item_key(item: dict[str, Any]) -> str:
    body: dict[str, Any] = next(iter(item.values()), {})
    return _key_text(body.get("Key") or body.get("Item") or {})
