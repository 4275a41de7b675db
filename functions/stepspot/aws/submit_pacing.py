"""Deployment-wide pacing of Batch SubmitJob calls: a leaky bucket in the state table.

SubmitJob allows about 50 calls per second per account. A wide fan-out (hundreds of tasks released by
one parent) would otherwise submit them all at once and lean on the ASL's retries. Each ChooseCapacity
takes the next free submission slot, ``1 / rate`` seconds after the previous one, and the task state
machine waits until its slot (``PaceSubmission``) before RunJob.

Why a bucket item and not only jitter: jitter spreads retries, but the first wave still arrives
together; one item updated with single-item conditional writes (no transactions, so no conflicts)
serialises the slots exactly, at one write per attempt while the bucket stays busy or stays idle (two
when it has just changed). The ASL's SubmitJob retry (full jitter, MaxDelaySeconds) stays as the safety
net for other users of the account's budget (the bucket is one deployment's: environments sharing an
account share its ~50 per second through their rates).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from stepspot.aws.errors import is_condition_failed, translate_client_error
from stepspot.state_keys import submit_pacing_key

MAX_TRIES = 5


class SubmitPacer:
    """Reserves SubmitJob slots. A warm instance remembers the bucket's next slot as it last saw it and
    tries first the write that predicts: while that slot is still ahead (a fan-out being submitted) the
    write that takes the next slot, else the one that finds the bucket idle. One write per reservation in
    a burst, not two. A "busy" guess is never wrong (the next slot only moves forward); an "idle" one is
    when another instance has made the bucket busy since, and costs one write more. Either write is
    conditional, so a guess never gives a wrong slot."""

    def __init__(
        self, dynamodb_resource: Any, table_name: str, rate_per_second: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._table = dynamodb_resource.Table(table_name)
        self._interval_ms = max(1, math.ceil(1000 / rate_per_second))
        self._clock = clock
        self._next_seen_ms = 0  # the bucket's next free slot as this instance last saw it

    def reserve(self) -> int:
        """Whole seconds to wait before submitting (0: submit now)."""
        for _ in range(MAX_TRIES):
            now_ms = int(self._clock() * 1000)
            busy_first = self._next_seen_ms >= now_ms
            for busy in (busy_first, not busy_first):
                slot_ms = self._take_next_slot(now_ms) if busy else self._take_idle_bucket(now_ms)
                if slot_ms is not None:
                    self._next_seen_ms = slot_ms + self._interval_ms
                    return max(0, (slot_ms - now_ms) // 1000)
            # Both conditions failed: the bucket flipped between idle and busy in between; try again.
        return 0  # the bucket keeps flipping between idle and busy: it is nearly idle, go now

    def _take_idle_bucket(self, now_ms: int) -> int | None:
        """An idle bucket: this submission goes now and the next slot is one interval later (None: busy)."""
        taken = self._update(
            UpdateExpression="SET next_at = :next",
            ConditionExpression="attribute_not_exists(next_at) OR next_at < :now",
            ExpressionAttributeValues={":next": now_ms + self._interval_ms, ":now": now_ms},
        )
        return None if taken is None else now_ms

    def _take_next_slot(self, now_ms: int) -> int | None:
        """A busy bucket: take its next slot and move it on (None: it has drained, it is idle)."""
        taken = self._update(
            UpdateExpression="SET next_at = next_at + :interval",
            ConditionExpression="next_at >= :now",
            ExpressionAttributeValues={":interval": self._interval_ms, ":now": now_ms},
            ReturnValues="UPDATED_NEW",
        )
        return None if taken is None else int(Decimal(taken["Attributes"]["next_at"])) - self._interval_ms

    def _update(self, **params: Any) -> dict[str, Any] | None:
        """One conditional UpdateItem of the bucket: its response, or None when its condition was false."""
        try:
            response: dict[str, Any] = self._table.update_item(Key=submit_pacing_key(), **params)
        except ClientError as exc:
            if is_condition_failed(exc):
                return None
            raise translate_client_error(exc, "reserving a SubmitJob slot") from exc
        return response
