"""Published task outputs in the bucket (``runs/<workflow>/<task>/outputs/``), for the CLI.

Reads the manifests the agent commits (``stepspot.dataflow``) and downloads files with their sha256
checked, so a fetched result is exactly what the task published.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from stepspot.aws.errors import translate_client_error
from stepspot.aws.output_objects import CorruptFile, MissingObject, OutputObjects
from stepspot.dataflow import (
    RUNS_ROOT,
    DataflowError,
    OutputFile,
    output_manifest_key,
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
        try:
            return OutputObjects(self._s3, self.bucket).fetch(
                workflow_id, task_id, [(f, destination / f.path) for f in files]
            )
        except MissingObject as exc:
            raise FatalError(
                f"Output {exc.file.path!r} of task {task_id!r} is missing from s3://{self.bucket}/{exc.key}: the "
                "bucket was changed by hand; rerun the task."
            ) from None
        except CorruptFile as exc:
            raise FatalError(
                f"Output {exc.file.path!r} of task {task_id!r} does not match its manifest (sha256 {exc.actual}): "
                "the bucket was changed by hand; rerun the task."
            ) from None
        except ClientError as exc:
            raise translate_client_error(exc, f"downloading the outputs of task {task_id!r}") from exc
