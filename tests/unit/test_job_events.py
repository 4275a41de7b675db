"""Pure meaning of Batch and Step Functions status events: ordering, queues, resources, savings, targets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from stepspot.estimate import default_prices, task_cost
from stepspot.events import BatchJobDetail, ExecutionStatusDetail
from stepspot.job_events import (
    QueueKind,
    estimated_spot_savings_usd,
    execution_status_version,
    execution_target,
    job_resources,
    job_status_version,
    parent_job_id,
    queue_kind,
    run_seconds,
    spot_reclaimed_instance,
    task_ids_from_environment,
)

EVENTS = Path(__file__).resolve().parents[1] / "events"


def detail(name: str, **changes: Any) -> BatchJobDetail:
    raw = json.loads((EVENTS / name).read_text())["detail"]
    raw.update(changes)
    return BatchJobDetail.model_validate(raw)


def execution(**changes: Any) -> ExecutionStatusDetail:
    raw = json.loads((EVENTS / "sfn-execution-status-change-failed.json").read_text())["detail"]
    raw.update(changes)
    return ExecutionStatusDetail.model_validate(raw)


RECLAIM = "batch-job-state-change-failed-spot-reclaim.json"
ATTEMPT = {"startedAt": 1_000, "stoppedAt": 2_000, "statusReason": "x"}


def test_job_versions_sort_like_the_real_sequence_of_states():
    # a job's own states, a Batch retry (one more finished attempt), then the task's next job
    sequence = [
        detail(RECLAIM, status="RUNNABLE", attempts=[]),
        detail(RECLAIM, status="STARTING", attempts=[]),
        detail(RECLAIM, status="RUNNING", attempts=[]),
        detail(RECLAIM, status="RUNNABLE", attempts=[ATTEMPT]),
        detail(RECLAIM, status="RUNNING", attempts=[ATTEMPT]),
        detail(RECLAIM, status="FAILED", attempts=[ATTEMPT, ATTEMPT]),
        detail(RECLAIM, status="SUBMITTED", attempts=[], createdAt=1763730420001),
    ]
    versions = [job_status_version(d) for d in sequence]
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)


def test_execution_versions_let_a_redrive_win_over_the_old_failure():
    failed = execution(status="FAILED", redriveCount=0)
    running = execution(status="RUNNING", redriveCount=0)
    redriven = execution(status="RUNNING", redriveCount=1)
    assert execution_status_version(running) < execution_status_version(failed) < execution_status_version(redriven)


@pytest.mark.parametrize(
    ("queue", "kind"),
    [
        ("arn:aws:batch:us-east-1:1:job-queue/spot-q", QueueKind.SPOT),
        ("arn:aws:batch:us-east-1:1:job-queue/od-q", QueueKind.ON_DEMAND),
        ("arn:aws:batch:us-east-1:1:job-queue/other", QueueKind.OTHER),
    ],
)
def test_queue_kind_matches_names_or_arns(queue: str, kind: QueueKind):
    assert queue_kind(queue, ("spot-q", None), ("arn:aws:batch:us-east-1:1:job-queue/od-q", None)) is kind


@pytest.mark.parametrize(
    ("queue", "kind"),
    [
        ("arn:aws:batch:us-east-1:1:job-queue/gpu-spot-q", QueueKind.SPOT),
        ("gpu-od-q", QueueKind.ON_DEMAND),
        ("spot-q", QueueKind.SPOT),
    ],
)
def test_queue_kind_knows_the_gpu_pair(queue: str, kind: QueueKind):
    assert queue_kind(queue, ("spot-q", "gpu-spot-q"), ("od-q", "arn:aws:batch:us-east-1:1:job-queue/gpu-od-q")) is kind


def test_task_ids_need_both_variables():
    assert task_ids_from_environment({"STEPSPOT_WORKFLOW_ID": "w", "STEPSPOT_TASK_ID": "t"}) is not None
    assert task_ids_from_environment({"STEPSPOT_WORKFLOW_ID": "w"}) is None
    assert task_ids_from_environment({"STEPSPOT_WORKFLOW_ID": " ", "STEPSPOT_TASK_ID": "t"}) is None


def test_parent_job_id_of_nodes_and_array_children():
    assert parent_job_id("4c7599ae-0a82#3") == "4c7599ae-0a82"
    assert parent_job_id("4c7599ae-0a82:17") == "4c7599ae-0a82"
    assert parent_job_id("4c7599ae-0a82") == "4c7599ae-0a82"


def test_spot_reclaim_is_recognised_from_the_status_reason():
    assert spot_reclaimed_instance(detail(RECLAIM)) == "i-1234567890abcdef0"
    assert (
        spot_reclaimed_instance(detail(RECLAIM, statusReason="Essential container in task exited", attempts=[])) is None
    )


def test_resources_and_run_time_come_from_the_event():
    reclaimed = detail(RECLAIM)
    assert job_resources(reclaimed).vcpus == 8
    assert job_resources(reclaimed).memory_mib == 16384
    assert run_seconds(reclaimed) == 3330.0
    newer = detail("batch-job-state-change-succeeded-ecs-properties.json")
    assert (job_resources(newer).vcpus, job_resources(newer).memory_mib) == (2, 2048)
    assert run_seconds(newer) == pytest.approx(300.206)


def test_multi_node_jobs_are_priced_per_node():
    mnp = detail(
        RECLAIM,
        container=None,
        nodeProperties={
            "numNodes": 4,
            "mainNode": 0,
            "nodeRangeProperties": [
                {
                    "targetNodes": "0:",
                    "container": {
                        "resourceRequirements": [{"type": "VCPU", "value": "36"}, {"type": "MEMORY", "value": "73728"}]
                    },
                }
            ],
        },
    )
    assert job_resources(mnp).nodes == 4
    assert job_resources(mnp).vcpus == 36


def test_savings_are_on_demand_minus_spot_for_the_compute_used():
    prices = default_prices()
    reclaimed = detail(RECLAIM)
    expected = task_cost(3330.0, 8, 16384, 0, 1, use_spot=True, prices=prices)
    assert estimated_spot_savings_usd(reclaimed, prices) == pytest.approx(expected.on_demand_usd - expected.planned_usd)
    assert estimated_spot_savings_usd(detail(RECLAIM, attempts=[], startedAt=None), prices) == 0.0


def test_execution_target_from_input_or_name():
    assert execution_target(execution()).kind == "workflow"
    task = execution_target(execution(input=json.dumps({"workflow_id": "w", "task_id": "t"})))
    assert (task.kind, task.workflow_id, task.task_id) == ("task", "w", "t")
    unnamed = execution_target(execution(input=None, name="wf-by-name"))
    assert (unnamed.kind, unnamed.workflow_id) == ("workflow", "wf-by-name")
