"""Operator notices: one-line subjects, the facts an on-call engineer needs, a working console link."""

from __future__ import annotations

import json
from pathlib import Path

from stepspot.events import ExecutionStatusDetail
from stepspot.notifications import (
    AffectedTask,
    execution_console_url,
    interruption_notice,
    task_execution_notice,
    workflow_notice,
)

EVENTS = Path(__file__).resolve().parents[1] / "events"


def failed_execution() -> ExecutionStatusDetail:
    raw = json.loads((EVENTS / "sfn-execution-status-change-failed.json").read_text())["detail"]
    return ExecutionStatusDetail.model_validate(raw)


def test_console_url_points_at_the_execution():
    arn = "arn:aws:states:eu-west-1:123456789012:execution:wf:run/1"
    assert execution_console_url(arn, "eu-west-1") == (
        "https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/"
        "arn:aws:states:eu-west-1:123456789012:execution:wf:run%2F1"
    )


def test_failure_notice_without_failed_tasks_still_carries_error_and_cause():
    notice = workflow_notice(
        failed_execution(),
        workflow_id="md-2026-11-21",
        environment="dev",
        region="us-east-1",
        workflow={"name": "md", "total_tasks": 2, "succeeded": 1, "failed": 0},
        failed_tasks=[],
    )
    assert notice.subject == "stepspot [dev] workflow md FAILED"
    assert "Error:     TaskFailed" in notice.message
    assert "Duration:  3h 12m 09s" in notice.message
    assert "redrive the execution" in notice.message
    assert "failure_class" not in notice.attributes


def test_long_causes_are_clipped():
    detail = failed_execution().model_copy(update={"cause": "x" * 5000})
    notice = workflow_notice(
        detail, workflow_id="w", environment="dev", region="us-east-1", workflow=None, failed_tasks=[]
    )
    cause_line = next(line for line in notice.message.splitlines() if line.startswith("Cause:"))
    assert len(cause_line) < 1600 and cause_line.endswith("...")


def test_task_execution_notice_names_the_task():
    notice = task_execution_notice(
        failed_execution(), workflow_id="w", task_id="analysis", environment="prod", region="us-east-1"
    )
    assert notice.subject == "stepspot [prod] task analysis of workflow w FAILED"
    assert notice.attributes == {
        "environment": "prod",
        "event": "task_execution",
        "status": "FAILED",
        "workflow_id": "w",
        "task_id": "analysis",
    }


def test_interruption_notice_counts_tasks_in_the_subject():
    tasks = [AffectedTask("w", "a", "job-a"), AffectedTask("w", "b", "job-b")]
    notice = interruption_notice(
        kind="spot_interruption_warning",
        instance_id="i-0123456789abcdef0",
        instance_action="stop",
        instance_type="c6i.4xlarge",
        availability_zone="eu-west-1a",
        compute_environment="spot-ce",
        environment="prod",
        tasks=tasks,
    )
    assert notice.subject == "stepspot [prod] Spot interruption: i-0123456789abcdef0 (c6i.4xlarge, eu-west-1a), 2 tasks"
    assert notice.message.startswith("EC2 will stop Spot instance i-0123456789abcdef0")
    assert "  - b of workflow w (Batch job job-b)" in notice.message
