"""DynamoDB store of the circuit breakers (``BREAKER#<queue name>`` / ``STATE``).

Optimistic concurrency: read the state, compute the transition (pure, ``stepspot.breaker``), write it
only if ``version`` is unchanged; on a lost race, read again and recompute. So exactly one caller wins
the open -> half-open transition and becomes the Spot trial.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from stepspot.aws.errors import is_condition_failed, translate_client_error
from stepspot.breaker import BreakerState
from stepspot.errors import AwsThrottledError
from stepspot.state_keys import breaker_key

T = TypeVar("T")
MAX_RACES = 8


class BreakerStore:
    def __init__(self, dynamodb_resource: Any, table_name: str, clock: Callable[[], float] = time.time) -> None:
        self._table = dynamodb_resource.Table(table_name)
        self._clock = clock

    def get(self, queue_name: str) -> BreakerState:
        try:
            item = self._table.get_item(Key=breaker_key(queue_name), ConsistentRead=True).get("Item")
        except ClientError as exc:
            raise translate_client_error(exc, f"reading the breaker of {queue_name}") from exc
        return BreakerState.from_item(item)

    def apply(
        self, queue_name: str, transition: Callable[[BreakerState, float], tuple[T, BreakerState]]
    ) -> tuple[T, BreakerState]:
        """Run ``transition(state, now) -> (result, new_state)`` atomically; returns the result and the
        state in force afterwards."""
        for _ in range(MAX_RACES):
            current = self.get(queue_name)
            result, new = transition(current, self._clock())
            if new == current:
                return result, current
            item = {**breaker_key(queue_name), **new.to_item(), "version": current.version + 1}
            try:
                if current.version == 0:
                    self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
                else:
                    self._table.put_item(
                        Item=item, ConditionExpression="version = :v", ExpressionAttributeValues={":v": current.version}
                    )
                return result, BreakerState.from_item(item)
            except ClientError as exc:
                if not is_condition_failed(exc):
                    raise translate_client_error(exc, f"updating the breaker of {queue_name}") from exc
        raise AwsThrottledError(f"the breaker of {queue_name} changed {MAX_RACES} times during one update; retry")
