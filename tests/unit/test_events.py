"""The typed EventBridge models accept AWS's documented samples and reject other shapes with a clear sentence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stepspot.errors import InvalidEventError, MalformedEventError
from stepspot.events import (
    BatchJobStateChange,
    ExecutionStatusChange,
    RebalanceRecommendation,
    SpotInterruptionWarning,
    parse_instance_notice,
    parse_monitor_event,
)

EVENTS = Path(__file__).resolve().parents[1] / "events"


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


def test_every_sample_payload_parses_into_its_model():
    expected = {
        "ec2-spot-instance-interruption-warning.json": SpotInterruptionWarning,
        "ec2-instance-rebalance-recommendation.json": RebalanceRecommendation,
        "batch-job-state-change-runnable.json": BatchJobStateChange,
        "batch-job-state-change-succeeded-ecs-properties.json": BatchJobStateChange,
        "batch-job-state-change-failed-spot-reclaim.json": BatchJobStateChange,
        "sfn-execution-status-change-running.json": ExecutionStatusChange,
        "sfn-execution-status-change-failed.json": ExecutionStatusChange,
        "sfn-execution-status-change-succeeded.json": ExecutionStatusChange,
    }
    assert sorted(p.name for p in EVENTS.glob("*.json")) == sorted(expected)
    for name, model in expected.items():
        raw = sample(name)
        parsed = parse_instance_notice(raw) if raw["source"] == "aws.ec2" else parse_monitor_event(raw)
        assert isinstance(parsed, model), name
        assert parsed.id == raw["id"]


def test_spot_warning_fields():
    notice = parse_instance_notice(sample("ec2-spot-instance-interruption-warning.json"))
    assert isinstance(notice, SpotInterruptionWarning)
    assert (notice.instance_id, notice.detail.instance_action, notice.notice_kind) == (
        "i-1234567890abcdef0",
        "terminate",
        "spot_interruption_warning",
    )
    assert notice.time.isoformat() == "2026-11-21T14:05:03+00:00"


def test_batch_detail_exposes_environment_from_either_shape():
    classic = parse_monitor_event(sample("batch-job-state-change-failed-spot-reclaim.json"))
    newer = parse_monitor_event(sample("batch-job-state-change-succeeded-ecs-properties.json"))
    assert isinstance(classic, BatchJobStateChange) and isinstance(newer, BatchJobStateChange)
    assert classic.detail.environment()["STEPSPOT_TASK_ID"] == "production"
    assert newer.detail.environment()["STEPSPOT_TASK_ID"] == "equilibrate"
    assert newer.detail.attempts[0].task_properties[0].task_arn.endswith("/a6611972e03e4d728498be97309e12d9")


def test_execution_input_is_decoded_and_missing_input_is_empty():
    failed = parse_monitor_event(sample("sfn-execution-status-change-failed.json"))
    assert isinstance(failed, ExecutionStatusChange)
    assert failed.detail.input_object()["workflow_id"] == "md-2026-11-21"
    assert (failed.detail.error, failed.detail.redrive_count) == ("TaskFailed", 0)
    raw = sample("sfn-execution-status-change-running.json")
    raw["detail"]["input"] = None
    running = parse_monitor_event(raw)
    assert isinstance(running, ExecutionStatusChange)
    assert running.detail.input_object() == {}


def test_unknown_fields_are_ignored():
    raw = sample("ec2-spot-instance-interruption-warning.json")
    raw["detail"]["a-field-aws-adds-later"] = {"x": 1}
    raw["new-envelope-field"] = True
    assert parse_instance_notice(raw).instance_id == "i-1234567890abcdef0"


def test_a_monitor_event_sent_to_the_interruption_handler_is_rejected_by_name():
    with pytest.raises(MalformedEventError) as caught:
        parse_instance_notice(sample("batch-job-state-change-runnable.json"))
    assert str(caught.value) == (
        "Rejected event id='c8f9c4b5-76e5-d76a-f980-7011e206042b' detail-type='Batch Job State Change' "
        "source='aws.batch': expected an EventBridge 'EC2 Spot Instance Interruption Warning' event from aws.ec2 "
        "or 'EC2 Instance Rebalance Recommendation' event from aws.ec2 (detail-type 'Batch Job State Change' is "
        "not one this handler takes). Check the EventBridge rule that targets the interruption handler."
    )
    assert isinstance(caught.value, InvalidEventError)
    assert caught.value.details["event_id"] == "c8f9c4b5-76e5-d76a-f980-7011e206042b"


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda e: e["detail"].pop("jobId"), "detail.jobId: Field required"),
        (lambda e: e["detail"].update(createdAt="yesterday"), "detail.createdAt: Input should be a valid integer"),
        (lambda e: e.update(time="not a time"), "time: Input should be a valid datetime"),
        (lambda e: e.update(source="aws.ec2"), "source: Input should be 'aws.batch'"),
    ],
)
def test_batch_event_problems_are_named(mutate: Any, problem: str):
    raw = sample("batch-job-state-change-runnable.json")
    mutate(raw)
    with pytest.raises(
        MalformedEventError, match="Check the EventBridge rule that targets the workflow monitor"
    ) as caught:
        parse_monitor_event(raw)
    assert problem in str(caught.value)
