"""Translation of botocore failures into stepspot errors for the monitoring adapters.

Used by the ECS, Batch, SNS and DynamoDB adapters of the interruption handler and the workflow monitor.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from stepspot.errors import AwsAccessDeniedError, AwsResourceNotFoundError, AwsThrottledError, StepspotError

_MISSING = {"ResourceNotFoundException", "ClusterNotFoundException", "NotFound", "NotFoundException"}
_DENIED = {
    "AccessDenied",
    "AccessDeniedException",
    "AuthorizationError",
    "UnrecognizedClientException",
    "ExpiredToken",
    "ExpiredTokenException",
}
_TRANSIENT = {
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "ServerException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
    "KMSThrottlingException",
}


def translate(exc: Exception, action: str) -> StepspotError:
    """Map a botocore exception raised by ``action`` (e.g. "ecs:ListTasks on cluster X") to a stepspot error.

    Codes outside the known groups (ValidationException, ...) are bugs in stepspot: they are re-raised
    unchanged so the traceback shows where.
    """
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _DENIED:
            return AwsAccessDeniedError(
                f"{action} was denied ({code}): grant this permission to the function's role.", code=code
            )
        if code in _MISSING:
            return AwsResourceNotFoundError(
                f"{action} failed: the resource does not exist ({code}). Check the deployment.", code=code
            )
        if code in _TRANSIENT or status >= 500:
            return AwsThrottledError(
                f"{action} was throttled or failed briefly ({code}); retry later.", code=code
            )
        raise exc
    if isinstance(exc, BotoCoreError):
        return AwsThrottledError(f"{action} could not reach AWS ({exc}); retry later.")
    raise exc
