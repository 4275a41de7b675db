"""The workflow monitor's cost step: price a finished job and add it to its task's ledger.

Where the job ran comes from its container instance (``CostSources``), the last checkpoint it completed
from the checkpoint table, the rest from the job event (``stepspot.cost_events``). A job whose instance
can no longer be described is left out of the ledger with a warning (the caller logs it); AWS errors
propagate so the event is retried.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from stepspot.aws.cost_sources import CostSources, PlacementUnknownError
from stepspot.aws.cost_store import CostStore
from stepspot.aws.errors import translate_client_error as translate
from stepspot.checkpointing.model import CREATED_EPOCH_FIELD, SEQUENCE_SK_PREFIX, STATUS_COMPLETE, STATUS_FIELD
from stepspot.cost import AttemptRecord, InstanceType, LedgerEntry, build_ledger, unplaced_entry
from stepspot.cost_events import attempt_record, container_instance_arn
from stepspot.events import BatchJobDetail
from stepspot.state_keys import checkpoint_pk


@dataclass(frozen=True)
class CostOutcome:
    entry: LedgerEntry | None
    recorded: bool
    skipped_because: str = ""


class CostRecorder:
    def __init__(self, store: CostStore, sources: CostSources, checkpoint_table: Any | None) -> None:
        self.store = store
        self.sources = sources
        self._checkpoints = checkpoint_table

    def record(self, workflow_id: str, task_id: str, detail: BatchJobDetail, spot: bool, fallback: bool) -> CostOutcome:
        arn = container_instance_arn(detail)
        record = attempt_record(detail, task_id, spot, fallback, None)
        if not arn and record.started_at is None:
            entry = unplaced_entry(record)  # never started: it cost nothing, but the timeline shows it
            return CostOutcome(entry, self.store.record(workflow_id, entry))
        if not arn or ":container-instance/" not in arn:
            return CostOutcome(None, False, f"the job names no ECS container instance ARN ({arn or 'none'})")
        try:
            placement = self.sources.placement(arn)
        except PlacementUnknownError as exc:
            return CostOutcome(None, False, exc.message)
        record = replace(record, last_checkpoint_at=self._last_checkpoint(workflow_id, task_id, record))
        try:
            [entry] = build_ledger([record], lambda _: placement, _Prices(self.sources), self.sources.spot_price)
        except PlacementUnknownError as exc:
            return CostOutcome(None, False, exc.message)
        return CostOutcome(entry, self.store.record(workflow_id, entry))

    def _last_checkpoint(self, workflow_id: str, task_id: str, record: AttemptRecord) -> float | None:
        if self._checkpoints is None or record.started_at is None or record.stopped_at is None:
            return None
        query: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(checkpoint_pk(workflow_id, task_id))
            & Key("sk").begins_with(SEQUENCE_SK_PREFIX),
            "FilterExpression": Attr(STATUS_FIELD).eq(STATUS_COMPLETE)
            & Attr(CREATED_EPOCH_FIELD).between(int(record.started_at), int(record.stopped_at) + 1),
            "ProjectionExpression": CREATED_EPOCH_FIELD,
        }
        newest: float | None = None
        try:
            while True:
                page = self._checkpoints.query(**query)
                for item in page.get("Items", []):
                    at = float(item[CREATED_EPOCH_FIELD])
                    newest = at if newest is None else max(newest, at)
                if "LastEvaluatedKey" not in page:
                    return newest
                query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except ClientError as exc:
            raise translate(exc, "calling dynamodb:Query (checkpoint table)") from exc


class _Prices:
    """The price table with the instance types EC2 describes added (``build_ledger`` looks types up)."""

    def __init__(self, sources: CostSources) -> None:
        self._sources = sources

    def instance(self, name: str) -> InstanceType:
        return self._sources.instance_type(name)
