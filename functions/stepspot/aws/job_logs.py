"""CloudWatch Logs of a task's AWS Batch job: find the attempt's log stream, read its events."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from stepspot.aws.cli_errors import aws_call
from stepspot.errors import FatalError


@dataclass(frozen=True)
class LogLine:
    timestamp_ms: int
    message: str


class JobLogs:
    """Batch job -> log stream (per attempt) -> log events in the environment's Batch log group."""

    def __init__(self, batch_client: Any, logs_client: Any, log_group: str) -> None:
        self._batch = batch_client
        self._logs = logs_client
        self._log_group = log_group

    def log_stream(self, job_id: str, attempt: int | None = None) -> str:
        """The log stream of the given attempt (1-based), or of the latest one."""
        with aws_call("describe the Batch job"):
            jobs = self._batch.describe_jobs(jobs=[job_id]).get("jobs", [])
        if not jobs:
            raise FatalError(f"AWS Batch no longer knows job {job_id} (Batch keeps jobs about 7 days).")
        job = jobs[0]
        attempts = job.get("attempts") or []
        if attempt is not None:
            if not 1 <= attempt <= len(attempts):
                raise FatalError(f"Job {job_id} has {len(attempts)} attempt(s); --attempt {attempt} does not exist.")
            stream = attempts[attempt - 1].get("container", {}).get("logStreamName")
        else:
            stream = job.get("container", {}).get("logStreamName")
            if not stream and attempts:
                stream = attempts[-1].get("container", {}).get("logStreamName")
        if not stream:
            raise FatalError(f"Job {job_id} has no log stream yet (status {job.get('status', 'unknown')}).")
        return str(stream)

    def events(self, stream: str, start_from_head: bool, limit: int | None) -> Iterator[LogLine]:
        """Log lines of ``stream`` in time order (the last ``limit`` lines when not from the head)."""
        params: dict[str, Any] = {
            "logGroupName": self._log_group,
            "logStreamName": stream,
            "startFromHead": start_from_head,
        }
        if limit is not None:
            params["limit"] = limit
        with aws_call("read the job's logs"):
            response = self._logs.get_log_events(**params)
        for event in response.get("events", []):
            yield LogLine(int(event["timestamp"]), str(event["message"]))

    def follow_page(self, stream: str, next_token: str | None) -> tuple[list[LogLine], str | None]:
        """One page of new lines after ``next_token`` (for `logs --follow`)."""
        params: dict[str, Any] = {"logGroupName": self._log_group, "logStreamName": stream, "startFromHead": True}
        if next_token:
            params["nextToken"] = next_token
        with aws_call("read the job's logs"):
            response = self._logs.get_log_events(**params)
        lines = [LogLine(int(e["timestamp"]), str(e["message"])) for e in response.get("events", [])]
        return lines, response.get("nextForwardToken")
