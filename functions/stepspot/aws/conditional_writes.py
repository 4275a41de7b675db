"""Conditional DynamoDB writes that tell "already done" from "not done yet, try again".

A conditional write (or a TransactWriteItems) either applies, or its guarded condition was false (the
transition already happened: a duplicate delivery), or DynamoDB cancelled it for a reason that says
nothing about the items (another transaction touching the same item, throttling). The last case is
retried here with full-jitter exponential backoff; if it persists, ``StateWriteContendedError`` (a
``RetryableError``, hence in every ASL Lambda Retry list) makes Step Functions run the step again, and
every step is idempotent. The classification itself is ``stepspot.aws.errors.write_verdict``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError

from stepspot.aws.errors import (
    WriteVerdict,
    cancellation_codes,
    cancellation_items,
    error_code,
    translate_client_error,
    write_verdict,
)
from stepspot.errors import StateWriteContendedError

ATTEMPTS = 6
BASE_DELAY_SECONDS = 0.05
MAX_DELAY_SECONDS = 1.0


@dataclass(frozen=True)
class WriteResult:
    applied: bool
    failed_items: frozenset[int] = frozenset()  # TransactItems (0 for a single write) whose condition was false
    # TransactItems index -> the item as it was, for a failed item that asked for it
    # (ReturnValuesOnConditionCheckFailure: ALL_OLD) and exists; Python values, as the resource API gives them
    old_items: Mapping[int, dict[str, Any]] = field(default_factory=dict)


def conditional_write(
    call: Callable[[], Any],
    doing: str,
    guarded: Collection[int] = (0,),
    *,
    attempts: int = ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
    unit_random: Callable[[], float] = random.random,
) -> WriteResult:
    """Run ``call`` (one conditional write) until it applies or a condition is false.

    ``doing`` completes "AWS was busy ..." in the error raised when DynamoDB keeps cancelling it.
    """
    reasons: list[str] = []
    for attempt in range(attempts):
        try:
            call()
            return WriteResult(applied=True)
        except ClientError as exc:
            verdict, failed = write_verdict(exc, guarded)
            if verdict is WriteVerdict.CONDITION_FAILED:
                return WriteResult(applied=False, failed_items=failed, old_items=_python_items(cancellation_items(exc)))
            if verdict is WriteVerdict.OTHER:
                raise translate_client_error(exc, doing) from exc
            reasons = cancellation_codes(exc) or [error_code(exc)]
        if attempt + 1 < attempts:
            sleep(unit_random() * min(MAX_DELAY_SECONDS, BASE_DELAY_SECONDS * 2**attempt))
    raise StateWriteContendedError(
        f"DynamoDB cancelled {doing} {attempts} times ({', '.join(reasons)}); the step will be retried",
        reasons=reasons,
    )


_deserializer = TypeDeserializer()


def _python_items(items: Mapping[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {index: {k: _deserializer.deserialize(v) for k, v in item.items()} for index, item in items.items()}
