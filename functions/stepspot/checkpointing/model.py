"""Checkpoints: key grammar, manifest, upload planning, retention and the interval rule (pure).

Nothing here imports boto3 or reads the environment, so the in-container agent can use it in any image
(standard library only). The store that moves bytes lives in ``store.py`` and talks to AWS
through the adapters in ``aws/objects.py`` (S3) and ``aws/table.py`` (DynamoDB).

Layout (docs/contracts.md):

* S3 ``checkpoints/<workflow>/<task>/<sequence>/manifest.json`` plus
  ``checkpoints/<workflow>/<task>/<sequence>/files/<relative path>`` for the files first uploaded in
  that sequence. ``<sequence>`` is the 12-digit zero-padded number so keys sort like numbers.
* DynamoDB ``pk = <workflow>#<task>``, ``sk = SEQ#<12 digits>`` per checkpoint (``status`` PENDING while
  the upload runs, COMPLETE once the manifest is written) and ``sk = LATEST`` for the pointer.

Incremental uploads reuse by hash: a file whose sha256 equals an entry of the previous manifest is not
sent again; the new manifest points at the object the earlier sequence uploaded. Retention therefore
deletes only objects that no kept manifest references.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stepspot.state_keys import checkpoint_pk

MANIFEST_FORMAT = 1
SEQUENCE_DIGITS = 12  # of the SEQ# sort keys and S3 prefixes: zero-padded, so they sort by number
MAX_SEQUENCE = 10**SEQUENCE_DIGITS - 1
SEQUENCE_SK_PREFIX = "SEQ#"
LATEST_SK = "LATEST"
CHECKPOINTS_ROOT = "checkpoints/"
MANIFEST_NAME = "manifest.json"
FILES_DIR = "files/"
# Files the agent itself writes into the checkpoint directory (restore staging); never checkpointed.
AGENT_PRIVATE_PREFIX = ".stepspot-"

# The SEQ# item's status attribute and its values: PENDING while uploading, COMPLETE once the manifest is written.
STATUS_FIELD = "status"
SEQUENCE_FIELD = "sequence"  # on SEQ# items and on the LATEST pointer
CREATED_EPOCH_FIELD = "created_epoch"
CREATED_AT_FIELD = "created_at"
STATUS_PENDING = "PENDING"
STATUS_COMPLETE = "COMPLETE"

_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,80}$")

__all__ = [
    "LATEST_SK",
    "CheckpointRecord",
    "FileEntry",
    "Manifest",
    "ManifestError",
    "RetentionPlan",
    "UploadPlan",
    "checkpoint_pk",
    "manifest_key",
    "plan_retention",
    "plan_upload",
    "young_daly_interval",
]


class ManifestError(ValueError):
    """Indicates that a manifest document is malformed (not JSON, wrong format, bad entries)."""


def validate_id(kind: str, value: str) -> str:
    """Return ``value`` if it is safe in S3 keys and DynamoDB keys, else raise ValueError with the fix."""
    if not _ID_PATTERN.match(value):
        raise ValueError(f"{kind} {value!r} is not valid: use 1-80 characters from letters, digits, '-' and '_'.")
    return value


def sequence_sk(sequence: int) -> str:
    if sequence < 1 or sequence > MAX_SEQUENCE:
        raise ValueError(f"checkpoint sequence {sequence} is outside 1..{MAX_SEQUENCE}")
    return f"{SEQUENCE_SK_PREFIX}{sequence:0{SEQUENCE_DIGITS}d}"


def sequence_from_sk(sk: str) -> int:
    if not sk.startswith(SEQUENCE_SK_PREFIX):
        raise ValueError(f"not a checkpoint sequence sort key: {sk!r}")
    return int(sk[len(SEQUENCE_SK_PREFIX) :])


def task_prefix(workflow_id: str, task_id: str) -> str:
    return f"{CHECKPOINTS_ROOT}{workflow_id}/{task_id}/"


def sequence_prefix(workflow_id: str, task_id: str, sequence: int) -> str:
    return f"{task_prefix(workflow_id, task_id)}{sequence:0{SEQUENCE_DIGITS}d}/"


def manifest_key(workflow_id: str, task_id: str, sequence: int) -> str:
    return sequence_prefix(workflow_id, task_id, sequence) + MANIFEST_NAME


def file_key(workflow_id: str, task_id: str, sequence: int, relative_path: str) -> str:
    return sequence_prefix(workflow_id, task_id, sequence) + FILES_DIR + relative_path


def sequence_of_key(workflow_id: str, task_id: str, key: str) -> int | None:
    """The sequence whose prefix holds ``key``, or None for keys outside any sequence prefix."""
    prefix = task_prefix(workflow_id, task_id)
    if not key.startswith(prefix):
        return None
    head = key[len(prefix) :].split("/", 1)[0]
    return int(head) if head.isdigit() and len(head) == SEQUENCE_DIGITS else None


def s3_uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def is_safe_relative_path(path: str) -> bool:
    """True for a POSIX relative path that cannot escape the checkpoint directory when restored."""
    if not path or path.startswith("/") or "\\" in path or "\x00" in path:
        return False
    parts = path.split("/")
    return all(part not in ("", ".", "..") for part in parts)


# --------------------------------------------------------------------------------------------------
# Manifest
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileEntry:
    """One file of a checkpoint: where it goes, what it holds and which S3 object has the bytes."""

    path: str
    size: int
    sha256: str
    key: str
    mode: int = 0o644

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256, "key": self.key, "mode": self.mode}


@dataclass(frozen=True)
class Manifest:
    """The list of files that make one checkpoint; written after every file is uploaded."""

    workflow_id: str
    task_id: str
    sequence: int
    created_at: str
    files: tuple[FileEntry, ...]
    uploaded_bytes: int = 0

    @property
    def total_bytes(self) -> int:
        return sum(entry.size for entry in self.files)

    def referenced_keys(self) -> set[str]:
        return {entry.key for entry in self.files}

    def to_json(self) -> bytes:
        document = {
            "format": MANIFEST_FORMAT,
            "workflow_id": self.workflow_id,
            "task_id": self.task_id,
            "sequence": self.sequence,
            "created_at": self.created_at,
            "total_bytes": self.total_bytes,
            "uploaded_bytes": self.uploaded_bytes,
            "files": [entry.to_dict() for entry in sorted(self.files, key=lambda e: e.path)],
        }
        return json.dumps(document, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"manifest is not JSON: {exc}") from exc
        if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
            raise ManifestError(f"manifest format is not {MANIFEST_FORMAT}")
        try:
            files = tuple(
                FileEntry(
                    path=str(item["path"]),
                    size=int(item["size"]),
                    sha256=str(item["sha256"]),
                    key=str(item["key"]),
                    mode=int(item.get("mode", 0o644)),
                )
                for item in document["files"]
            )
            manifest = cls(
                workflow_id=str(document["workflow_id"]),
                task_id=str(document["task_id"]),
                sequence=int(document["sequence"]),
                created_at=str(document["created_at"]),
                files=files,
                uploaded_bytes=int(document.get("uploaded_bytes", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"manifest entry is malformed: {exc!r}") from exc
        unsafe = [entry.path for entry in files if not is_safe_relative_path(entry.path)]
        if unsafe:
            raise ManifestError(f"manifest lists unsafe paths: {unsafe[:3]}")
        return manifest


# --------------------------------------------------------------------------------------------------
# Upload planning (incremental: reuse by hash from the previous manifest)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScannedFile:
    """A regular file found in the checkpoint directory, hashed by the scanner."""

    path: str
    size: int
    sha256: str
    mode: int = 0o644


@dataclass(frozen=True)
class UploadPlan:
    """What a save must send: ``to_upload`` files get new objects, ``reused`` point at existing ones."""

    to_upload: tuple[ScannedFile, ...]
    reused: tuple[FileEntry, ...]

    @property
    def upload_bytes(self) -> int:
        return sum(item.size for item in self.to_upload)


def plan_upload(scanned: Iterable[ScannedFile], previous: Manifest | None) -> UploadPlan:
    """Split the scanned files into new uploads and entries reusing an object of ``previous``.

    Reuse is by content (sha256 and size), not by path, so a renamed or copied file is not re-sent.
    """
    by_content: dict[tuple[str, int], str] = {}
    if previous is not None:
        for entry in previous.files:
            by_content.setdefault((entry.sha256, entry.size), entry.key)
    to_upload: list[ScannedFile] = []
    reused: list[FileEntry] = []
    for item in sorted(scanned, key=lambda f: f.path):
        key = by_content.get((item.sha256, item.size))
        if key is None:
            to_upload.append(item)
        else:
            reused.append(FileEntry(item.path, item.size, item.sha256, key, item.mode))
    return UploadPlan(tuple(to_upload), tuple(reused))


def same_content(scanned: Iterable[ScannedFile], manifest: Manifest | None) -> bool:
    """True when the directory holds exactly the files of ``manifest`` (nothing new to checkpoint)."""
    if manifest is None:
        return False
    current = {(f.path, f.size, f.sha256) for f in scanned}
    return current == {(e.path, e.size, e.sha256) for e in manifest.files}


# --------------------------------------------------------------------------------------------------
# Records and retention
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointRecord:
    """A checkpoint's DynamoDB item in domain form."""

    workflow_id: str
    task_id: str
    sequence: int
    status: str
    created_epoch: float
    created_at: str
    writer: str = ""
    request_key: str = ""
    manifest_sha256: str = ""
    file_count: int = 0
    total_bytes: int = 0
    uploaded_bytes: int = 0

    @property
    def complete(self) -> bool:
        return self.status == STATUS_COMPLETE

    @property
    def manifest_key(self) -> str:
        return manifest_key(self.workflow_id, self.task_id, self.sequence)

    def summary(self, bucket: str, latest_sequence: int | None) -> dict[str, Any]:
        return {
            "workflow_id": self.workflow_id,
            "task_id": self.task_id,
            "sequence": self.sequence,
            "status": self.status,
            "created_at": self.created_at,
            "file_count": self.file_count,
            "total_bytes": self.total_bytes,
            "uploaded_bytes": self.uploaded_bytes,
            "uri": s3_uri(bucket, self.manifest_key),
            "latest": self.sequence == latest_sequence,
        }


