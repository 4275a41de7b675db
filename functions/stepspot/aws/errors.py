"""Classification of botocore ``ClientError`` codes, and their translation into stepspot's error hierarchy.

One place knows which AWS error codes mean "throttled", "not found", "denied" or "bad credentials";
the adapters (Lambda side, checkpoint store, CLI) differ only in the sentence they say to their user.
Standard library and botocore only: the in-container agent imports this through the checkpoint store.
"""

from __future__ import annotations

from enum import Enum

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
