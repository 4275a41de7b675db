"""A stand-in handler module for tests/integration/test_lambda_processes.py (run in a function's process)."""

from __future__ import annotations

import os
from typing import Any

import boto3

from stepspot.handlers._cache import cold_start


@cold_start
def runtime() -> dict[str, Any]:
    """The stand-in's cold-start state; with STAND_IN_RUNTIME=calls_aws building it makes an AWS call."""
    if os.environ.get("STAND_IN_RUNTIME") == "calls_aws":
        boto3.client("s3").list_buckets()
    return {"pid": os.getpid()}


def lambda_handler(event: dict[str, Any], context: Any) -> Any:
    action = event["action"]
    if action == "runtime_built":  # was the cold-start state built before this invocation, and by whom
        built_before = runtime.cache_info().currsize == 1
        return {"built_before": built_before, "by": runtime()["pid"]}
    if action == "fail":
        raise LookupError(f"no such thing: {event['what']}")
    if action == "buckets":  # an AWS call: answered by the engine's moto, not this process's copy of it
        return sorted(bucket["Name"] for bucket in boto3.client("s3").list_buckets()["Buckets"])
    if action == "whoami":
        return {"pid": os.getpid(), "function": context.function_name, "event": event}
    raise ValueError(f"unknown action {action!r}")
