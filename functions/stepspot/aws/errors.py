"""Classification of botocore ``ClientError`` codes, and their translation into stepspot's error hierarchy.

One place knows which AWS error codes mean "throttled", "not found", "denied" or "bad credentials";
the adapters (Lambda side, checkpoint store, CLI) differ only in the sentence they say to their user.
Standard library and botocore only: the in-container agent imports this through the checkpoint store.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import Enum
from typing import Any

from botocore.exceptions import ClientError

from stepspot.errors import (
    AwsAccessDeniedError,
    AwsResourceNotFoundError,
    AwsThrottledError,
    StepspotError,
)


class ErrorKind(Enum):
    THROTTLED = "throttled"  # throttling, conflicts and 5xx: worth retrying later
    NOT_FOUND = "not_found"
    DENIED = "denied"  # the credentials are fine, the role lacks a permission
    EXPIRED = "expired"  # the credentials have expired
    REJECTED = "rejected"  # the credentials are not valid at all
    OTHER = "other"  # a request stepspot built wrong, or a code nobody expected


_KIND_BY_CODE: dict[str, ErrorKind] = {
    **dict.fromkeys(
        (
            "Throttling",
            "ThrottlingException",
            "ThrottledException",
            "RequestLimitExceeded",
            "TooManyRequestsException",
            "ProvisionedThroughputExceededException",
            "RequestThrottled",
            "SlowDown",
            "RequestTimeout",
            "InternalError",
            "InternalServerError",
            "ServiceUnavailable",
            "TransactionConflictException",
        ),
        ErrorKind.THROTTLED,
    ),
    **dict.fromkeys(
        (
            "NoSuchBucket",
            "NoSuchKey",
            "ResourceNotFoundException",
            "ResourceNotFound",
            "404",
            "NotFound",
            "StateMachineDoesNotExist",
        ),
        ErrorKind.NOT_FOUND,
    ),
    **dict.fromkeys(
        ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403", "Forbidden"), ErrorKind.DENIED
    ),
    **dict.fromkeys(("ExpiredToken", "ExpiredTokenException", "RequestExpired"), ErrorKind.EXPIRED),
    **dict.fromkeys(
        (
            "UnrecognizedClientException",
            "InvalidClientTokenId",
            "InvalidAccessKeyId",
            "InvalidSignatureException",
            "SignatureDoesNotMatch",
        ),
        ErrorKind.REJECTED,
    ),
}


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_condition_failed(exc: ClientError) -> bool:
    """A single PutItem/UpdateItem/DeleteItem whose ConditionExpression was false (nothing else is)."""
    return error_code(exc) == "ConditionalCheckFailedException"


# DynamoDB's per-item codes in a TransactionCanceledException's CancellationReasons ("None": that item
# was fine). Only ConditionalCheckFailed says the item's state is not what the write expected; the
# others say nothing about the item and the same transaction may well succeed when tried again.
CANCELLATION_CONDITION_FAILED = "ConditionalCheckFailed"
CANCELLATION_CONTENDED = frozenset(
    {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
)


class WriteVerdict(Enum):
    CONDITION_FAILED = "condition_failed"  # a guarded item's condition was false: "already done"
    CONTENDED = "contended"  # conflict with another write, or throttling: try the same write again
    OTHER = "other"  # a malformed request, a missing table, a denied call...: raise


def cancellation_codes(exc: ClientError) -> list[str]:
    """Per-item cancellation codes of a TransactionCanceledException, in TransactItems order."""
    return [str(reason.get("Code") or "None") for reason in exc.response.get("CancellationReasons", []) or []]


def cancellation_items(exc: ClientError) -> dict[int, dict[str, Any]]:
    """TransactItems index -> the item as it was (DynamoDB's attribute-value form), for the items whose
    condition failed and that asked for it (``ReturnValuesOnConditionCheckFailure: ALL_OLD``) and exist."""
    reasons = exc.response.get("CancellationReasons", []) or []
    return {index: dict(reason["Item"]) for index, reason in enumerate(reasons) if reason.get("Item")}


def write_verdict(exc: ClientError, guarded: Collection[int] = (0,)) -> tuple[WriteVerdict, frozenset[int]]:
    """What a failed conditional write means, and the indexes of the items whose condition was false.

    ``guarded`` are the TransactItems whose condition failing means the transition already happened
    (single-item writes are item 0). A conflict or throttling on any item makes the whole write
    CONTENDED, unless a guarded item's condition failed too (then retrying cannot succeed).
    """
    code = error_code(exc)
    if code == "ConditionalCheckFailedException":
        return WriteVerdict.CONDITION_FAILED, frozenset({0})
    if code == "TransactionCanceledException":
        codes = cancellation_codes(exc)
        failed = frozenset(i for i, c in enumerate(codes) if c == CANCELLATION_CONDITION_FAILED)
        if failed & frozenset(guarded):
            return WriteVerdict.CONDITION_FAILED, failed
        if any(c in CANCELLATION_CONTENDED for c in codes):
            return WriteVerdict.CONTENDED, failed
        if failed:
            return WriteVerdict.CONDITION_FAILED, failed
        return WriteVerdict.OTHER, failed
    if error_kind(exc) is ErrorKind.THROTTLED:  # TransactionConflictException, throughput, 5xx
        return WriteVerdict.CONTENDED, frozenset()
    return WriteVerdict.OTHER, frozenset()


def error_kind(exc: ClientError) -> ErrorKind:
    kind = _KIND_BY_CODE.get(error_code(exc), ErrorKind.OTHER)
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return ErrorKind.THROTTLED if kind is ErrorKind.OTHER and status >= 500 else kind


def translate_client_error(exc: ClientError, doing: str) -> StepspotError:
    """The stepspot error for a failed AWS call; ``doing`` completes "failed while ..."."""
    code = error_code(exc)
    detail = exc.response.get("Error", {}).get("Message", "") or code
    kind = error_kind(exc)
    if kind is ErrorKind.THROTTLED:
        return AwsThrottledError(f"AWS was busy {doing} ({code}); retry later", code=code)
    if kind is ErrorKind.NOT_FOUND:
        return AwsResourceNotFoundError(f"not found while {doing}: {detail}", code=code)
    if kind in (ErrorKind.DENIED, ErrorKind.EXPIRED, ErrorKind.REJECTED):
        return AwsAccessDeniedError(f"access denied while {doing}: {detail}; check the role's permissions", code=code)
    return StepspotError(f"AWS error while {doing}: {code}: {detail}", code=code)
