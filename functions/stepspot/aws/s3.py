"""S3 adapter for workflow documents: submitted definitions and plans (``workflows/<id>/...``)."""

from __future__ import annotations

import re
from typing import Any

from botocore.exceptions import ClientError

from stepspot.aws.errors import translate_client_error
from stepspot.errors import FatalError

_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/(?P<key>.+)$")


class InvalidS3UriError(FatalError):
    """Indicates that a string meant as an S3 location is not of the form s3://bucket/key."""


def parse_s3_uri(uri: str) -> tuple[str, str]:
    match = _S3_URI.match(uri)
    if not match:
        raise InvalidS3UriError(f"{uri!r} is not an S3 location: use s3://<bucket>/<key>", uri=uri)
    return match.group("bucket"), match.group("key")


def definition_key(workflow_id: str) -> str:
    return f"workflows/{workflow_id}/definition.json"


def plan_key(workflow_id: str) -> str:
    return f"workflows/{workflow_id}/plan.json"


class DocumentStore:
    """Reads and writes workflow definitions and plans in the stepspot bucket."""

    def __init__(self, s3_client: Any, bucket: str) -> None:
        self._s3 = s3_client
        self.bucket = bucket

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def put(self, key: str, body: bytes, content_type: str = "application/json") -> str:
        try:
            # SSE is the bucket default (Terraform); asking for it explicitly keeps moto and AWS alike.
            self._s3.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, ServerSideEncryption="AES256"
            )
        except ClientError as exc:
            raise translate_client_error(exc, f"writing s3://{self.bucket}/{key}") from exc
        return self.uri(key)

    def read(self, uri: str) -> bytes:
        bucket, key = parse_s3_uri(uri)
        try:
            body: bytes = self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            raise translate_client_error(exc, f"reading {uri}") from exc
        return body
