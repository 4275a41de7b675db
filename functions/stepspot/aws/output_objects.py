"""S3 side of published task outputs: content-addressed objects and packs, the conditional commit.

Standard library and boto3 only: the in-container agent (publishing and staging) and the CLI
(``stepspot outputs --download``) both use it. Layout and manifest in ``stepspot.dataflow``.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from stepspot.checkpointing.files import sha256_file
from stepspot.checkpointing.model import AGENT_PRIVATE_PREFIX
from stepspot.dataflow import (
    PACK_FILE_BYTES,
    OutputFile,
    output_manifest_key,
    output_object_key,
    outputs_prefix,
    plan_packs,
)

WORKERS = 8  # objects in flight at once; a large file is itself split into parallel parts
_MISSING_CODES = ("NoSuchKey", "404", "NotFound")
# 412: the manifest exists (another attempt published). 409: another conditional write of the key is in
# flight and its outcome is unknown; S3 says "try again", and only the retry tells which of the two won.
_PRECONDITION_CODES = ("PreconditionFailed", "412")
_CONFLICT_CODES = ("ConditionalRequestConflict", "409")
COMMIT_ATTEMPTS = 6
COMMIT_BASE_DELAY_SECONDS = 0.1
T = TypeVar("T")


def error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


class MissingObject(Exception):
    """The object holding ``file`` is not in the bucket."""

    def __init__(self, file: OutputFile, key: str) -> None:
        super().__init__(key)
        self.file = file
        self.key = key


class CorruptFile(Exception):
    """The bytes received for ``file`` do not have the sha256 its manifest records."""

    def __init__(self, file: OutputFile, actual: str) -> None:
        super().__init__(file.path)
        self.file = file
        self.actual = actual


def _place(data: bytes | None, source: Path | None, target: Path) -> None:
    """Write (or move) into ``target`` through a private temporary name: never a half-written file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f"{AGENT_PRIVATE_PREFIX}partial-{uuid.uuid4().hex}"
    if data is not None:
        partial.write_bytes(data)
    elif source is not None:
        os.replace(source, partial)
    os.replace(partial, target)