@dataclass(frozen=True)
class RetentionPolicy:
    """Keep the newest ``keep_last`` complete checkpoints; delete any older than ``retention_days``.

    ``pending_grace_seconds`` protects uploads in flight: an unfinished (PENDING) checkpoint or an
    unregistered object younger than this is left alone.
    """

    keep_last: int
    retention_days: float
    pending_grace_seconds: float = 6 * 3600

    def __post_init__(self) -> None:
        if self.keep_last < 1:
            raise ValueError("keep_last must be at least 1 so a running task keeps its resume point")
        if self.retention_days <= 0:
            raise ValueError("retention_days must be greater than 0")


@dataclass(frozen=True)
class RetentionPlan:
    """Which sequences of one task to delete and which to keep."""

    delete: tuple[int, ...]
    keep: tuple[int, ...]
    abandoned: tuple[int, ...] = field(default=())  # PENDING reservations past the grace period


def plan_retention(records: Sequence[CheckpointRecord], policy: RetentionPolicy, now: float) -> RetentionPlan:
    """Decide which checkpoints of one task go: past the newest ``keep_last`` or older than the days."""
    max_age = policy.retention_days * 86400
    complete = sorted((r for r in records if r.complete), key=lambda r: r.sequence, reverse=True)
    delete: list[int] = []
    keep: list[int] = []
    for rank, record in enumerate(complete):
        if rank >= policy.keep_last or now - record.created_epoch > max_age:
            delete.append(record.sequence)
        else:
            keep.append(record.sequence)
    abandoned: list[int] = []
    for record in records:
        if record.complete:
            continue
        if now - record.created_epoch > policy.pending_grace_seconds:
            abandoned.append(record.sequence)
        else:
            keep.append(record.sequence)
    return RetentionPlan(tuple(sorted(delete)), tuple(sorted(keep)), tuple(sorted(abandoned)))


