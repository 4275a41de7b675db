"""The one error hierarchy of stepspot.

Exception class names are part of the state-machine contract: when a Lambda raises, its exception type
name becomes the ASL error name that ``Retry`` and ``Catch`` match. Renaming a class here is a breaking
change to ``templates/*.asl.json.j2``.

``RetryableError`` subclasses are worth retrying (the ASL retries them with backoff);
``FatalError`` subclasses are not (the ASL catches them and fails or records the task).
Translate botocore ``ClientError`` into these at the adapter boundary with ``raise ... from exc``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class StepspotError(Exception):
    """Indicates a failure that stepspot understands and can explain to a user."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error": type(self).__name__, "message": self.message, **self.details}


class RetryableError(StepspotError):
    """Indicates a transient failure: the same call may succeed if tried again later."""


class FatalError(StepspotError):
    """Indicates a failure that retrying cannot fix: the input or the configuration must change."""


class ConfigurationError(FatalError):
    """Indicates that a required setting (environment variable, Terraform output, flag) is missing or bad."""


class AwsThrottledError(RetryableError):
    """Indicates that AWS throttled or briefly failed a call (ThrottlingException, 5xx)."""


class StateWriteContendedError(RetryableError):
    """Indicates that DynamoDB kept cancelling a state write (transaction conflicts or throttling): the
    write did not happen, and retrying the whole step applies it once."""


class AwsResourceNotFoundError(FatalError):
    """Indicates that an AWS resource stepspot was told to use does not exist (bucket, table, queue)."""


class AwsAccessDeniedError(FatalError):
    """Indicates that the caller's credentials or role lack a permission stepspot needs."""


@dataclass(frozen=True)
class Problem:
    """One finding about a workflow definition: where it is and a sentence that says what to do."""

    location: str
    message: str
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"location": self.location, "message": self.message, "severity": self.severity}


class WorkflowValidationError(FatalError):
    """Indicates that a workflow definition is invalid; ``problems`` lists every error found."""

    def __init__(self, problems: Sequence[Problem], source: str = "workflow definition") -> None:
        self.problems = [p for p in problems if p.severity == "error"]
        count = len(self.problems)
        summary = f"{source} is invalid ({count} problem{'s' if count != 1 else ''}): " + "; ".join(
            str(p) for p in self.problems[:20]
        )
        if count > 20:
            summary += f"; ... and {count - 20} more"
        super().__init__(summary, source=source, problems=[p.to_dict() for p in self.problems])


class InvalidEventError(FatalError):
    """Indicates that a Lambda received an event of the wrong shape (a wiring bug, not user input)."""

    @classmethod
    def from_validation(cls, exc: Any, what: str) -> InvalidEventError:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or '$'}: {e['msg']}" for e in exc.errors(include_url=False)]
        return cls(f"{what} is malformed: " + "; ".join(problems), problems=problems)


class MalformedEventError(InvalidEventError):
    """Indicates that an EventBridge event does not have the shape AWS documents for its type."""


class AwsCredentialsError(ConfigurationError):
    """Indicates that no usable AWS credentials were found (none configured, expired, or rejected)."""


class WorkflowNotFoundError(FatalError):
    """Indicates that no workflow or execution with the given id exists in the chosen environment."""


class TemplateParameterError(FatalError):
    """Indicates that a workflow template was asked for with an unknown, missing or invalid parameter."""


# ---- checkpoints ---------------------------------------------------------------------------------


class CheckpointStoreUnavailable(RetryableError):
    """Indicates that the checkpoint bucket or table could not be reached right now (throttling, 5xx, network)."""


class CheckpointCorruptError(FatalError):
    """Indicates that a requested checkpoint's manifest or files do not match their recorded sha256 or size."""


class CheckpointNotFoundError(FatalError):
    """Indicates that a requested checkpoint sequence does not exist or was never completed."""


class CheckpointRequestInvalid(InvalidEventError):
    """Indicates that a checkpoint manager event is malformed (unknown action, missing or unsafe ids)."""


class UnknownTaskError(FatalError):
    """Indicates that an event or a flag names a task id the workflow does not have."""


class WorkflowStateMissingError(FatalError):
    """Indicates that the state table has no item for a workflow or task the event refers to."""
