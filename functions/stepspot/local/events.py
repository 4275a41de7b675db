"""A small in-process EventBridge for local mode.

The engine publishes the events AWS would (Batch Job State Change on each job transition, EC2 Spot
Instance Interruption Warning when a reclaim is injected, Step Functions Execution Status Change) in
the documented envelope, and delivers them to the monitoring Lambdas (``workflow_monitor``,
``interruption_handler``) on one worker thread, so job threads never block. The engine closes the bus
before it summarises a run: every event is delivered by then, or counted as not delivered.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from stepspot.events import (
    BATCH_JOB_STATE_CHANGE,
    REBALANCE_RECOMMENDATION,
    SFN_EXECUTION_STATUS_CHANGE,
    SPOT_INTERRUPTION_WARNING,
)
from stepspot.local.lambdas import ACCOUNT_ID, REGION

log = logging.getLogger(__name__)

# detail-type -> the functions EventBridge rules send it to (terraform module "monitoring")
ROUTES = {
    BATCH_JOB_STATE_CHANGE: ("workflow_monitor",),
    SFN_EXECUTION_STATUS_CHANGE: ("workflow_monitor",),
    SPOT_INTERRUPTION_WARNING: ("interruption_handler",),
    REBALANCE_RECOMMENDATION: ("interruption_handler",),
}
# The execution statuses the "execution-status" rule matches (terraform/modules/monitoring/main.tf; a test
# keeps the two equal): EventBridge delivers no other status change (RUNNING, PENDING_REDRIVE) to the monitor.
ROUTED_EXECUTION_STATUSES = frozenset({"FAILED", "TIMED_OUT", "ABORTED", "SUCCEEDED"})
# The "task-execution-status" rule: a task execution reaches the monitor only when it ended abnormally.
ROUTED_TASK_EXECUTION_STATUSES = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
# The "batch-job-state" rule: SUBMITTED, PENDING and STARTING are not routed.
ROUTED_JOB_STATUSES = frozenset({"RUNNABLE", "RUNNING", "SUCCEEDED", "FAILED"})


def matched_by_a_rule(detail_type: str, detail: dict[str, Any]) -> bool:
    """Whether one of the deployment's EventBridge rules matches the event (others reach no Lambda)."""
    status = detail.get("status")
    if detail_type == SFN_EXECUTION_STATUS_CHANGE:
        statuses = ROUTED_TASK_EXECUTION_STATUSES if _runs_a_task(detail) else ROUTED_EXECUTION_STATUSES
        return status in statuses
    if detail_type == BATCH_JOB_STATE_CHANGE:
        return status in ROUTED_JOB_STATUSES
    return detail_type in ROUTES


def _runs_a_task(detail: dict[str, Any]) -> bool:
    """A task state machine's execution (its input names the task: docs/contracts.md)."""
    try:
        payload = json.loads(detail.get("input") or "{}")
    except ValueError:
        return False
    return isinstance(payload, dict) and bool(payload.get("task_id"))


SOURCES = {
    BATCH_JOB_STATE_CHANGE: "aws.batch",
    SFN_EXECUTION_STATUS_CHANGE: "aws.states",
    SPOT_INTERRUPTION_WARNING: "aws.ec2",
    REBALANCE_RECOMMENDATION: "aws.ec2",
}


def envelope(detail_type: str, detail: dict[str, Any], resources: list[str]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": SOURCES[detail_type],
        "account": ACCOUNT_ID,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": resources,
        "detail": detail,
    }


# A target Lambda that fails is invoked again, as EventBridge's asynchronous invocation does (twice).
DELIVERY_RETRIES = 2


class EventBus:
    """Delivers each published event to the Lambdas its detail-type is routed to, in order, on one worker
    thread. ``close`` waits until everything published has been delivered; what could not be by its
    deadline is counted in ``undelivered``, so a run's summary says what its Lambdas never saw."""

    def __init__(
        self,
        deliver: Callable[[str, dict[str, Any]], Any],
        deliveries: Callable[[str], tuple[int, float]] | None = None,
    ) -> None:
        self._deliver = deliver
        # (copies, delay in seconds) of each event: --aws-faults duplicates and delays deliveries
        self._deliveries = deliveries
        self._timers: list[threading.Timer] = []
        self._lock = threading.Lock()
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._closed = False  # nothing published from now on is delivered
        self._abandoned = False  # close's deadline passed: the worker delivers nothing more
        self._pending: Counter[str] = Counter()  # detail-type -> copies published and not yet handled
        self.published: Counter[str] = Counter()  # detail-type -> events a rule matched
        self.unmatched: Counter[str] = Counter()  # detail-type -> events no rule matched (never delivered)
        self.delivered: Counter[str] = Counter()  # function -> deliveries its handler returned from
        self.failed: Counter[str] = Counter()  # function -> events its handler failed on, retries included
        self.undelivered: Counter[str] = Counter()  # detail-type -> copies no handler saw before close
        self.outcomes: defaultdict[str, Counter[str]] = defaultdict(Counter)  # function -> result "outcome"s

    def start(self) -> None:
        self._worker = threading.Thread(target=self._run, name="local-eventbridge", daemon=True)
        self._worker.start()

    def publish(self, detail_type: str, detail: dict[str, Any], resources: list[str] | None = None) -> None:
        if not matched_by_a_rule(detail_type, detail):
            with self._lock:
                self.unmatched[detail_type] += 1
            return
        event = envelope(detail_type, detail, resources or [])
        copies, delay = self._deliveries(event["id"]) if self._deliveries else (1, 0.0)
        with self._lock:
            self.published[detail_type] += 1
            if self._closed:  # after the run's end: said in the summary rather than lost silently
                self.undelivered[detail_type] += copies
                return
            self._pending[detail_type] += copies
            for _ in range(copies):  # the same event (same id) again: EventBridge delivers at least once
                if delay > 0:
                    timer = threading.Timer(delay, self._queue.put, args=(event,))
                    timer.daemon = True
                    self._timers.append(timer)
                    timer.start()
                else:
                    self._queue.put(event)

    def close(self, timeout: float = 10.0) -> None:
        """Deliver everything published so far (delayed copies included), for at most ``timeout``
        seconds, then stop; copies still waiting then are counted in ``undelivered``. Idempotent."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._closed:
                return
            self._closed = True
            timers, self._timers = self._timers, []
        for timer in timers:  # delayed deliveries still arrive before the bus closes
            timer.join(max(0.0, deadline - time.monotonic()))
        self._queue.put(None)
        if self._worker is not None:
            self._worker.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            for timer in timers:
                timer.cancel()
            self._abandoned = True
            self.undelivered.update(+self._pending)
            self._pending.clear()

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            with self._lock:
                if self._abandoned:
                    return
            self._handle(event)
            with self._lock:
                if not self._abandoned:
                    self._pending[event["detail-type"]] -= 1

    def _handle(self, event: dict[str, Any]) -> None:
        for function in ROUTES.get(event["detail-type"], ()):
            for attempt in range(1 + DELIVERY_RETRIES):
                try:
                    result = self._deliver(function, event)
                except Exception as exc:  # a monitoring failure must not stop the workflow (as on AWS)
                    log.debug("%s failed on %s: %s", function, event["detail-type"], exc)
                    if attempt == DELIVERY_RETRIES:
                        self.failed[function] += 1
                    continue
                self.delivered[function] += 1
                if isinstance(result, dict) and result.get("outcome"):
                    self.outcomes[function][str(result["outcome"])] += 1
                break
