"""The workflow parser Lambda under moto: S3 plan, one DynamoDB item per task, idempotent retries."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from monitoring_world import emf_metrics
from moto import mock_aws

from stepspot.aws.plan_objects import read_whole_plan
from stepspot.aws.s3 import DocumentStore
from stepspot.errors import ConfigurationError, InvalidEventError, WorkflowValidationError
from stepspot.handlers import workflow_parser
from stepspot.local.resources import create_table

SEED = json.loads((Path(__file__).parents[1] / "unit" / "seed_sample_workflow.json").read_text())
BUCKET, TABLE = "stepspot-test-bucket", "stepspot-test-state"


class Context:
    function_name = "workflow-parser"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:workflow-parser"
    aws_request_id = "req-1"


@pytest.fixture
def aws(monkeypatch):
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        create_table(boto3.client("dynamodb"), TABLE)
        monkeypatch.setenv("STEPSPOT_BUCKET", BUCKET)
        monkeypatch.setenv("STEPSPOT_STATE_TABLE", TABLE)
        monkeypatch.setenv("STEPSPOT_ENVIRONMENT", "test")
        workflow_parser.runtime.cache_clear()
        yield
        workflow_parser.runtime.cache_clear()


def invoke(event):
    return workflow_parser.lambda_handler(event, Context())


def stored_plan(plan_uri):
    return read_whole_plan(DocumentStore(boto3.client("s3"), BUCKET), plan_uri)


def items(workflow_id):
    table = boto3.resource("dynamodb").Table(TABLE)
    return table.query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": f"WF#{workflow_id}"})[
        "Items"
    ]


def test_inline_definition_is_planned_and_registered(aws):
    result = invoke({"workflow_definition": SEED, "workflow_id": "md-1"})

    assert result["workflow_id"] == "md-1" and result["registered"] is True
    # 3 multi-node tasks routed to On-Demand, 4 tasks using /mnt/efs without global_config.shared_filesystem
    assert result["task_count"] == 4 and result["level_count"] == 4 and result["warning_count"] == 7
    assert result["plan_uri"] == f"s3://{BUCKET}/workflows/md-1/plan.json"
    assert stored_plan(result["plan_uri"]).critical_path[-1] == "analysis"
    tasks = {i["task_id"]: i for i in items("md-1") if i["sk"].startswith("TASK#")}
    assert {t: int(i["remaining_deps"]) for t, i in tasks.items()} == {
        "data-preprocessing": 0,
        "equilibration": 1,
        "production-run": 1,
        "analysis": 1,
    }
    assert all(i["state"] == "PENDING" for i in tasks.values())
    meta = next(i for i in items("md-1") if i["sk"] == "META")
    assert meta["status"] == "PARSED" and int(meta["total_tasks"]) == 4 and meta["plan_uri"] == result["plan_uri"]


def test_registration_is_counted_once_under_the_environment_dimension_only(aws, capsys):
    # Given a workflow registered, then the same call retried by Step Functions
    invoke({"workflow_definition": SEED, "workflow_id": "md-m"})
    first = emf_metrics(capsys.readouterr().out)
    invoke({"workflow_definition": SEED, "workflow_id": "md-m"})
    retried = emf_metrics(capsys.readouterr().out)

    # Then the registration is counted with its tasks, under exactly {environment} (no service dimension)
    assert sorted(first) == [
        ("TasksPlanned", 4.0, {"environment": "test"}),
        ("WorkflowsRegistered", 1.0, {"environment": "test"}),
    ]
    # And the retry counts nothing
    assert retried == []


def test_rejected_definition_is_counted(aws, capsys):
    with pytest.raises(WorkflowValidationError):
        invoke({"workflow_definition": {"tasks": []}, "workflow_id": "bad-m"})

    assert emf_metrics(capsys.readouterr().out) == [("WorkflowsRejected", 1.0, {"environment": "test"})]


def test_definition_from_s3_uri(aws):
    boto3.client("s3").put_object(Bucket=BUCKET, Key="workflows/md-2/definition.json", Body=json.dumps(SEED).encode())

    result = invoke({"definition_uri": f"s3://{BUCKET}/workflows/md-2/definition.json", "workflow_id": "md-2"})

    assert result["registered"] and result["definition_uri"] == f"s3://{BUCKET}/workflows/md-2/definition.json"


def test_retry_is_idempotent_and_does_not_reset_progress(aws):
    first = invoke({"workflow_definition": SEED, "workflow_id": "md-3"})
    table = boto3.resource("dynamodb").Table(TABLE)
    table.update_item(  # the scheduler moved on after the first (successful) call
        Key={"pk": "WF#md-3", "sk": "TASK#data-preprocessing"},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={":s": "RUNNING"},
    )

    second = invoke({"workflow_definition": SEED, "workflow_id": "md-3"})

    assert second["registered"] is False and second["plan_uri"] == first["plan_uri"]
    item = table.get_item(Key={"pk": "WF#md-3", "sk": "TASK#data-preprocessing"})["Item"]
    assert item["state"] == "RUNNING"


def test_same_id_with_a_different_definition_is_refused_before_writing(aws):
    invoke({"workflow_definition": SEED, "workflow_id": "md-4"})
    changed = {**SEED, "name": "Something else"}

    with pytest.raises(Exception, match="already registered with a different definition") as info:
        invoke({"workflow_definition": changed, "workflow_id": "md-4"})

    assert type(info.value).__name__ == "WorkflowAlreadyExistsError"
    assert stored_plan(f"s3://{BUCKET}/workflows/md-4/plan.json").name == SEED["name"]


def test_invalid_definition_raises_named_error_with_every_problem_and_writes_nothing(aws):
    bad = {
        "tasks": [
            {"id": "a", "container_image": "i", "command": ["x"], "depends_on": ["b"]},
            {"id": "b", "container_image": "i", "command": ["x"], "depends_on": ["a"], "vcpus": 0},
        ]
    }

    with pytest.raises(WorkflowValidationError) as info:
        invoke({"workflow_definition": bad, "workflow_id": "bad-1"})

    messages = [p["message"] for p in info.value.details["problems"]]
    assert any("cycle a -> b -> a" in m for m in messages) and any("vcpus is 0" in m for m in messages)
    assert items("bad-1") == []
    assert "Contents" not in boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="workflows/bad-1/")


def test_result_size_does_not_grow_with_the_number_of_tasks(aws):
    def fan_out(n):
        tasks = [{"id": "root", "container_image": "i", "command": ["x"]}]
        tasks += [{"id": f"t{i}", "container_image": "i", "command": ["x"], "depends_on": ["root"]} for i in range(n)]
        return {"name": "fan", "tasks": tasks}

    small = invoke({"workflow_definition": fan_out(3), "workflow_id": "fan-small"})
    large = invoke({"workflow_definition": fan_out(2000), "workflow_id": "fan-large"})

    assert large["task_count"] == 2001 and len(items("fan-large")) == 2002
    assert abs(len(json.dumps(large)) - len(json.dumps(small))) < 64


def test_dry_run_writes_nothing(aws):
    result = invoke({"workflow_definition": SEED, "workflow_id": "dry-1", "dry_run": True})

    assert result["registered"] is False and result["plan_uri"] is None and items("dry-1") == []


def test_skip_tasks_resume_a_workflow(aws):
    result = invoke({"workflow_definition": SEED, "workflow_id": "md-5", "skip_tasks": ["data-preprocessing"]})

    assert result["skipped_count"] == 1
    tasks = {i["task_id"]: i for i in items("md-5") if i["sk"].startswith("TASK#")}
    assert tasks["data-preprocessing"]["state"] == "SUCCEEDED" and int(tasks["equilibration"]["remaining_deps"]) == 0


def test_workflow_id_defaults_to_a_deterministic_content_id(aws):
    first = invoke({"workflow_definition": SEED})
    second = invoke({"workflow_definition": SEED})

    assert first["workflow_id"] == second["workflow_id"]
    assert first["workflow_id"].startswith("molecular-dynamics-simulation-")


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"workflow_definition": SEED, "definition_uri": "s3://b/k"},
        {"definition_uri": "http://x"},
        {"workflow_definition": SEED, "workflow_id": "has space"},
    ],
)
def test_malformed_events_raise_invalid_event_error(aws, event):
    with pytest.raises(InvalidEventError, match="ParseWorkflow input is malformed"):
        invoke(event)


def test_missing_environment_is_reported_at_cold_start(monkeypatch):
    monkeypatch.delenv("STEPSPOT_BUCKET", raising=False)
    monkeypatch.delenv("STEPSPOT_STATE_TABLE", raising=False)
    workflow_parser.runtime.cache_clear()

    with pytest.raises(ConfigurationError, match="STEPSPOT_BUCKET is not set; STEPSPOT_STATE_TABLE is not set"):
        invoke({"workflow_definition": SEED})
    workflow_parser.runtime.cache_clear()


def test_missing_definition_object_is_a_clear_error(aws):
    with pytest.raises(Exception, match="not found while reading s3://") as info:
        invoke({"definition_uri": f"s3://{BUCKET}/workflows/x-1/definition.json", "workflow_id": "x-1"})
    assert type(info.value).__name__ == "AwsResourceNotFoundError"


def test_resubmission_resets_unfinished_tasks_and_keeps_the_id(aws):
    invoke({"workflow_definition": SEED, "workflow_id": "md-6"})
    table = boto3.resource("dynamodb").Table(TABLE)
    for task_id, state in (("data-preprocessing", "SUCCEEDED"), ("equilibration", "FAILED")):
        table.update_item(
            Key={"pk": "WF#md-6", "sk": f"TASK#{task_id}"},
            UpdateExpression="SET #s = :s, remaining_deps = :z",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":s": state, ":z": 0},
        )
    event = {
        "workflow_definition": SEED,
        "workflow_id": "md-6",
        "skip_tasks": ["data-preprocessing"],
        "resubmission": 1,
    }

    first = invoke(event)
    retried = invoke(event)

    assert first["registered"] is True and retried["registered"] is False
    tasks = {i["task_id"]: i for i in items("md-6") if i["sk"].startswith("TASK#")}
    assert tasks["data-preprocessing"]["state"] == "SUCCEEDED"
    assert tasks["equilibration"]["state"] == "PENDING" and int(tasks["equilibration"]["remaining_deps"]) == 0
    assert tasks["production-run"]["state"] == "PENDING" and int(tasks["production-run"]["remaining_deps"]) == 1
    meta = next(i for i in items("md-6") if i["sk"] == "META")
    assert int(meta["resubmission"]) == 1 and int(meta["succeeded"]) == 1

    with pytest.raises(Exception, match="resubmission 0 is stale"):
        invoke({"workflow_definition": SEED, "workflow_id": "md-6"})


def test_a_definition_over_the_size_limit_is_refused_before_anything_is_written(aws):
    from stepspot.workflow_limits import MAX_WORKFLOW_TASKS

    tasks = [{"id": f"t{i}", "container_image": "i", "command": ["c"]} for i in range(MAX_WORKFLOW_TASKS + 1)]
    with pytest.raises(WorkflowValidationError, match="100,001 tasks, more than the 100,000 stepspot supports"):
        invoke({"workflow_definition": {"name": "big", "tasks": tasks}, "workflow_id": "big"})

    assert items("big") == []
    assert boto3.client("s3").list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0
