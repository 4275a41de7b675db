"""Checkpoint manager Lambda: ``save``, ``restore``, ``list``, ``cleanup`` (docs/checkpoints.md).

Called by the task state machine (RestoreCheckpoint), by agent-free callers and by the cleanup schedule.
The job's files are moved by ``stepspot-agent`` inside the container; ``restore`` here only answers
"which checkpoint would a restart use" with a small result that fits in the state payload.

Idempotent under Step Functions retries: ``restore``/``list`` only read; ``cleanup`` converges (a rerun
deletes what is left and nothing more); ``save`` with the same ``idempotency_key`` (or the same content
as the latest checkpoint) returns the existing checkpoint instead of making another.

Metrics (``stepspot.emf``, dimension ``environment`` only, one EMF document per invocation):
``CheckpointsRestored``, ``CheckpointsCorrupt``, ``CheckpointsDeleted``, ``CheckpointBytesUploaded``.
``CheckpointsSaved`` is not counted here: the workflow monitor counts every completed checkpoint (the
agent's and these) once, when the task's job stops.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from stepspot.aws.checkpoint_objects import CheckpointObjects
from stepspot.aws.checkpoint_table import CheckpointTable, WorkflowRegistry
from stepspot.checkpoint_store import CheckpointStore
from stepspot.checkpoints import CheckpointRecord, RetentionPolicy, is_safe_relative_path, s3_uri
from stepspot.emf import MetricBatch
from stepspot.errors import CheckpointRequestInvalid, ConfigurationError, WorkflowNotFoundError
from stepspot.handlers._cache import cold_start
from stepspot.metrics import DEFAULT_NAMESPACE, DIMENSION_ENVIRONMENT, MetricName

# Defaults match the contract, so the module also works when imported before the environment is set.
logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or "checkpoint_manager")

ID_PATTERN = r"^[A-Za-z0-9_-]{1,80}$"
DATA_FILE = "checkpoint.json"


# ---- settings (checked at cold start) ------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    bucket: str
    checkpoint_table: str
    state_table: str
    environment: str
    retention_days: float
    keep_last: int
    namespace: str = DEFAULT_NAMESPACE

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        required = ("STEPSPOT_BUCKET", "STEPSPOT_CHECKPOINT_TABLE", "STEPSPOT_STATE_TABLE", "STEPSPOT_ENVIRONMENT")
        missing = [name for name in required if not env.get(name)]
        if missing:
            raise ConfigurationError(
                f"The checkpoint manager is missing {', '.join(missing)}: set them on the function "
                "(Terraform module 'functions' does).",
                missing=missing,
            )
        try:
            retention_days = float(env.get("STEPSPOT_CHECKPOINT_RETENTION_DAYS") or 7)
            keep_last = int(env.get("STEPSPOT_CHECKPOINT_KEEP_LAST") or 5)
            RetentionPolicy(keep_last=keep_last, retention_days=retention_days)
        except ValueError as exc:
            raise ConfigurationError(
                f"STEPSPOT_CHECKPOINT_RETENTION_DAYS / STEPSPOT_CHECKPOINT_KEEP_LAST are invalid ({exc}): use a "
                "positive number of days and a whole number of checkpoints of at least 1."
            ) from exc
        return cls(
            env["STEPSPOT_BUCKET"],
            env["STEPSPOT_CHECKPOINT_TABLE"],
            env["STEPSPOT_STATE_TABLE"],
            env["STEPSPOT_ENVIRONMENT"],
            retention_days,
            keep_last,
            env.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE,
        )


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    store: CheckpointStore
    workflows: WorkflowRegistry


@cold_start
def runtime() -> Runtime:
    """Settings and clients, built once per container (cold start)."""
    settings = Settings.from_env(os.environ)
    s3 = boto3.client("s3")
    ddb = boto3.client("dynamodb")
    store = CheckpointStore(CheckpointObjects(s3, settings.bucket), CheckpointTable(ddb, settings.checkpoint_table))
    return Runtime(settings, store, WorkflowRegistry(ddb, settings.state_table))


# ---- events --------------------------------------------------------------------------------------

Id = Annotated[str, Field(pattern=ID_PATTERN)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class SaveRequest(_Request):
    """Checkpoint small content without an agent: ``data`` (stored as checkpoint.json) and/or ``files``."""

    action: Literal["save"]
    workflow_id: Id
    task_id: Id
    data: dict[str, Any] | None = None
    files: dict[str, str] | None = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=512)

    @field_validator("files")
    @classmethod
    def _safe_paths(cls, files: dict[str, str] | None) -> dict[str, str] | None:
        unsafe = [path for path in files or {} if not is_safe_relative_path(path) or path.startswith(".stepspot-")]
        if unsafe:
            raise ValueError(f"file paths must be relative and stay inside the checkpoint: {unsafe[:3]}")
        return files

    @model_validator(mode="after")
    def _has_content(self) -> SaveRequest:
        if not self.data and not self.files:
            raise ValueError("save needs 'data' (a JSON object) or 'files' (path -> text)")
        return self


class RestoreRequest(_Request):
    action: Literal["restore"]
    workflow_id: Id
    task_id: Id
    sequence: int | None = Field(default=None, ge=1)


class ListRequest(_Request):
    action: Literal["list"]
    workflow_id: Id
    task_id: Id | None = None
    limit: int = Field(default=100, ge=1, le=1000)


class CleanupRequest(_Request):
    action: Literal["cleanup"]
    workflow_id: Id | None = None
    task_id: Id | None = None
    keep_last: int | None = Field(default=None, ge=1)
    retention_days: float | None = Field(default=None, gt=0)
    dry_run: bool = False

    @model_validator(mode="after")
    def _task_needs_workflow(self) -> CleanupRequest:
        if self.task_id and not self.workflow_id:
            raise ValueError("cleanup of a task_id needs its workflow_id")
        return self


Request = Annotated[SaveRequest | RestoreRequest | ListRequest | CleanupRequest, Field(discriminator="action")]
_request_adapter: TypeAdapter[Any] = TypeAdapter(Request)


def parse_request(event: Any) -> SaveRequest | RestoreRequest | ListRequest | CleanupRequest:
    try:
        return _request_adapter.validate_python(event)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'event'}: {error['msg']}" for error in exc.errors()[:5]
        )
        raise CheckpointRequestInvalid(
            f"Checkpoint manager event is invalid ({problems}): send action save|restore|list|cleanup with "
            "workflow_id and task_id.",
            problems=problems,
        ) from None


# ---- actions -------------------------------------------------------------------------------------


def _require_workflow(rt: Runtime, workflow_id: str) -> None:
    if not rt.workflows.exists(workflow_id):
        raise WorkflowNotFoundError(
            f"Workflow {workflow_id!r} is unknown: check the id (stepspot lists workflows) or submit it first.",
            workflow_id=workflow_id,
        )


def _checkpoint_result(rt: Runtime, record: CheckpointRecord, created: bool) -> dict[str, Any]:
    return {
        "workflow_id": record.workflow_id,
        "task_id": record.task_id,
        "sequence": record.sequence,
        "uri": s3_uri(rt.settings.bucket, record.manifest_key),
        "created": created,
    }


def save(rt: Runtime, request: SaveRequest, metrics: MetricBatch) -> dict[str, Any]:
    _require_workflow(rt, request.workflow_id)
    with tempfile.TemporaryDirectory(prefix="stepspot-save-") as scratch:
        directory = Path(scratch)
        if request.data:
            (directory / DATA_FILE).write_text(json.dumps(request.data, sort_keys=True))
        for relative, text in (request.files or {}).items():
            (directory / relative).parent.mkdir(parents=True, exist_ok=True)
            (directory / relative).write_text(text)
        result = rt.store.save_directory(
            request.workflow_id, request.task_id, directory, request_key=request.idempotency_key or ""
        )
    if result.record is not None and not result.reused_request:
        metrics.add(MetricName.CHECKPOINT_BYTES_UPLOADED, result.uploaded_bytes)
        logger.info("checkpoint saved", extra={"sequence": result.record.sequence})
        return _checkpoint_result(rt, result.record, created=True)
    record = result.record
    if record is None:  # same content as the latest checkpoint: that one is the answer
        found, _ = rt.store.find_latest(request.workflow_id, request.task_id, check_objects=False)
        assert found is not None
        record = found.record
    logger.info("checkpoint already exists", extra={"sequence": record.sequence})
    return _checkpoint_result(rt, record, created=False)


def restore(rt: Runtime, request: RestoreRequest, metrics: MetricBatch) -> dict[str, Any]:
    if request.sequence is not None:
        found = rt.store.get_checkpoint(request.workflow_id, request.task_id, request.sequence)
        skipped: tuple[Any, ...] = ()
    else:
        maybe, skipped = rt.store.find_latest(request.workflow_id, request.task_id)
        if maybe is None:
            if skipped:
                metrics.add(MetricName.CHECKPOINTS_CORRUPT, len(skipped))
            logger.info("no checkpoint to restore", extra={"skipped": [s.sequence for s in skipped]})
            return {
                "found": False,
                "sequence": None,
                "uri": None,
                "created_at": None,
                "skipped": [s.sequence for s in skipped],
            }
        found = maybe
    for item in skipped:
        logger.warning("corrupt checkpoint skipped", extra={"sequence": item.sequence, "reason": item.reason})
    if skipped:
        metrics.add(MetricName.CHECKPOINTS_CORRUPT, len(skipped))
    metrics.add(MetricName.CHECKPOINTS_RESTORED, 1)
    return {
        "found": True,
        "sequence": found.record.sequence,
        "uri": s3_uri(rt.settings.bucket, found.record.manifest_key),
        "created_at": found.record.created_at,
        "skipped": [s.sequence for s in skipped],
    }


def list_checkpoints(rt: Runtime, request: ListRequest) -> dict[str, Any]:
    _require_workflow(rt, request.workflow_id)
    tasks = [request.task_id] if request.task_id else rt.store.task_ids(request.workflow_id)
    summaries: list[dict[str, Any]] = []
    for task in tasks:
        records, latest = rt.store.list(request.workflow_id, task)
        summaries.extend(record.summary(rt.settings.bucket, latest) for record in records)
    return {
        "workflow_id": request.workflow_id,
        "count": len(summaries),
        "truncated": len(summaries) > request.limit,
        "checkpoints": summaries[: request.limit],
    }


def cleanup(rt: Runtime, request: CleanupRequest, metrics: MetricBatch) -> dict[str, Any]:
    policy = RetentionPolicy(
        keep_last=request.keep_last or rt.settings.keep_last,
        retention_days=request.retention_days or rt.settings.retention_days,
    )
    report = rt.store.cleanup(policy, request.workflow_id, request.task_id, dry_run=request.dry_run)
    if not request.dry_run:
        metrics.add(MetricName.CHECKPOINTS_DELETED, report.deleted_checkpoints + report.abandoned_uploads)
    logger.info("checkpoint cleanup", extra={"deleted": report.deleted_sequences, "dry_run": request.dry_run})
    return {
        "dry_run": request.dry_run,
        "keep_last": policy.keep_last,
        "retention_days": policy.retention_days,
        "tasks": report.tasks,
        "deleted_checkpoints": report.deleted_checkpoints,
        "abandoned_uploads": report.abandoned_uploads,
        "deleted_objects": report.deleted_objects,
        "kept_checkpoints": report.kept_checkpoints,
    }


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    rt = runtime()
    # Per invocation, not per container: local mode runs several invocations at once on threads.
    metrics = MetricBatch(rt.settings.namespace, {DIMENSION_ENVIRONMENT: rt.settings.environment})
    try:
        return _dispatch(rt, event, metrics)
    finally:
        metrics.flush()


def _dispatch(rt: Runtime, event: Any, metrics: MetricBatch) -> dict[str, Any]:
    request = parse_request(event)
    logger.append_keys(
        action=request.action, workflow_id=request.workflow_id, task_id=getattr(request, "task_id", None)
    )
    if isinstance(request, SaveRequest):
        return save(rt, request, metrics)
    if isinstance(request, RestoreRequest):
        return restore(rt, request, metrics)
    if isinstance(request, ListRequest):
        return list_checkpoints(rt, request)
    return cleanup(rt, request, metrics)
