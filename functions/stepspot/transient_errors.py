"""Error names that mean "the call failed, not the task": defined here once.

The state machines' Retry blocks get theirs from these lists (``stepspot.asl`` passes them to the
templates), and the failure classifier (``stepspot.failures``) counts a Catch with one of these names as
``infra_transient``. AWS API error codes (throttling, conflicts) are classified in ``stepspot.aws.errors``.
Pure: no imports beyond stepspot.errors.
"""

from __future__ import annotations

from typing import Final

from stepspot.errors import AwsThrottledError

# Lambda service errors worth retrying: AWS's recommended set for Lambda tasks, and throttling.
LAMBDA_TRANSIENT_ERRORS: Final = (
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
)
# A Lambda task that timed out. Not retried where the timeout is the state's own deadline
# (StartWorkflow: the workflow's time is up, its Catch aborts it).
LAMBDA_TIMEOUT_ERRORS: Final = ("States.Timeout",)
# Errors of a failed batch:SubmitJob call itself (throttling, service errors): retried in place.
BATCH_API_ERRORS: Final = ("Batch.AWSBatchException", "Batch.ServerException", "Batch.TooManyRequestsException")
# What a task's Catch may carry when the attempt failed for a reason outside the program: the retried
# calls above once their retries ran out, Batch's throttling as a client error, a Lambda that gave up
# throttled, a task that stopped heart-beating.
CALL_FAILURE_ERRORS: Final = frozenset(
    {
        *BATCH_API_ERRORS,
        "Batch.ClientException.Throttling",
        *LAMBDA_TRANSIENT_ERRORS,
        AwsThrottledError.__name__,
        "States.HeartbeatTimeout",
    }
)
