"""Translation of botocore ``ClientError`` codes into stepspot's error hierarchy (the adapter boundary)."""

from __future__ import annotations

from botocore.exceptions import ClientError

from stepspot.errors import (
    AwsAccessDeniedError,
    AwsResourceNotFoundError,
    AwsThrottledError,
    StepspotError,
)

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestThrottled",
        "SlowDown",
        "InternalError",
        "InternalServerError",
        "ServiceUnavailable",
    }
)
NOT_FOUND_CODES = frozenset(
    {"NoSuchBucket", "NoSuchKey", "ResourceNotFoundException", "404", "NotFound", "StateMachineDoesNotExist"}
)
ACCESS_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403"})


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def translate_client_error(exc: ClientError, doing: str) -> StepspotError:
    """The stepspot error for a failed AWS call; ``doing`` completes "failed while ..."."""
    code = error_code(exc)
    detail = exc.response.get("Error", {}).get("Message", "") or code
    if code in THROTTLING_CODES or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500:
        return AwsThrottledError(f"AWS was busy {doing} ({code}); retry later", code=code)
    if code in NOT_FOUND_CODES:
        return AwsResourceNotFoundError(f"not found while {doing}: {detail}", code=code)
    if code in ACCESS_CODES:
        return AwsAccessDeniedError(f"access denied while {doing}: {detail}; check the role's permissions", code=code)
    return StepspotError(f"AWS error while {doing}: {code}: {detail}", code=code)
