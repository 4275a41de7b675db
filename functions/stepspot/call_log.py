"""Records every AWS API call with the principal that makes it, for the IAM evaluation of the tests.

Off unless ``STEPSPOT_CALL_LOG`` names a file: then each call made through botocore appends one JSON
line (principal, service, operation, parameters, the resource names of the environment) to it. The
test suite sets the variable (tests/iam) and evaluates the lines against the IAM policies Terraform
defines; on AWS it is never set and nothing is installed.

The principal is a context variable: ``lambda:<key>`` while a Lambda handler runs (the local Lambda
invoker and the tests set it), ``job`` in the agent's process (the Batch job role). Calls made with no
principal (test setup, the local engine playing the user) are written too, marked ``null``, and are
not evaluated.

Part of the agent bundle (the agent installs it): Python 3.9 syntax at runtime, standard library and
botocore only.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import json
import os
import threading
from collections.abc import Iterator
from typing import Any

CALL_LOG_ENV = "STEPSPOT_CALL_LOG"
# The environment variables naming the deployment's resources: the evaluation maps the names a test
# used to the names Terraform's policies are written for.
RESOURCE_ENV = (
    "STEPSPOT_BUCKET",
    "STEPSPOT_STATE_TABLE",
    "STEPSPOT_CHECKPOINT_TABLE",
    "STEPSPOT_TASK_STATE_MACHINE_ARN",
    "STEPSPOT_SPOT_QUEUE_ARN",
    "STEPSPOT_ONDEMAND_QUEUE_ARN",
    "STEPSPOT_MNP_QUEUE_ARN",
    "STEPSPOT_SPOT_COMPUTE_ENV",
    "STEPSPOT_ONDEMAND_COMPUTE_ENV",
    "STEPSPOT_MNP_COMPUTE_ENV",
    "STEPSPOT_JOB_DEFINITION_ARN",
    "STEPSPOT_MNP_JOB_DEFINITION_ARN",
    "STEPSPOT_SNS_TOPIC_ARN",
    "STEPSPOT_SCHEDULER_FUNCTION_ARN",
)
_MAX_STRING = 2048

principal: contextvars.ContextVar[str | None] = contextvars.ContextVar("stepspot_principal", default=None)
_default_principal: str | None = None
_installed = False
_lock = threading.Lock()


def _renew_lock() -> None:
    """In a forked child (local mode's Lambda processes): another thread may have held the lock at the fork."""
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_renew_lock)


@contextlib.contextmanager
def acting_as(name: str) -> Iterator[None]:
    """Attribute the AWS calls made inside the block to the principal ``name``."""
    token = principal.set(name)
    try:
        yield
    finally:
        principal.reset(token)


def install_from_env(default_principal: str | None = None) -> bool:
    """Start recording if ``STEPSPOT_CALL_LOG`` is set (idempotent). Returns whether it is installed.

    ``default_principal`` names the principal of every call of this process that has none in its
    context: the agent's process runs as the job role, all of its threads included."""
    if not os.environ.get(CALL_LOG_ENV):
        return _installed
    if default_principal is not None:
        set_default_principal(default_principal)
    install()
    return True


def set_default_principal(name: str | None) -> None:
    global _default_principal
    _default_principal = name


def install() -> None:
    """Hook every botocore client created from now on (boto3 sessions copy ``BUILTIN_HANDLERS``)."""
    global _installed
    with _lock:
        if _installed:
            return
        import botocore.handlers

        botocore.handlers.BUILTIN_HANDLERS.append(("before-parameter-build", _record))
        import boto3

        if boto3.DEFAULT_SESSION is not None:  # created before: its future clients are hooked too
            boto3.DEFAULT_SESSION._session.register("before-parameter-build", _record)
        _propagate_context_to_thread_pools()
        _installed = True


def _propagate_context_to_thread_pools() -> None:
    """Work a handler hands to a thread pool (parallel checkpoint transfers) is still its own."""
    original = concurrent.futures.ThreadPoolExecutor.submit

    def submit(self: Any, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        return original(self, contextvars.copy_context().run, fn, *args, **kwargs)

    concurrent.futures.ThreadPoolExecutor.submit = submit  # type: ignore[method-assign]


def _record(**kwargs: Any) -> None:
    """botocore's before-parameter-build event: ``params`` (the caller's arguments) and ``model``."""
    path = os.environ.get(CALL_LOG_ENV)
    if not path:
        return
    params, model = kwargs["params"], kwargs["model"]
    entry = {
        "principal": principal.get() or _default_principal,
        "service": model.service_model.service_name,
        "operation": model.name,
        "params": _slim(params),
        "names": {name: os.environ.get(name) for name in RESOURCE_ENV},
    }
    line = json.dumps(entry, default=str) + "\n"
    with _lock, open(path, "a", encoding="utf-8") as handle:  # one write per line: safe across processes
        handle.write(line)


def _slim(value: Any) -> Any:
    """The parameters without payloads: bodies and long strings say nothing about permissions."""
    if isinstance(value, dict):
        return {key: _slim(item) for key, item in value.items() if key not in ("Body", "Payload")}
    if isinstance(value, (list, tuple)):
        return [_slim(item) for item in value]
    if isinstance(value, str):
        return value[:_MAX_STRING]
    if isinstance(value, (bytes, bytearray)):
        return "<bytes>"
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return str(value)[:_MAX_STRING]
