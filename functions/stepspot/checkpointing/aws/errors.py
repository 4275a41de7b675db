"""Translation of botocore failures into stepspot errors for the checkpoint adapters (S3, DynamoDB).

Which code means what is decided once, in ``stepspot.aws.errors``; this module words it for checkpoints.

Standard library and botocore only: the in-container agent imports this.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

from stepspot.aws.errors import ErrorKind, error_code, error_kind
from stepspot.errors import (
    AwsAccessDeniedError,
    AwsResourceNotFoundError,
    CheckpointStoreUnavailable,
    StepspotError,
)


def translate(exc: Exception, resource: str, action: str, fix: str) -> StepspotError:
    """Map a botocore exception raised by ``action`` on ``resource`` to the stepspot error a caller handles.

    ``resource`` reads like "checkpoint bucket 'b'"; ``fix`` says what to do when it is missing.
    """
    what = f"{action} in {resource}"
    if isinstance(exc, ClientError):
        code, kind = error_code(exc), error_kind(exc)
        if kind is ErrorKind.NOT_FOUND:
            return AwsResourceNotFoundError(f"{resource[0].upper()}{resource[1:]} does not exist: {fix}.", code=code)
        if kind in (ErrorKind.DENIED, ErrorKind.EXPIRED, ErrorKind.REJECTED):
            return AwsAccessDeniedError(
                f"Access to {resource} was denied ({code}) while {action.lower()}: "
                "give the job or function role access to it.",
                code=code,
            )
        if kind is ErrorKind.THROTTLED:
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