def objects_to_delete(
    workflow_id: str,
    task_id: str,
    objects: Mapping[str, float],
    plan: RetentionPlan,
    referenced: set[str],
    now: float,
    grace_seconds: float,
) -> list[str]:
    """Keys (``objects`` maps key -> last-modified epoch) that no kept checkpoint needs.

    An object goes when no kept manifest references it and its sequence is not kept, and either its
    sequence is being deleted now or it is older than the grace period (an unregistered leftover of a
    crashed upload; a young one may belong to a writer that reserved its sequence after we looked).
    """
    kept = set(plan.keep)
    doomed = set(plan.delete) | set(plan.abandoned)
    result: list[str] = []
    for key, modified in objects.items():
        if key in referenced:
            continue
        sequence = sequence_of_key(workflow_id, task_id, key)
        if sequence is not None and sequence in kept:
            continue
        if (sequence is not None and sequence in doomed) or now - modified > grace_seconds:
            result.append(key)
    return sorted(result)


# --------------------------------------------------------------------------------------------------
# Checkpoint interval
# --------------------------------------------------------------------------------------------------

MIN_INTERVAL_SECONDS = 5.0
MAX_INTERVAL_SECONDS = 6 * 3600.0


def young_daly_interval(
    checkpoint_seconds: float,
    mean_time_between_interruptions: float,
    floor: float = MIN_INTERVAL_SECONDS,
    ceiling: float = MAX_INTERVAL_SECONDS,
) -> float:
    """Young/Daly optimal period ``sqrt(2*C*M)`` for checkpoint cost C and mean time to interruption M.

    Clamped to [floor, ceiling]: a near-free checkpoint must not turn into a busy loop, and a very
    long period would waste hours of work when the notice is missed.
    """
    if checkpoint_seconds < 0 or mean_time_between_interruptions <= 0:
        raise ValueError("checkpoint cost must be >= 0 and the mean time between interruptions > 0")
    period = math.sqrt(2.0 * checkpoint_seconds * mean_time_between_interruptions)
    return min(max(period, floor), ceiling)


def parse_interval(value: str) -> float | None:
    """``"auto"`` -> None (Young/Daly), a positive number of seconds -> that number; else ValueError."""
    text = value.strip().lower()
    if text == "auto":
        return None
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"checkpoint interval {value!r} is neither a number of seconds nor 'auto'") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"checkpoint interval {value!r} must be a positive number of seconds or 'auto'")
    return seconds
