"""S3 side of the checkpoint store: checkpoint files and manifests in ``STEPSPOT_BUCKET``.

Standard library and boto3 only (the in-container agent imports it). The boto3 client is injected.
Hashes are computed over the bytes actually sent or received, so a manifest never claims content that
is not what S3 holds, even when a program rewrites a file while it is being uploaded.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from stepspot.aws.errors import error_code
from stepspot.checkpointing.aws.errors import translate

CHUNK_BYTES = 1024 * 1024
# 16 MiB parts: fewer requests for large files, still small enough to hold a few in memory.
DEFAULT_TRANSFER = TransferConfig(
    multipart_threshold=16 * 1024 * 1024, multipart_chunksize=16 * 1024 * 1024, max_concurrency=4
)

# The codes of a missing object (not of a missing bucket, which is an error): GetObject's and HeadObject's.
_GET_MISSING_CODES = ("NoSuchKey", "404")
_HEAD_MISSING_CODES = (*_GET_MISSING_CODES, "NotFound")
_T = TypeVar("_T")


class _HashingReader:
    """File-like wrapper that hashes and counts what boto3 reads (sequential reads only)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def read(self, amount: int = -1) -> bytes:
        data = self._raw.read(amount)
        self.digest.update(data)
        self.size += len(data)
        return data


class CheckpointObjects:
    """Checkpoint objects in one bucket: upload/download with sha256, manifests, listing, deletion."""

    def __init__(self, client: Any, bucket: str, transfer: TransferConfig = DEFAULT_TRANSFER) -> None:
        self._s3 = client
        self.bucket = bucket
        self._transfer = transfer

    def _fail(self, exc: Exception, action: str) -> Exception:
        return translate(
            exc,
            f"checkpoint bucket {self.bucket!r}",
            action,
            "create the bucket or set STEPSPOT_BUCKET to an existing bucket",
        )

    def check_bucket(self, prefix: str) -> None:
        """Raise AwsResourceNotFoundError (missing), AwsAccessDeniedError or CheckpointStoreUnavailable.

        A one-key listing under ``prefix``, not HeadBucket: S3 authorises HeadBucket as s3:ListBucket
        with no s3:prefix in the request, which the job role's prefix-conditioned grant denies.
        """
        try:
            self._s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, f"Listing {prefix}") from exc

    def upload_file(self, path: Path, key: str) -> tuple[str, int]:
        """Upload ``path`` to ``key``; return (sha256, size) of the bytes sent."""
        try:
            with path.open("rb") as raw:
                reader = _HashingReader(raw)
                self._s3.upload_fileobj(reader, self.bucket, key, Config=self._transfer)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, f"Uploading {key}") from exc
        return reader.digest.hexdigest(), reader.size

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/json") -> None:
        try:
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, f"Writing {key}") from exc

    def _unless_missing(
        self, action: str, call: Callable[[], _T], codes: tuple[str, ...] = _GET_MISSING_CODES
    ) -> _T | None:
        """``call()``, or None when the object it reads does not exist; other failures are translated."""
        try:
            return call()
        except ClientError as exc:
            if error_code(exc) in codes:
                return None
            raise self._fail(exc, action) from exc
        except BotoCoreError as exc:
            raise self._fail(exc, action) from exc

    def get_bytes(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""

        def read() -> bytes:
            response = self._s3.get_object(Bucket=self.bucket, Key=key)
            return bytes(response["Body"].read())

        return self._unless_missing(f"Reading {key}", read)

    def download_file(self, key: str, destination: Path) -> tuple[str, int] | None:
        """Stream ``key`` into ``destination``; return (sha256, size) received, or None if missing."""

        def download() -> tuple[str, int]:
            digest = hashlib.sha256()
            size = 0
            response = self._s3.get_object(Bucket=self.bucket, Key=key)
            body = response["Body"]
            destination.parent.mkdir(parents=True, exist_ok=True)
            with destination.open("wb") as out:
                for chunk in iter(lambda: body.read(CHUNK_BYTES), b""):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            return digest.hexdigest(), size

        return self._unless_missing(f"Downloading {key}", download)

    def object_size(self, key: str) -> int | None:
        def head() -> int:
            return int(self._s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"])

        return self._unless_missing(f"Reading {key}", head, _HEAD_MISSING_CODES)

    def list_objects(self, prefix: str) -> dict[str, float]:
        """Every key under ``prefix`` with its last-modified time (epoch seconds)."""
        found: dict[str, float] = {}
        try:
            for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    found[item["Key"]] = item["LastModified"].timestamp()
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, f"Listing {prefix}") from exc
        return found

    def list_child_names(self, prefix: str) -> list[str]:
        """Names of the "folders" directly under ``prefix`` (ending in '/'), without the prefix."""
        names: list[str] = []
        try:
            pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/")
            for page in pages:
                for item in page.get("CommonPrefixes", []):
                    names.append(item["Prefix"][len(prefix) :].rstrip("/"))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, f"Listing {prefix}") from exc
        return names

    def delete_keys(self, keys: Iterable[str]) -> int:
        """Delete the keys (batches of 1,000); return how many were deleted."""
        pending = list(keys)
        deleted = 0
        for start in range(0, len(pending), 1000):
            batch = pending[start : start + 1000]
            try:
                response = self._s3.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
                )
            except (ClientError, BotoCoreError) as exc:
                raise self._fail(exc, "Deleting checkpoint objects") from exc
            errors = response.get("Errors", [])
            if errors:
                first = errors[0]
                raise self._fail(
                    ClientError(
                        {"Error": {"Code": first.get("Code", ""), "Message": first.get("Message", "")}}, "DeleteObjects"
                    ),
                    f"Deleting {first.get('Key')}",
                )
            deleted += len(batch)
        return deleted