class OutputObjects:
    def __init__(self, s3: Any, bucket: str, transfer: Any = None) -> None:
        self._s3 = s3
        self.bucket = bucket
        self._transfer = transfer

    def _parallel(self, work: Callable[[T], Any], items: Iterable[T]) -> list[Any]:
        with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="objects") as pool:
            return list(pool.map(work, items))

    def _transfer_kwargs(self) -> dict[str, Any]:
        return {"Config": self._transfer} if self._transfer is not None else {}

    # -- publishing ----------------------------------------------------------------------------

    def existing(self, workflow_id: str, task_id: str) -> set[str]:
        """Content addresses already under the task's ``objects/`` (from an earlier, uncommitted attempt)."""
        prefix = outputs_prefix(workflow_id, task_id) + "objects/"
        found: set[str] = set()
        for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            found.update(item["Key"][len(prefix) :] for item in page.get("Contents", []))
        return found

    def upload(
        self, workflow_id: str, task_id: str, root: Path, files: Sequence[OutputFile]
    ) -> tuple[list[OutputFile], int, int]:
        """Send what the bucket lacks; return (the manifest entries, objects uploaded, objects reused)."""
        existing = self.existing(workflow_id, task_id)
        packs = plan_packs(files)
        large = {f.sha256: f for f in files if f.size >= PACK_FILE_BYTES}

        def send_pack(members: list[OutputFile]) -> tuple[str, dict[str, int], bool]:
            chunks, offsets, offset = [], {}, 0
            for member in members:
                data = (root / member.path).read_bytes()
                chunks.append(data)
                offsets[member.sha256] = offset
                offset += len(data)
            body = b"".join(chunks)
            sha = hashlib.sha256(body).hexdigest()
            if sha in existing:
                return sha, offsets, False
            self._s3.put_object(Bucket=self.bucket, Key=output_object_key(workflow_id, task_id, sha), Body=body)
            return sha, offsets, True

        def send_file(f: OutputFile) -> bool:
            if f.sha256 in existing:
                return False
            key = output_object_key(workflow_id, task_id, f.sha256)
            self._s3.upload_file(str(root / f.path), self.bucket, key, **self._transfer_kwargs())
            return True

        sent_packs = self._parallel(send_pack, packs)
        sent_files = self._parallel(send_file, large.values())
        located: dict[str, tuple[str, int]] = {}
        for sha, offsets, _ in sent_packs:
            located.update({member: (sha, offset) for member, offset in offsets.items()})
        entries = [
            OutputFile(f.path, f.size, f.sha256, *located[f.sha256]) if f.sha256 in located else f for f in files
        ]
        uploaded = sum(1 for *_, sent in sent_packs if sent) + sum(sent_files)
        return entries, uploaded, len(sent_packs) + len(sent_files) - uploaded

    def commit(self, workflow_id: str, task_id: str, manifest: bytes) -> bool:
        """Publish the manifest with one conditional write; False when another attempt published first.

        A conflict with a concurrent conditional write is retried (jittered backoff): if the other
        write failed, ours applies; if it succeeded, the retry gets 412. A conflict that persists is
        raised, never taken for a publication (downstream tasks would find no manifest).
        """
        conflict: ClientError | None = None
        for attempt in range(COMMIT_ATTEMPTS):
            if attempt:
                time.sleep(random.random() * COMMIT_BASE_DELAY_SECONDS * 2**attempt)
            try:
                self._s3.put_object(
                    Bucket=self.bucket,
                    Key=output_manifest_key(workflow_id, task_id),
                    Body=manifest,
                    ContentType="application/json",
                    IfNoneMatch="*",
                )
                return True
            except ClientError as exc:
                code = error_code(exc)
                if code in _PRECONDITION_CODES:
                    return False
                if code not in _CONFLICT_CODES:
                    raise
                conflict = exc
        assert conflict is not None
        raise conflict

    # -- fetching ------------------------------------------------------------------------------

    def _get(self, key: str, file: OutputFile) -> bytes:
        try:
            return bytes(self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except ClientError as exc:
            if error_code(exc) in _MISSING_CODES:
                raise MissingObject(file, key) from None
            raise

    def fetch(self, workflow_id: str, task_id: str, items: Sequence[tuple[OutputFile, Path]]) -> int:
        """Write each file to its target, sha256 checked; return the bytes written."""
        by_pack: dict[str, list[tuple[OutputFile, Path]]] = defaultdict(list)
        single: list[tuple[OutputFile, Path]] = []
        for file, target in items:
            (by_pack[file.pack] if file.pack else single).append((file, target))

        def from_pack(members: list[tuple[OutputFile, Path]]) -> int:
            first = members[0][0]
            data = self._get(output_object_key(workflow_id, task_id, first.object_sha256), first)
            for file, target in members:
                piece = data[file.offset : file.offset + file.size]
                actual = hashlib.sha256(piece).hexdigest()
                if actual != file.sha256:
                    raise CorruptFile(file, actual)
                _place(piece, None, target)
            return sum(file.size for file, _ in members)

        def one(item: tuple[OutputFile, Path]) -> int:
            file, target = item
            key = output_object_key(workflow_id, task_id, file.sha256)
            if file.size < PACK_FILE_BYTES:
                piece = self._get(key, file)
                actual = hashlib.sha256(piece).hexdigest()
                if actual != file.sha256:
                    raise CorruptFile(file, actual)
                _place(piece, None, target)
                return int(file.size)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.parent / f"{AGENT_PRIVATE_PREFIX}partial-{uuid.uuid4().hex}"
            try:
                self._s3.download_file(self.bucket, key, str(partial), **self._transfer_kwargs())
            except ClientError as exc:
                if error_code(exc) in _MISSING_CODES:
                    raise MissingObject(file, key) from None
                raise
            actual, _ = sha256_file(partial)
            if actual != file.sha256:
                partial.unlink(missing_ok=True)
                raise CorruptFile(file, actual)
            _place(None, partial, target)
            return int(file.size)

        return int(sum(self._parallel(from_pack, by_pack.values())) + sum(self._parallel(one, single)))
