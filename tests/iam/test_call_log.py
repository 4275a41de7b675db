"""The recorder: every botocore call, with the principal in force, also in a handler's thread pool."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from stepspot import call_log


def test_calls_are_recorded_with_the_principal_in_force(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv(call_log.CALL_LOG_ENV, str(log))
    monkeypatch.setenv("STEPSPOT_BUCKET", "bucket-1")
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bucket-1")  # the test's own setup: no principal
        with call_log.acting_as("lambda:checkpoint_manager"), ThreadPoolExecutor(2) as pool:
            s3.put_object(Bucket="bucket-1", Key="checkpoints/k", Body=b"x" * 10)
            pool.submit(s3.head_object, Bucket="bucket-1", Key="checkpoints/k").result()
        s3.list_objects_v2(Bucket="bucket-1", Prefix="checkpoints/")
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["principal"], e["operation"]) for e in entries] == [
        (None, "CreateBucket"),
        ("lambda:checkpoint_manager", "PutObject"),
        ("lambda:checkpoint_manager", "HeadObject"),  # in the pool's thread: the context travelled
        (None, "ListObjectsV2"),
    ]
    assert entries[1]["params"] == {"Bucket": "bucket-1", "Key": "checkpoints/k"}  # no body
    assert entries[3]["names"]["STEPSPOT_BUCKET"] == "bucket-1"


def test_nothing_is_recorded_without_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(call_log.CALL_LOG_ENV, raising=False)
    assert call_log.install_from_env() is True  # installed by the test session already (tests/iam)
    with mock_aws(), call_log.acting_as("job"):
        boto3.client("s3", region_name="us-east-1").list_buckets()
    assert list(tmp_path.iterdir()) == []
