"""Translation of botocore failures met by the CLI's adapters into stepspot errors.

The CLI runs on a person's machine, where the usual failures are credentials (none, expired, wrong
account) rather than throttling; each becomes one sentence that says what to run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    TokenRetrievalError,
)

from stepspot.aws.errors import ErrorKind, error_code, error_kind
from stepspot.errors import (
    AwsAccessDeniedError,
    AwsCredentialsError,
    AwsResourceNotFoundError,
    AwsThrottledError,
    ConfigurationError,
    FatalError,
)

CREDENTIALS_HINT = (
    "run `aws sso login` (or `aws configure`), or set AWS_PROFILE / AWS_ACCESS_KEY_ID for the account "
    "that holds the environment"
)


@contextmanager
def aws_call(action: str) -> Iterator[None]:
    """Run AWS calls, re-raising their failures as stepspot errors naming ``action`` and the fix."""
    try:
        yield
    except (NoCredentialsError, PartialCredentialsError, TokenRetrievalError) as exc:
        raise AwsCredentialsError(f"No usable AWS credentials to {action}: {CREDENTIALS_HINT}.") from exc
    except NoRegionError as exc:
        raise ConfigurationError(
            f"No AWS region to {action}: set AWS_REGION or deploy the environment (its `region` output)."
        ) from exc
    except EndpointConnectionError as exc:
        raise ConfigurationError(f"Cannot reach AWS to {action} ({exc}): check the network and AWS_REGION.") from exc
    except ClientError as exc:
        code, kind = error_code(exc), error_kind(exc)
        message = exc.response.get("Error", {}).get("Message", "")
        if kind is ErrorKind.EXPIRED:
            raise AwsCredentialsError(f"The AWS credentials have expired ({action}): {CREDENTIALS_HINT}.") from exc
        if kind is ErrorKind.REJECTED:
            raise AwsCredentialsError(f"AWS rejected the credentials ({action}): {CREDENTIALS_HINT}.") from exc
        if kind is ErrorKind.DENIED:
            raise AwsAccessDeniedError(
                f"Access denied to {action} ({message}): use a role allowed to operate this environment."
            ) from exc
        if kind is ErrorKind.NOT_FOUND:
            raise AwsResourceNotFoundError(
                f"Cannot {action}: {message or code}. Is the environment deployed (`make deploy ENV=...`)?"
            ) from exc
        if kind is ErrorKind.THROTTLED:
            raise AwsThrottledError(f"AWS throttled the call to {action}: try again in a moment.") from exc
        raise FatalError(f"AWS refused to {action}: {code}: {message}") from exc
