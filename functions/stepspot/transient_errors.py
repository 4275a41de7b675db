"""Error names that mean "the call failed, not the task": defined here once.

The state machines' Retry blocks get theirs from these lists (``stepspot.asl`` passes them to the
templates), and the failure classifier (``stepspot.failures``) counts a Catch with one of these names as
``infra_transient``. AWS API error codes (throttling, conflicts) are classified in ``stepspot.aws.errors``.
Pure: no imports beyond stepspot.errors.
"""

from __future__ import annotations

from typing import Final

from stepspot.errors import AwsThrottledError

# A stepspot Lambda that ran past its own timeout (every step is idempotent, so it is run again): Step
# Functions reports an unhandled function error without an error type as Lambda.Unknown ("Handle Lambda
# service exceptions": function timeouts and out-of-memory), current runtimes type a timeout
# Sandbox.Timedout.
LAMBDA_FUNCTION_TIMEOUT_ERRORS: Final = ("Lambda.Unknown", "Sandbox.Timedout")
# Lambda errors worth retrying in every Lambda state: AWS's recommended set for Lambda tasks, throttling
# and the function's own timeout.
LAMBDA_TRANSIENT_ERRORS: Final = (
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    *LAMBDA_FUNCTION_TIMEOUT_ERRORS,
)
# A Lambda task state that ran past its TimeoutSeconds. Not retried where the timeout is the state's own
# deadline (StartWorkflow: the workflow's time is up, its Catch aborts it).
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
