"""The checkpoint store: save a directory, find and restore the latest valid checkpoint, list, clean up.

Standard library only here; the S3 and DynamoDB adapters are injected (``aws/objects.py``,
``aws/table.py``), so unit tests use fakes and the agent stays free of anything but boto3.

Protocol of a save (each step must finish before the next, which is what keeps readers safe):

1. reserve the next sequence (conditional put of a PENDING item; a racing writer takes the next one);
2. upload the new files under that sequence's prefix (files unchanged since the previous manifest are
   reused by hash, not re-sent);
3. write the manifest;
4. mark the item COMPLETE (with the manifest's sha256);
5. move the LATEST pointer forward (conditional: never backwards).

A crash before step 5 leaves nothing a reader uses: readers walk COMPLETE items at or below LATEST and
check each manifest against the sha256 recorded in step 4.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from stepspot.checkpointing.files import DirectoryScanner, RestoreStaging
from stepspot.checkpointing.model import (
    STATUS_PENDING,
    CheckpointRecord,
    FileEntry,
    Manifest,
    ManifestError,
    RetentionPlan,
    RetentionPolicy,
    ScannedFile,
    file_key,
    manifest_key,
    objects_to_delete,
    plan_retention,
    plan_upload,
    s3_uri,
    same_content,
    task_prefix,
)
from stepspot.errors import CheckpointCorruptError, CheckpointNotFoundError, CheckpointStoreUnavailable

MAX_RESERVE_ATTEMPTS = 50
UPLOAD_WORKERS = 8


class ObjectStore(Protocol):
    bucket: str

    def upload_file(self, path: Path, key: str) -> tuple[str, int]: ...
    def put_bytes(self, key: str, data: bytes, content_type: str = ...) -> None: ...
    def get_bytes(self, key: str) -> bytes | None: ...
    def download_file(self, key: str, destination: Path) -> tuple[str, int] | None: ...
    def object_size(self, key: str) -> int | None: ...
    def list_objects(self, prefix: str) -> dict[str, float]: ...
    def list_child_names(self, prefix: str) -> list[str]: ...
    def delete_keys(self, keys: Iterable[str]) -> int: ...


class RecordTable(Protocol):
    def latest_sequence(self, workflow_id: str, task_id: str) -> int | None: ...
    def records(self, workflow_id: str, task_id: str, upto: int | None = None) -> Iterable[CheckpointRecord]: ...
    def highest_sequence(self, workflow_id: str, task_id: str) -> int: ...
    def get(self, workflow_id: str, task_id: str, sequence: int) -> CheckpointRecord | None: ...
    def find_request(self, workflow_id: str, task_id: str, request_key: str) -> CheckpointRecord | None: ...
    def reserve(self, record: CheckpointRecord) -> bool: ...
    def complete(
        self,
        record: CheckpointRecord,
        manifest_sha256: str,
        file_count: int,
        total_bytes: int,
        uploaded_bytes: int,
    ) -> bool: ...
    def advance_latest(self, workflow_id: str, task_id: str, sequence: int) -> bool: ...
    def delete_record(self, workflow_id: str, task_id: str, sequence: int) -> None: ...
    def delete_latest_if(self, workflow_id: str, task_id: str, sequence: int) -> bool: ...


@dataclass(frozen=True)
class SaveResult:
    """Outcome of a save; ``record`` is None when the directory had not changed (nothing saved)."""

    record: CheckpointRecord | None
    manifest: Manifest | None
    uploaded_files: int = 0
    uploaded_bytes: int = 0
    reused_files: int = 0
    seconds: float = 0.0
    pointer_moved: bool = False
    reused_request: bool = False


@dataclass(frozen=True)
class Skipped:
    sequence: int
    reason: str


@dataclass(frozen=True)
class FoundCheckpoint:
    record: CheckpointRecord
    manifest: Manifest
    skipped: tuple[Skipped, ...] = ()


@dataclass(frozen=True)
class RestoreResult:
    """Outcome of a restore into a directory; ``found`` is None when no valid checkpoint exists."""

    found: FoundCheckpoint | None
    skipped: tuple[Skipped, ...] = ()
    restored_bytes: int = 0
    seconds: float = 0.0


@dataclass
class CleanupReport:
    tasks: int = 0
    deleted_checkpoints: int = 0
    abandoned_uploads: int = 0
    deleted_objects: int = 0
    kept_checkpoints: int = 0
    deleted_sequences: dict[str, list[int]] = field(default_factory=dict)


def _now_iso(epoch: float) -> str:
    # timezone.utc: datetime.UTC is 3.11+ and the task runner bundle runs this on Python 3.9.
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")  # noqa: UP017


class CheckpointStore:
    """Checkpoints of every task in one bucket and table."""

    def __init__(
        self,
        objects: ObjectStore,
        table: RecordTable,
        clock: Callable[[], float] = time.time,
        workers: int = UPLOAD_WORKERS,
    ) -> None:
        self.objects = objects
        self.table = table
        self._clock = clock
        self._workers = workers

    @property
    def bucket(self) -> str:
        return self.objects.bucket

    # ---- save ----------------------------------------------------------------------------------

    def save(
        self,
        workflow_id: str,
        task_id: str,
        scanned: list[ScannedFile],
        directory: Path,
        previous: Manifest | None = None,
        request_key: str = "",
        skip_unchanged: bool = True,
    ) -> SaveResult:
        """Checkpoint ``scanned`` files of ``directory``; see the module docstring for the protocol.

        ``previous`` is the manifest to reuse objects from (the agent keeps the one it last wrote or
        restored); when None the latest registered manifest is read. With ``request_key``, a second
        call with the same key returns the checkpoint the first one made (Step Functions retries).
        """
        started = self._clock()
        if request_key:
            earlier = self.table.find_request(workflow_id, task_id, request_key)
            if earlier is not None:
                self.table.advance_latest(workflow_id, task_id, earlier.sequence)
                return SaveResult(earlier, None, reused_request=True, seconds=self._clock() - started)
        if previous is None:
            found, _ = self.find_latest(workflow_id, task_id, check_objects=False)
            previous = found.manifest if found else None
        if skip_unchanged and same_content(scanned, previous):
            return SaveResult(None, previous, seconds=self._clock() - started)

        record = self._reserve(workflow_id, task_id, request_key)
        plan = plan_upload(scanned, previous)
        by_path = {item.path: item for item in scanned}

        def upload(item: ScannedFile) -> FileEntry:
            key = file_key(workflow_id, task_id, record.sequence, item.path)
            sha, size = self.objects.upload_file(directory / item.path, key)
            # The hash of what was sent wins over the scan: the file may have been rewritten meanwhile.
            return FileEntry(item.path, size, sha, key, by_path[item.path].mode)

        with ThreadPoolExecutor(max_workers=self._workers) as pool:
            uploaded = list(pool.map(upload, plan.to_upload))
        manifest = Manifest(
            workflow_id=workflow_id,
            task_id=task_id,
            sequence=record.sequence,
            created_at=record.created_at,
            files=tuple(sorted(uploaded + list(plan.reused), key=lambda e: e.path)),
            uploaded_bytes=sum(entry.size for entry in uploaded),
        )
        raw = manifest.to_json()
        self.objects.put_bytes(manifest_key(workflow_id, task_id, record.sequence), raw)
        if not self.table.complete(
            record,
            hashlib.sha256(raw).hexdigest(),
            len(manifest.files),
            manifest.total_bytes,
            manifest.uploaded_bytes,
        ):
            raise CheckpointStoreUnavailable(
                f"Checkpoint {record.sequence} of {workflow_id}/{task_id} was taken over before it completed "
                "(its reservation expired or was cleaned up): save again."
            )
        moved = self.table.advance_latest(workflow_id, task_id, record.sequence)
        return SaveResult(
            record=record,
            manifest=manifest,
            uploaded_files=len(uploaded),
            uploaded_bytes=manifest.uploaded_bytes,
            reused_files=len(plan.reused),
            seconds=self._clock() - started,
            pointer_moved=moved,
        )

    def save_directory(self, workflow_id: str, task_id: str, directory: Path, request_key: str = "") -> SaveResult:
        """Scan and save ``directory`` in one call (for callers without a long-lived scanner)."""
        scanned = DirectoryScanner(directory).scan()
        return self.save(workflow_id, task_id, scanned, directory, request_key=request_key)

    def _reserve(self, workflow_id: str, task_id: str, request_key: str) -> CheckpointRecord:
        writer = uuid.uuid4().hex
        candidate = (
            max(
                self.table.highest_sequence(workflow_id, task_id), self.table.latest_sequence(workflow_id, task_id) or 0
            )
            + 1
        )
        for _ in range(MAX_RESERVE_ATTEMPTS):
            now = self._clock()
            record = CheckpointRecord(
                workflow_id=workflow_id,
                task_id=task_id,
                sequence=candidate,
                status=STATUS_PENDING,
                created_epoch=now,
                created_at=_now_iso(now),
                writer=writer,
                request_key=request_key,
            )
            if self.table.reserve(record):
                return record
            candidate += 1  # another writer took this number: the next one is ours to try
        raise CheckpointStoreUnavailable(
            f"Could not reserve a checkpoint sequence for {workflow_id}/{task_id} after "
            f"{MAX_RESERVE_ATTEMPTS} attempts: too many concurrent writers; try again."
        )

    # ---- find / restore ------------------------------------------------------------------------

    def _candidates(self, workflow_id: str, task_id: str) -> Iterable[CheckpointRecord]:
        latest = self.table.latest_sequence(workflow_id, task_id)
        if latest is None:
            return []
        return (r for r in self.table.records(workflow_id, task_id, upto=latest) if r.complete)

    def _load_manifest(self, record: CheckpointRecord) -> Manifest:
        raw = self.objects.get_bytes(record.manifest_key)
        if raw is None:
            raise CheckpointCorruptError(f"checkpoint {record.sequence}: manifest is missing")
        if record.manifest_sha256 and hashlib.sha256(raw).hexdigest() != record.manifest_sha256:
            raise CheckpointCorruptError(f"checkpoint {record.sequence}: manifest sha256 does not match")
        try:
            manifest = Manifest.from_json(raw)
        except ManifestError as exc:
            raise CheckpointCorruptError(f"checkpoint {record.sequence}: {exc}") from exc
        if (manifest.workflow_id, manifest.task_id, manifest.sequence) != (
            record.workflow_id,
            record.task_id,
            record.sequence,
        ):
            raise CheckpointCorruptError(f"checkpoint {record.sequence}: manifest belongs to another checkpoint")
        return manifest

    def _check_objects(self, record: CheckpointRecord, manifest: Manifest) -> None:
        for entry in manifest.files:
            size = self.objects.object_size(entry.key)
            if size is None:
                raise CheckpointCorruptError(f"checkpoint {record.sequence}: {entry.path} is missing")
            if size != entry.size:
                raise CheckpointCorruptError(
                    f"checkpoint {record.sequence}: {entry.path} has {size} bytes, manifest says {entry.size}"
                )

    def verify(self, record: CheckpointRecord, check_objects: bool = True) -> Manifest:
        """The checkpoint's manifest after checking it (and each object's size); CheckpointCorruptError."""
        manifest = self._load_manifest(record)
        if check_objects:
            self._check_objects(record, manifest)
        return manifest

    def find_latest(
        self, workflow_id: str, task_id: str, check_objects: bool = True
    ) -> tuple[FoundCheckpoint | None, tuple[Skipped, ...]]:
        """The newest registered checkpoint that passes ``verify`` (or None) and the corrupt ones skipped."""
        skipped: list[Skipped] = []
        for record in self._candidates(workflow_id, task_id):
            try:
                manifest = self.verify(record, check_objects=check_objects)
            except CheckpointCorruptError as exc:
                skipped.append(Skipped(record.sequence, exc.message))
                continue
            return FoundCheckpoint(record, manifest, tuple(skipped)), tuple(skipped)
        return None, tuple(skipped)

    def get_checkpoint(self, workflow_id: str, task_id: str, sequence: int) -> FoundCheckpoint:
        record = self.table.get(workflow_id, task_id, sequence)
        if record is None or not record.complete:
            raise CheckpointNotFoundError(
                f"Checkpoint {sequence} of {workflow_id}/{task_id} does not exist or never completed: "
                "list the task's checkpoints to pick an existing sequence."
            )
        return FoundCheckpoint(record, self.verify(record))

    def restore(
        self,
        workflow_id: str,
        task_id: str,
        directory: Path,
        scanner: DirectoryScanner | None = None,
    ) -> RestoreResult:
        """Download the newest checkpoint whose every file matches its sha256 into ``directory``.

        A checkpoint with a missing or corrupt file is skipped in favour of the one before it, and the
        directory is left untouched until a checkpoint has been fully downloaded and verified.
        """
        started = self._clock()
        skipped: list[Skipped] = []
        for record in self._candidates(workflow_id, task_id):
            try:
                manifest = self._load_manifest(record)
                restored = self._download(record, manifest, directory, scanner)
            except CheckpointCorruptError as exc:
                skipped.append(Skipped(record.sequence, exc.message))
                continue
            return RestoreResult(
                FoundCheckpoint(record, manifest, tuple(skipped)),
                tuple(skipped),
                restored,
                self._clock() - started,
            )
        return RestoreResult(None, tuple(skipped), 0, self._clock() - started)

    def _download(
        self, record: CheckpointRecord, manifest: Manifest, directory: Path, scanner: DirectoryScanner | None
    ) -> int:
        with RestoreStaging(directory) as staging:

            def fetch(entry: FileEntry) -> None:
                got = self.objects.download_file(entry.key, staging.file(entry.path))
                if got is None:
                    raise CheckpointCorruptError(f"checkpoint {record.sequence}: {entry.path} is missing")
                if got != (entry.sha256, entry.size):
                    raise CheckpointCorruptError(
                        f"checkpoint {record.sequence}: {entry.path} does not match its sha256"
                    )

            with ThreadPoolExecutor(max_workers=self._workers) as pool:
                list(pool.map(fetch, manifest.files))
            for entry in manifest.files:
                staging.commit(entry.path, entry.mode)
                if scanner is not None:
                    scanner.remember(entry.path, entry.sha256)
        return manifest.total_bytes

    # ---- list ----------------------------------------------------------------------------------

    def task_ids(self, workflow_id: str) -> list[str]:
        return sorted(self.objects.list_child_names(f"checkpoints/{workflow_id}/"))

    def workflow_ids(self) -> list[str]:
        return sorted(self.objects.list_child_names("checkpoints/"))

    def list(self, workflow_id: str, task_id: str) -> tuple[list[CheckpointRecord], int | None]:
        """Every checkpoint item of a task (newest first, pending ones included) and the LATEST sequence."""
        return list(self.table.records(workflow_id, task_id)), self.table.latest_sequence(workflow_id, task_id)

    def uri(self, record: CheckpointRecord) -> str:
        return s3_uri(self.bucket, record.manifest_key)

    # ---- cleanup -------------------------------------------------------------------------------

    def cleanup_task(
        self, workflow_id: str, task_id: str, policy: RetentionPolicy, dry_run: bool = False
    ) -> tuple[RetentionPlan, int]:
        """Apply ``policy`` to one task: delete S3 objects first, then the items (a rerun finishes the job)."""
        now = self._clock()
        records = list(self.table.records(workflow_id, task_id))
        plan = plan_retention(records, policy, now)
        by_sequence = {r.sequence: r for r in records}
        referenced: set[str] = set()
        for sequence in plan.keep:
            record = by_sequence[sequence]
            if not record.complete:
                continue
            try:
                referenced |= self._load_manifest(record).referenced_keys()
            except CheckpointCorruptError:
                continue  # a corrupt kept checkpoint protects nothing; restore skips it anyway
        objects = self.objects.list_objects(task_prefix(workflow_id, task_id))
        doomed = objects_to_delete(workflow_id, task_id, objects, plan, referenced, now, policy.pending_grace_seconds)
        if dry_run:
            return plan, len(doomed)
        deleted = self.objects.delete_keys(doomed)
        latest = self.table.latest_sequence(workflow_id, task_id)
        for sequence in plan.delete + plan.abandoned:
            self.table.delete_record(workflow_id, task_id, sequence)
        # The pointer stays while any checkpoint remains (readers walk below it, it never moves back);
        # it goes with the last one, conditionally, in case a writer registered a new one meanwhile.
        if latest is not None and not plan.keep:
            self.table.delete_latest_if(workflow_id, task_id, latest)
        return plan, deleted

    def cleanup(
        self,
        policy: RetentionPolicy,
        workflow_id: str | None = None,
        task_id: str | None = None,
        dry_run: bool = False,
    ) -> CleanupReport:
        report = CleanupReport()
        workflows = [workflow_id] if workflow_id else self.workflow_ids()
        for workflow in workflows:
            tasks = [task_id] if task_id else self.task_ids(workflow)
            for task in tasks:
                plan, deleted = self.cleanup_task(workflow, task, policy, dry_run=dry_run)
                report.tasks += 1
                report.deleted_checkpoints += len(plan.delete)
                report.abandoned_uploads += len(plan.abandoned)
                report.kept_checkpoints += len(plan.keep)
                report.deleted_objects += deleted
                if plan.delete or plan.abandoned:
                    report.deleted_sequences[f"{workflow}/{task}"] = sorted(plan.delete + plan.abandoned)
        return report
