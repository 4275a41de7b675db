"""The conditional commit of a task's output manifest (``PutObject`` with ``If-None-Match: *``).

S3 answers 412 PreconditionFailed when the manifest already exists (another attempt published: ours is
not used), and 409 ConditionalRequestConflict while another conditional write of the same key is in
flight, whose outcome is not known yet ("try again"). moto never answers 409, so a before-call hook
does, as S3 would. Only 412 means "published by another attempt"; a conflict is retried.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from stepspot.aws import output_objects
from stepspot.aws.output_objects import OutputObjects
from stepspot.dataflow import output_manifest_key
from stepspot.local.aws_faults import error_response

BUCKET = "outputs"


class Conflicts:
    """Answers the first ``count`` PutObject calls with 409, as S3 does during a concurrent conditional write."""

    def __init__(self, count: int) -> None:
        self.remaining = count
        self.answered = 0

    def __call__(self, **_: Any) -> Any:
        if self.remaining <= 0:
            return None
        self.remaining -= 1
        self.answered += 1
        return error_response(
            "ConditionalRequestConflict",
            "A conflicting conditional operation is currently in progress against this resource. Try again.",
            status=409,
        )


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(output_objects.time, "sleep", lambda _s: None)
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _manifest(s3: Any) -> bytes:
    return bytes(s3.get_object(Bucket=BUCKET, Key=output_manifest_key("wf", "t"))["Body"].read())


def test_a_conflicting_conditional_write_is_retried_and_publishes(s3: Any) -> None:
    conflicts = Conflicts(2)
    s3.meta.events.register("before-call.s3.PutObject", conflicts)
    # The other writer's outcome was unknown: retried, the manifest is ours and published
    assert OutputObjects(s3, BUCKET).commit("wf", "t", b'{"attempt": 1}') is True
    assert conflicts.answered == 2
    assert _manifest(s3) == b'{"attempt": 1}'
    # A later attempt finds it published (412): its outputs are not used, the first publication stands
    assert OutputObjects(s3, BUCKET).commit("wf", "t", b'{"attempt": 2}') is False
    assert _manifest(s3) == b'{"attempt": 1}'


def test_a_conflict_that_does_not_end_is_an_error_not_a_publication(s3: Any) -> None:
    s3.meta.events.register("before-call.s3.PutObject", Conflicts(1000))
    with pytest.raises(ClientError) as caught:
        OutputObjects(s3, BUCKET).commit("wf", "t", b"{}")
    assert caught.value.response["Error"]["Code"] == "ConditionalRequestConflict"
