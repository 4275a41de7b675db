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


class EventBus:
    def __init__(self, deliver: Callable[[str, dict[str, Any]], Any] | None) -> None:
        self._deliver = deliver
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
        self._queue.put(event)

    def close(self, timeout: float = 10.0) -> None:
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
                try:
                    result = self._deliver(function, event)
                except ModuleNotFoundError:
                    self.unrouted[function] += 1
                    continue
                except Exception as exc:  # a monitoring failure must not stop the workflow (as on AWS)
                    log.debug("%s failed on %s: %s", function, event["detail-type"], exc)
                    self.failed[function] += 1
                    continue
                if result is not None:
                    self.delivered[function] += 1
