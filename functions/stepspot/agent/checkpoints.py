"""The agent's checkpoint side: the store's AWS wiring, restore at start, saves, and the interval rule.

boto3 is imported lazily so ``--help`` and usage errors do not pay for it.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

from stepspot.agent.settings import (
    EXIT_ACCESS_DENIED,
    EXIT_INTERNAL,
    EXIT_STORE_MISSING,
    EXIT_STORE_UNAVAILABLE,
    EXIT_UNKNOWN_WORKFLOW,
    EXIT_USAGE,
    AgentExit,
    AgentSettings,
)
from stepspot.checkpointing.files import DirectoryScanner
from stepspot.checkpointing.model import (
    MAX_INTERVAL_SECONDS,
    MIN_INTERVAL_SECONDS,
    Manifest,
    task_prefix,
    young_daly_interval,
)
from stepspot.checkpointing.store import CheckpointStore, SaveResult
from stepspot.errors import (
    AwsAccessDeniedError,
    AwsResourceNotFoundError,
    CheckpointStoreUnavailable,
    StepspotError,
    WorkflowNotFoundError,
)
from stepspot.log_events import CHECKPOINT_FAILED_EVENT, EVENT_FIELD

AUTO_FIRST_CHECKPOINT_SECONDS = 60.0  # 'auto' needs one measured upload before Young/Daly applies

log = logging.getLogger("stepspot.agent")


def aws_clients(settings: AgentSettings) -> tuple[Any, Any]:
    """(s3, dynamodb) clients for the agent: standard retries, a connection pool for parallel transfers."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import NoRegionError

    from stepspot import call_log

    call_log.install_from_env(default_principal="job")  # the test suite's IAM evaluation; off on AWS
    config = Config(
        retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60, max_pool_connections=32
    )
    session = boto3.session.Session(region_name=settings.region)
    try:
        s3 = session.client("s3", endpoint_url=settings.endpoint_url, config=config)
        ddb = session.client("dynamodb", endpoint_url=settings.endpoint_url, config=config)
    except NoRegionError:
        raise AgentExit(EXIT_USAGE, "No AWS region is set: set AWS_REGION or pass --region.") from None
    return s3, ddb


def check_workflow(settings: AgentSettings, ddb: Any) -> None:
    from stepspot.checkpointing.aws.table import WorkflowRegistry

    if settings.state_table and not WorkflowRegistry(ddb, settings.state_table).exists(settings.workflow_id):
        raise WorkflowNotFoundError(
            f"Workflow {settings.workflow_id!r} is unknown to state table {settings.state_table!r}: "
            "check STEPSPOT_WORKFLOW_ID (or --workflow-id) against `stepspot` output."
        )


def build_store(settings: AgentSettings, s3: Any, ddb: Any) -> CheckpointStore:
    from stepspot.checkpointing.aws.objects import CheckpointObjects
    from stepspot.checkpointing.aws.table import CheckpointTable

    objects = CheckpointObjects(s3, settings.bucket)
    table = CheckpointTable(ddb, settings.table)
    objects.check_bucket(task_prefix(settings.workflow_id, settings.task_id))
    table.latest_sequence(settings.workflow_id, settings.task_id)  # fails fast on a missing table
    return CheckpointStore(objects, table)


def report_checkpoint_failure(settings: AgentSettings, trigger: str, reason: str, stream: TextIO | None = None) -> None:
    """Print the ``checkpoint_failed`` line the job log group's metric filter counts as ``CheckpointsFailed``."""
    line = {
        EVENT_FIELD: CHECKPOINT_FAILED_EVENT,
        "environment": settings.environment,
        "workflow_id": settings.workflow_id,
        "task_id": settings.task_id,
        "trigger": trigger,
        "reason": reason,
    }
    out = stream or sys.stderr
    out.write(json.dumps(line) + "\n")  # one write: the log thread cannot split the line
    out.flush()


def exit_code_for(error: StepspotError) -> int:
    if isinstance(error, WorkflowNotFoundError):
        return EXIT_UNKNOWN_WORKFLOW
    if isinstance(error, AwsResourceNotFoundError):
        return EXIT_STORE_MISSING
    if isinstance(error, AwsAccessDeniedError):
        return EXIT_ACCESS_DENIED
    if isinstance(error, CheckpointStoreUnavailable):
        return EXIT_STORE_UNAVAILABLE
    return EXIT_INTERNAL


