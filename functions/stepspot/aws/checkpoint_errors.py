"""Translation of botocore failures into stepspot errors for the checkpoint adapters (S3, DynamoDB).

Standard library and botocore only: the in-container agent imports this.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from stepspot.errors import (
    AwsAccessDeniedError,
    AwsResourceNotFoundError,
    CheckpointStoreUnavailable,
    StepspotError,
)

_MISSING = {"NoSuchBucket", "ResourceNotFoundException", "404", "NotFound"}
_DENIED = {
    "AccessDenied",
    "AccessDeniedException",
    "403",
    "Forbidden",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
}

_TRANSIENT = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "RequestThrottled",
    "SlowDown",
    "RequestTimeout",
    "InternalError",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
}


def translate(exc: Exception, resource: str, action: str, fix: str) -> StepspotError:
    """Map a botocore exception raised by ``action`` on ``resource`` to the stepspot error a caller handles.

    ``resource`` reads like "checkpoint bucket 'b'"; ``fix`` says what to do when it is missing.
    """
    what = f"{action} in {resource}"
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _MISSING:
            return AwsResourceNotFoundError(f"{resource[0].upper()}{resource[1:]} does not exist: {fix}.", code=code)
        if code in _DENIED:
            return AwsAccessDeniedError(
                f"Access to {resource} was denied ({code}) while {action.lower()}: "
                "give the job or function role access to it.",
                code=code,
            )
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _TRANSIENT or status >= 500:
            return CheckpointStoreUnavailable(f"{what} failed with {code}, try again later: {exc}", code=code)
        raise exc  # anything else (ValidationException, ...) is a bug in stepspot: keep the traceback
    if isinstance(exc, NoCredentialsError):
        return AwsAccessDeniedError(
            f"{what} needs AWS credentials and none were found: run with a role or set AWS credentials."
        )
    if isinstance(exc, NoRegionError):
        return AwsResourceNotFoundError(f"{action} needs an AWS region: set AWS_REGION or AWS_DEFAULT_REGION.")
    if isinstance(exc, BotoCoreError):
        return CheckpointStoreUnavailable(f"{what} could not be reached: {exc}")
    raise exc
