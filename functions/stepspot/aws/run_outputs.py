"""Published task outputs in the bucket (``runs/<workflow>/<task>/outputs/``), for the CLI.

Reads the manifests the agent commits (``stepspot.dataflow``) and downloads files with their sha256
checked, so a fetched result is exactly what the task published.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from stepspot.aws.errors import translate_client_error
from stepspot.dataflow import (
    RUNS_ROOT,
    DataflowError,
    OutputFile,
    output_manifest_key,
    output_object_key,
    parse_manifest,
)
from stepspot.errors import FatalError

DOWNLOAD_WORKERS = 8


class RunOutputs:
    def __init__(self, s3_client: Any, bucket: str) -> None:
        self._s3 = s3_client
        self.bucket = bucket

    def manifest(self, workflow_id: str, task_id: str) -> list[OutputFile] | None:
        """The published files of a task, or None when it has published nothing."""
        key = output_manifest_key(workflow_id, task_id)
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise translate_client_error(exc, f"reading s3://{self.bucket}/{key}") from exc
        try:
            return parse_manifest(body)[1]
        except DataflowError as exc:
            raise FatalError(f"s3://{self.bucket}/{key} is damaged ({exc}): rerun task {task_id!r}.") from None

    def manifests(self, workflow_id: str, task_ids: Iterable[str]) -> dict[str, list[OutputFile]]:
        """Published files of the given tasks (those that published), read in parallel."""
        ids = list(task_ids)
        with ThreadPoolExecutor(max_workers=DOWNLOAD_WORKERS) as pool:
            found = dict(zip(ids, pool.map(lambda t: self.manifest(workflow_id, t), ids), strict=True))
        return {task: files for task, files in found.items() if files is not None}

    def tasks(self, workflow_id: str) -> list[str]:
        """Ids of the tasks with anything under ``runs/<workflow>/`` (published or not)."""
        prefix = f"{RUNS_ROOT}{workflow_id}/"
        names: list[str] = []
        try:
            pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/")
            for page in pages:
                names.extend(p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", []))
        except ClientError as exc:
            raise translate_client_error(exc, f"listing s3://{self.bucket}/{prefix}") from exc
        return sorted(names)

    def download(self, workflow_id: str, task_id: str, files: list[OutputFile], destination: Path) -> int:
        """Fetch ``files`` into ``destination`` (sha256 checked); return the bytes written."""

        def fetch(item: OutputFile) -> int:
            target = destination / item.path
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.partial")
            key = output_object_key(workflow_id, task_id, item.sha256)
            try:
                self._s3.download_file(self.bucket, key, str(partial))
            except ClientError as exc:
                raise translate_client_error(exc, f"downloading s3://{self.bucket}/{key}") from exc
            digest = hashlib.sha256(partial.read_bytes()).hexdigest()
            if digest != item.sha256:
                partial.unlink(missing_ok=True)
                raise FatalError(
                    f"Output {item.path!r} of task {task_id!r} does not match its manifest (sha256 {digest}): "
                    "the bucket was changed by hand; rerun the task."
                )
            os.replace(partial, target)
            return item.size

        with ThreadPoolExecutor(max_workers=DOWNLOAD_WORKERS) as pool:
            return sum(pool.map(fetch, files))
