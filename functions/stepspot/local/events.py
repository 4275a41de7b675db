"""A small in-process EventBridge for local mode.

The engine publishes the events AWS would (Batch Job State Change on each job transition, EC2 Spot
Instance Interruption Warning when a reclaim is injected, Step Functions Execution Status Change) in
the documented envelope, and delivers them to the monitoring Lambdas when they are installed
(``workflow_monitor``, ``interruption_handler``), on one worker thread so job threads never block.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from stepspot.local.lambdas import ACCOUNT_ID, REGION

log = logging.getLogger(__name__)

# detail-type -> the functions EventBridge rules send it to (terraform module "monitoring")
ROUTES = {
    "Batch Job State Change": ("workflow_monitor",),
    "Step Functions Execution Status Change": ("workflow_monitor",),
    "EC2 Spot Instance Interruption Warning": ("interruption_handler",),
    "EC2 Instance Rebalance Recommendation": ("interruption_handler",),
}
SOURCES = {
    "Batch Job State Change": "aws.batch",
    "Step Functions Execution Status Change": "aws.states",
    "EC2 Spot Instance Interruption Warning": "aws.ec2",
    "EC2 Instance Rebalance Recommendation": "aws.ec2",
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
    def __init__(
        self,
        deliver: Callable[[str, dict[str, Any]], Any] | None,
        deliveries: Callable[[str], tuple[int, float]] | None = None,
    ) -> None:
        self._deliver = deliver
        # (copies, delay in seconds) of each event: --aws-faults duplicates and delays deliveries
        self._deliveries = deliveries
        self._timers: list[threading.Timer] = []
        self._timers_lock = threading.Lock()
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self.published: Counter[str] = Counter()
        self.delivered: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.unrouted: Counter[str] = Counter()

    def start(self) -> None:
        self._worker = threading.Thread(target=self._run, name="local-eventbridge", daemon=True)
        self._worker.start()

    def publish(self, detail_type: str, detail: dict[str, Any], resources: list[str] | None = None) -> None:
        event = envelope(detail_type, detail, resources or [])
        self.published[detail_type] += 1
        copies, delay = self._deliveries(event["id"]) if self._deliveries else (1, 0.0)
        for _ in range(copies):  # the same event (same id) again: EventBridge delivers at least once
            if delay > 0:
                timer = threading.Timer(delay, self._queue.put, args=(event,))
                timer.daemon = True
                with self._timers_lock:
                    self._timers.append(timer)
                timer.start()
            else:
                self._queue.put(event)

    def close(self, timeout: float = 10.0) -> None:
        with self._timers_lock:
            timers, self._timers = self._timers, []
        for timer in timers:  # delayed deliveries still arrive before the bus closes
            timer.join(timeout)
        self._queue.put(None)
        if self._worker is not None:
            self._worker.join(timeout)

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            for function in ROUTES.get(event["detail-type"], ()):
                if self._deliver is None:
                    continue
                for attempt in range(1 + DELIVERY_RETRIES):
                    try:
                        result = self._deliver(function, event)
                    except ModuleNotFoundError:
                        self.unrouted[function] += 1
                        break
                    except Exception as exc:  # a monitoring failure must not stop the workflow (as on AWS)
                        log.debug("%s failed on %s: %s", function, event["detail-type"], exc)
                        if attempt == DELIVERY_RETRIES:
                            self.failed[function] += 1
                        continue
                    if result is not None:
                        self.delivered[function] += 1
                    break
