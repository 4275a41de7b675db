"""The Batch job state change events local mode publishes are those AWS Batch sends."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from stepspot.local.batch import TERMINAL, LocalBatch
from stepspot.local.faults import Faults
from stepspot.local.runner import Runner


class RecordingBus:
    def __init__(self) -> None:
        self.statuses: list[str] = []

    def publish(self, detail_type: str, detail: dict[str, Any], resources: list[str] | None = None) -> None:
        if detail_type == "Batch Job State Change":
            self.statuses.append(detail["status"])


def test_no_event_for_the_submission_then_one_per_state_change(tmp_path: Path) -> None:
    # Given local Batch publishing to a bus
    bus = RecordingBus()
    batch = LocalBatch(
        workdir=tmp_path,
        base_environment={"PATH": os.environ.get("PATH", "")},
        faults=Faults(),
        time_scale=3600,
        expected_seconds=lambda task_id: 1.0,
        spot_queues=set(),
        max_parallel_jobs=2,
        bus=bus,  # type: ignore[arg-type]
        # the job's command is not wrapped, so the runner bundle is never started
        runner=Runner(python=sys.executable, bundle=tmp_path / "unused.pyz", shiv_root=tmp_path / "shiv"),
    )
    batch.start()
    try:
        # When a job runs to its end
        job_id = batch.submit_job(
            jobName="j",
            jobQueue="arn:aws:batch:us-east-1:123456789012:job-queue/od",
            jobDefinition="d",
            containerOverrides={"command": [sys.executable, "-c", "pass"]},
        )["jobId"]
        deadline = time.monotonic() + 30
        while batch.jobs[job_id].status not in TERMINAL and time.monotonic() < deadline:
            batch.describe_jobs([job_id])
    finally:
        batch.close()
    # Then the bus heard every change of state but not the submission itself ("events aren't created
    # for the initial job submission", AWS Batch user guide)
    assert bus.statuses == ["RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"]