def describe(result: SaveResult) -> str:
    if result.record is None:
        return "nothing changed since the last checkpoint"
    return (
        f"checkpoint {result.record.sequence} saved: {len(result.manifest.files) if result.manifest else 0} "
        f"files, {result.uploaded_files} sent ({result.uploaded_bytes} bytes), {result.reused_files} reused, "
        f"{result.seconds:.2f} s"
    )


class Checkpointer:
    """Restores and saves one task's checkpoint directory; remembers the measured cost for 'auto'."""

    def __init__(self, settings: AgentSettings, store: CheckpointStore) -> None:
        self.settings = settings
        self.store = store
        self.scanner = DirectoryScanner(settings.directory)
        self.manifest: Manifest | None = None
        self.cost: float | None = None
        self.restore_seconds: float | None = None
        self.last_saved_epoch: float | None = None  # scan start of the last save that made a new checkpoint
        self.mtbi, self.mtbi_source = settings.mtbi, "set" if settings.mtbi_explicit else "fixed"
        self._logged_interval: float | None = None

    @property
    def has_content(self) -> bool:
        """True when the last checkpoint restored or saved holds at least one file."""
        return self.manifest is not None and bool(self.manifest.files)

    def restore(self) -> int | None:
        s = self.settings
        result = self.store.restore(s.workflow_id, s.task_id, s.directory, scanner=self.scanner)
        for skipped in result.skipped:
            log.warning("skipped corrupt checkpoint %d: %s", skipped.sequence, skipped.reason)
        if result.found is None:
            log.info("no checkpoint to restore for %s/%s: starting fresh", s.workflow_id, s.task_id)
            return None
        self.manifest = result.found.manifest
        self.restore_seconds = result.seconds
        log.info(
            "restored checkpoint %d (%d files, %d bytes) in %.2f s",
            result.found.record.sequence,
            len(self.manifest.files),
            result.restored_bytes,
            result.seconds,
        )
        return result.found.record.sequence

    def save(self, why: str) -> SaveResult | None:
        s = self.settings
        scanned_at = time.time()
        try:
            scanned = self.scanner.scan()
            result = self.store.save(s.workflow_id, s.task_id, scanned, s.directory, previous=self.manifest)
        except StepspotError as exc:
            log.warning("checkpoint (%s) failed, will try again: %s", why, exc.message)
            report_checkpoint_failure(s, why, exc.message)
            return None
        except OSError as exc:
            log.warning("checkpoint (%s) could not read the directory: %s", why, exc)
            report_checkpoint_failure(s, why, f"could not read the checkpoint directory: {exc}")
            return None
        if result.manifest is not None:
            self.manifest = result.manifest
        if result.record is not None:
            self.last_saved_epoch = scanned_at
        if result.record is not None and result.uploaded_files:
            measured = result.seconds
            self.cost = measured if self.cost is None else (0.5 * self.cost + 0.5 * measured)
        log.info("%s (%s)", describe(result), why)
        return result

    def next_interval(self) -> float:
        scale = self.settings.time_scale  # 1 but in local mode: simulated durations become real waits
        if self.settings.interval is not None:
            interval, why = self.settings.interval, "fixed"
        elif self.cost is None:
            interval = AUTO_FIRST_CHECKPOINT_SECONDS / scale
            why = "auto: first checkpoint, to measure its cost"
        else:
            mtbi = self.mtbi / scale
            interval = young_daly_interval(self.cost, mtbi, MIN_INTERVAL_SECONDS / scale, MAX_INTERVAL_SECONDS / scale)
            why = (
                f"auto: Young/Daly sqrt(2 x {self.cost:.2f} s checkpoint x {mtbi:.0f} s MTBI), MTBI {self.mtbi_source}"
            )
        if scale != 1 and self.settings.interval is None:
            why += f"; local time scale {scale:g}"
        previous = self._logged_interval
        if previous is None or abs(interval - previous) > 0.05 * previous:
            log.info("checkpoint interval %.1f s (%s)", interval, why)
            self._logged_interval = interval
        return interval
