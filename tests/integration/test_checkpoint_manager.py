"""The checkpoint manager Lambda handler under moto (in-process): save, find, list, cleanup, errors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from checkpoint_support import create_table
from monitoring_world import emf_metrics
from moto import mock_aws

from stepspot.errors import (
    CheckpointCorruptError,
    CheckpointNotFoundError,
    CheckpointRequestInvalid,
    ConfigurationError,
    WorkflowNotFoundError,
)
from stepspot.handlers import checkpoint_manager
from stepspot.state_keys import workflow_key

BUCKET, TABLE, STATE = "stepspot-test", "stepspot-checkpoints", "stepspot-state"


@dataclass
class Context:
    function_name: str = "stepspot-checkpoint-manager"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:stepspot-checkpoint-manager"
    aws_request_id: str = "req-1"


@pytest.fixture()
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("STEPSPOT_BUCKET", BUCKET)
    monkeypatch.setenv("STEPSPOT_CHECKPOINT_TABLE", TABLE)
    monkeypatch.setenv("STEPSPOT_STATE_TABLE", STATE)
    monkeypatch.setenv("STEPSPOT_ENVIRONMENT", "dev")
    monkeypatch.setenv("STEPSPOT_CHECKPOINT_KEEP_LAST", "2")
    checkpoint_manager.runtime.cache_clear()
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        ddb = boto3.client("dynamodb")
        create_table(ddb, TABLE)
        create_table(ddb, STATE)
        ddb.put_item(TableName=STATE, Item={k: {"S": v} for k, v in workflow_key("wf-1").items()})
        yield s3
    checkpoint_manager.runtime.cache_clear()


def call(event: dict[str, Any]) -> dict[str, Any]:
    return checkpoint_manager.lambda_handler(event, Context())  # type: ignore[arg-type]


def test_find_without_checkpoints_says_none(aws: Any) -> None:
    assert call({"action": "find", "workflow_id": "wf-1", "task_id": "t1"}) == {
        "found": False,
        "sequence": None,
        "uri": None,
        "created_at": None,
        "skipped": [],
    }


def test_save_then_find_returns_a_small_result(aws: Any) -> None:
    # Given a saved checkpoint
    saved = call({"action": "save", "workflow_id": "wf-1", "task_id": "t1", "data": {"step": 3}})
    # When the state machine looks for the checkpoint
    result = call({"action": "find", "workflow_id": "wf-1", "task_id": "t1"})
    # Then it learns the sequence and the manifest URI, not the data
    uri = f"s3://{BUCKET}/checkpoints/wf-1/t1/000000000001/manifest.json"
    assert saved == {"workflow_id": "wf-1", "task_id": "t1", "sequence": 1, "uri": uri, "created": True}
    assert result["found"] is True and result["sequence"] == 1 and result["uri"] == uri
    body = aws.get_object(Bucket=BUCKET, Key="checkpoints/wf-1/t1/000000000001/files/checkpoint.json")
    assert body["Body"].read() == b'{"step": 3}'


def test_metrics_carry_only_the_environment_dimension_and_saves_are_not_counted_here(
    aws: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a save through the manager (the workflow monitor counts CheckpointsSaved when the job stops)
    call({"action": "save", "workflow_id": "wf-1", "task_id": "t1", "data": {"step": 3}})
    saved = emf_metrics(capsys.readouterr().out)
    # When the state machine looks for the checkpoint it
    call({"action": "find", "workflow_id": "wf-1", "task_id": "t1"})
    restored = emf_metrics(capsys.readouterr().out)
    # Then the manager counts the uploaded bytes and the restore, under exactly {environment}
    assert saved == [("CheckpointBytesUploaded", 11.0, {"environment": "dev"})]
    assert restored == [("CheckpointsRestored", 1.0, {"environment": "dev"})]


def test_corrupt_skips_and_cleanup_deletions_are_counted(aws: Any, capsys: pytest.CaptureFixture[str]) -> None:
    for step in range(4):
        call({"action": "save", "workflow_id": "wf-1", "task_id": "t1", "data": {"step": step}})
    aws.put_object(Bucket=BUCKET, Key="checkpoints/wf-1/t1/000000000004/files/checkpoint.json", Body=b"{}")
    capsys.readouterr()

    call({"action": "find", "workflow_id": "wf-1", "task_id": "t1"})
    restored = emf_metrics(capsys.readouterr().out)
    call({"action": "cleanup", "dry_run": True})
    dry_run = emf_metrics(capsys.readouterr().out)
    call({"action": "cleanup"})
    cleaned = emf_metrics(capsys.readouterr().out)

    assert sorted(restored) == [
        ("CheckpointsCorrupt", 1.0, {"environment": "dev"}),
        ("CheckpointsRestored", 1.0, {"environment": "dev"}),
    ]
    assert dry_run == []
    assert cleaned == [("CheckpointsDeleted", 2.0, {"environment": "dev"})]


def test_save_is_idempotent_under_retries(aws: Any) -> None:
    event = {
        "action": "save",
        "workflow_id": "wf-1",
        "task_id": "t1",
        "data": {"step": 1},
        "idempotency_key": "exec-1:2026-11-22T00:00:00Z",
    }
    first = call(event)
    call({"action": "save", "workflow_id": "wf-1", "task_id": "t1", "data": {"step": 2}})
    # When Step Functions retries the first call after its response was lost
    again = call(event)
    # Then the first checkpoint is returned, not a third one
    assert (first["sequence"], first["created"]) == (1, True)
    assert (again["sequence"], again["created"]) == (1, False)
    listed = call({"action": "list", "workflow_id": "wf-1"})
    assert [c["sequence"] for c in listed["checkpoints"]] == [2, 1]
    # And saving the latest content again without a key creates nothing either
    assert call({"action": "save", "workflow_id": "wf-1", "task_id": "t1", "data": {"step": 2}})["created"] is False


def test_find_skips_a_corrupt_checkpoint_and_a_named_one_raises(aws: Any) -> None:
    for step in (1, 2):
        call({"action": "save", "workflow_id": "wf-1", "task_id": "t1", "data": {"step": step}})
    aws.put_object(Bucket=BUCKET, Key="checkpoints/wf-1/t1/000000000002/files/checkpoint.json", Body=b"{}")
    result = call({"action": "find", "workflow_id": "wf-1", "task_id": "t1"})
    assert (result["sequence"], result["skipped"]) == (1, [2])
    with pytest.raises(CheckpointCorruptError, match=r"checkpoint 2: checkpoint\.json has 2 bytes, manifest says 11"):
        call({"action": "find", "workflow_id": "wf-1", "task_id": "t1", "sequence": 2})
    with pytest.raises(CheckpointNotFoundError, match="Checkpoint 9 of wf-1/t1 does not exist or never completed"):
        call({"action": "find", "workflow_id": "wf-1", "task_id": "t1", "sequence": 9})


def test_list_covers_every_task_of_the_workflow(aws: Any) -> None:
    for task in ("t1", "t2"):
        call({"action": "save", "workflow_id": "wf-1", "task_id": task, "files": {"a/b.txt": task}})
    listed = call({"action": "list", "workflow_id": "wf-1"})
    assert [(c["task_id"], c["sequence"], c["latest"], c["status"]) for c in listed["checkpoints"]] == [
        ("t1", 1, True, "COMPLETE"),
        ("t2", 1, True, "COMPLETE"),
    ]


def test_cleanup_applies_the_configured_retention_and_is_repeatable(aws: Any) -> None:
    for step in range(4):
        call({"action": "save", "workflow_id": "wf-1", "task_id": "t1", "data": {"step": step}})
    first = call({"action": "cleanup"})
    second = call({"action": "cleanup"})
    assert (first["keep_last"], first["deleted_checkpoints"], first["deleted_objects"]) == (2, 2, 4)
    assert (second["deleted_checkpoints"], second["deleted_objects"]) == (0, 0)
    keys = [o["Key"] for o in aws.list_objects_v2(Bucket=BUCKET, Prefix="checkpoints/")["Contents"]]
    assert all("/000000000003/" in k or "/000000000004/" in k for k in keys) and len(keys) == 4


@pytest.mark.parametrize(
    ("event", "error", "message"),
    [
        (
            {"action": "explode", "workflow_id": "wf-1"},
            CheckpointRequestInvalid,
            "Checkpoint manager event is invalid (event: Input tag 'explode' found using 'action' does not match",
        ),
        (
            {"action": "find", "workflow_id": "wf 1", "task_id": "t"},
            CheckpointRequestInvalid,
            "Checkpoint manager event is invalid (find.workflow_id: String should match pattern",
        ),
        (
            {"action": "save", "workflow_id": "wf-1", "task_id": "t", "files": {"../x": "y"}},
            CheckpointRequestInvalid,
            "file paths must be relative and stay inside the checkpoint: ['../x']",
        ),
        (
            {"action": "save", "workflow_id": "nope", "task_id": "t", "data": {"a": 1}},
            WorkflowNotFoundError,
            "Workflow 'nope' is unknown: check the id (stepspot lists workflows) or submit it first.",
        ),
        ({"action": "list", "workflow_id": "nope"}, WorkflowNotFoundError, "Workflow 'nope' is unknown"),
    ],
)
def test_bad_events_raise_named_errors(aws: Any, event: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error) as caught:
        call(event)
    assert message in str(caught.value)


def test_missing_environment_is_reported_at_cold_start(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STEPSPOT_CHECKPOINT_TABLE")
    monkeypatch.setenv("STEPSPOT_CHECKPOINT_KEEP_LAST", "2")
    checkpoint_manager.runtime.cache_clear()
    missing = r"^CheckpointManagerSettings: STEPSPOT_CHECKPOINT_TABLE is not set: set"
    with pytest.raises(ConfigurationError, match=missing):
        call({"action": "list", "workflow_id": "wf-1"})
    monkeypatch.setenv("STEPSPOT_CHECKPOINT_TABLE", TABLE)
    monkeypatch.setenv("STEPSPOT_CHECKPOINT_KEEP_LAST", "0")
    with pytest.raises(ConfigurationError, match="keep_last must be at least 1"):
        call({"action": "list", "workflow_id": "wf-1"})
