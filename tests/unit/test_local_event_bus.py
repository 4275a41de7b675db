"""Local mode's EventBridge: every event reaches its Lambdas before the run is summarised, or the summary
says which did not (stepspot.local.events, stepspot.local.summary)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from stepspot.local.events import EventBus
from stepspot.local.summary import monitoring_warnings

JOB = "Batch Job State Change"
NOTICE = "EC2 Spot Instance Interruption Warning"


def test_summary_counts_come_after_every_delayed_and_duplicated_delivery():
    # Given deliveries that EventBridge duplicates and delays (--aws-faults)
    seen: list[tuple[str, str]] = []
    bus = EventBus(
        lambda function, event: seen.append((function, event["id"])) or {"outcome": "applied"}, lambda _: (2, 0.05)
    )
    bus.start()
    for _ in range(3):
        bus.publish(JOB, {"jobId": "j", "status": "RUNNING"})
    # When the bus closes (the engine does before it summarises)
    bus.close(timeout=5.0)
    # Then every copy was delivered by then, and nothing is left to report
    assert len(seen) == 6 and bus.delivered == {"workflow_monitor": 6}
    assert bus.published == {JOB: 3} and not bus.undelivered
    assert bus.outcomes == {"workflow_monitor": {"applied": 6}}


def test_summary_names_the_events_a_stuck_handler_left_undelivered():
    # Given a monitoring Lambda that hangs on its first event, with two more events behind it
    release = threading.Event()

    def deliver(function: str, event: dict[str, Any]) -> dict[str, Any]:
        release.wait(5.0)
        return {"outcome": "recorded"}

    bus = EventBus(deliver)
    bus.start()
    for _ in range(3):
        bus.publish(NOTICE, {"instance-id": "i-0"})
    # When the run ends before it returns, and a job still publishes after that
    bus.close(timeout=0.2)
    bus.publish(JOB, {"jobId": "late", "status": "SUCCEEDED"})
    release.set()
    # Then the summary counts what never reached the Lambdas, and says so in words
    assert bus.undelivered == {NOTICE: 3, JOB: 1}
    assert monitoring_warnings(dict(bus.undelivered), {"interruption_handler": 2}) == [
        "1 Batch Job State Change event(s) had not reached the monitoring Lambdas when the run ended",
        "3 EC2 Spot Instance Interruption Warning event(s) had not reached the monitoring Lambdas when the run ended",
        "the interruption_handler failed on 2 event(s), retries included: see lambdas.log in the run files",
    ]


def test_summary_counts_a_handler_failure_once_after_eventbridge_retries():
    calls: list[str] = []

    def deliver(function: str, event: dict[str, Any]) -> Any:
        calls.append(function)
        raise RuntimeError("boom")

    bus = EventBus(deliver)
    bus.start()
    bus.publish(NOTICE, {"instance-id": "i-0"})
    bus.close(timeout=5.0)
    assert calls == ["interruption_handler"] * 3  # the first try and EventBridge's two retries
    assert bus.failed == {"interruption_handler": 1} and not bus.delivered and not bus.undelivered


def test_only_what_the_deployments_rules_match_reaches_a_lambda():
    # Given the bus and an execution that goes RUNNING, then SUCCEEDED
    seen: list[str] = []
    bus = EventBus(lambda function, event: seen.append(event["detail"]["status"]) or {"outcome": "applied"})
    bus.start()
    execution = "Step Functions Execution Status Change"
    bus.publish(execution, {"status": "RUNNING"})
    bus.publish(execution, {"status": "SUCCEEDED"})
    bus.close(timeout=5.0)
    # Then the monitor sees only the status the "execution-status" rule matches, as on AWS
    assert seen == ["SUCCEEDED"]
    assert bus.published == {execution: 1} and bus.unmatched == {execution: 1}


@pytest.mark.parametrize(
    ("rule", "routed"),
    [
        ("execution-status", "ROUTED_EXECUTION_STATUSES"),
        ("task-execution-status", "ROUTED_TASK_EXECUTION_STATUSES"),
        ("batch-job-state", "ROUTED_JOB_STATUSES"),
    ],
)
def test_the_routed_statuses_are_the_terraform_rules(rule: str, routed: str):
    import re
    from pathlib import Path

    from stepspot.local import events

    rules = (Path(__file__).parents[2] / "terraform/modules/monitoring/main.tf").read_text()
    pattern = re.search(rf"\n    {rule} = {{.*?status\s*=\s*\[([^\]]*)\]", rules, re.S)
    assert pattern is not None, f"the {rule} rule of the monitoring module has no status filter"
    assert set(re.findall(r'"([A-Z_]+)"', pattern.group(1))) == getattr(events, routed)


def test_a_task_execution_reaches_the_monitor_only_when_it_ended_abnormally():
    import json

    from stepspot.events import SFN_EXECUTION_STATUS_CHANGE
    from stepspot.local.events import matched_by_a_rule

    task = json.dumps({"workflow_id": "wf", "task_id": "t", "plan_uri": "s3://b/p"})
    workflow = json.dumps({"workflow_id": "wf", "definition_uri": "s3://b/d"})
    routed = [
        (kind, status)
        for kind, payload in (("task", task), ("workflow", workflow))
        for status in ("RUNNING", "SUCCEEDED", "ABORTED")
        if matched_by_a_rule(SFN_EXECUTION_STATUS_CHANGE, {"status": status, "input": payload})
    ]
    assert routed == [("task", "ABORTED"), ("workflow", "SUCCEEDED"), ("workflow", "ABORTED")]


def test_job_statuses_no_rule_matches_reach_no_lambda():
    from stepspot.local.events import matched_by_a_rule

    seen = [
        s
        for s in ("RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED")
        if matched_by_a_rule("Batch Job State Change", {"status": s})
    ]
    assert seen == ["RUNNABLE", "RUNNING", "SUCCEEDED"]
