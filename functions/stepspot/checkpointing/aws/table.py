"""DynamoDB side of the checkpoint store: one item per checkpoint and the LATEST pointer.

Standard library and boto3 only (the in-container agent imports it). The boto3 client is injected.
Every state change is a conditional write, which is what makes racing writers safe:

* ``reserve``: a new ``SEQ#`` item is created PENDING only if that sequence is free;
* ``complete``: PENDING -> COMPLETE only by the writer that reserved it;
* ``advance_latest``: the pointer moves only to a higher sequence, never backwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from stepspot.aws.errors import is_condition_failed
from stepspot.checkpointing.aws.errors import translate
from stepspot.checkpointing.model import (
    CREATED_AT_FIELD,
    CREATED_EPOCH_FIELD,
    LATEST_SK,
    SEQUENCE_FIELD,
    SEQUENCE_SK_PREFIX,
    STATUS_COMPLETE,
    STATUS_FIELD,
    STATUS_PENDING,
    CheckpointRecord,
    checkpoint_pk,
    sequence_sk,
)
from stepspot.run_health import run_sk, stats_key
from stepspot.state_keys import workflow_key

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
# A reservation that is never completed (the writer died) expires by itself after a day.
PENDING_TTL_SECONDS = 24 * 3600
# A job attempt's run record (stepspot.run_health) outlives the workflow's status queries, then expires.
RUN_RECORD_TTL_SECONDS = 30 * 24 * 3600


def _item(values: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in values.items()}


def _key(workflow_id: str, task_id: str, sk: str) -> dict[str, Any]:
    """The key of one of a task's checkpoint-table items (a sequence, LATEST, a run record)."""
    return _item({"pk": checkpoint_pk(workflow_id, task_id), "sk": sk})


def _attribute(value: Any) -> Any:
    """DynamoDB numbers are Decimals: floats are rounded to milliseconds on the way in."""
    return Decimal(str(round(value, 3))) if isinstance(value, float) else value


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}


def _record(values: dict[str, Any]) -> CheckpointRecord:
    return CheckpointRecord(
        workflow_id=str(values["workflow_id"]),
        task_id=str(values["task_id"]),
        sequence=int(values[SEQUENCE_FIELD]),
        status=str(values[STATUS_FIELD]),
        created_epoch=float(values[CREATED_EPOCH_FIELD]),
        created_at=str(values[CREATED_AT_FIELD]),
        writer=str(values.get("writer", "")),
        request_key=str(values.get("request_key", "")),
        manifest_sha256=str(values.get("manifest_sha256", "")),
        file_count=int(values.get("file_count", 0)),
        total_bytes=int(values.get("total_bytes", 0)),
        uploaded_bytes=int(values.get("uploaded_bytes", 0)),
    )


class CheckpointTable:
    """Checkpoint items of ``STEPSPOT_CHECKPOINT_TABLE`` with domain verbs."""

    def __init__(self, client: Any, table: str) -> None:
        self._ddb = client
        self.table = table

    def _fail(self, exc: Exception, action: str) -> Exception:
        return translate(
            exc,
            f"checkpoint table {self.table!r}",
            action,
            "create the table or set STEPSPOT_CHECKPOINT_TABLE to an existing table",
        )

    # ---- reads ---------------------------------------------------------------------------------

    def _conditional(self, action: str, write: Callable[..., Any], **request: Any) -> bool:
        """Run one conditional write: True when it applied, False when its condition did not hold."""
        try:
            write(**request)
        except ClientError as exc:
            if is_condition_failed(exc):
                return False
            raise self._fail(exc, action) from exc
        except BotoCoreError as exc:
            raise self._fail(exc, action) from exc
        return True

    def latest_sequence(self, workflow_id: str, task_id: str) -> int | None:
        """The sequence the LATEST pointer names, or None when nothing was registered yet."""
        try:
            response = self._ddb.get_item(
                TableName=self.table,
                Key=_key(workflow_id, task_id, LATEST_SK),
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "Reading the latest checkpoint") from exc
        item = response.get("Item")
        return int(_plain(item)[SEQUENCE_FIELD]) if item else None

    def records(self, workflow_id: str, task_id: str, upto: int | None = None) -> Iterator[CheckpointRecord]:
        """Checkpoint items, newest first; ``upto`` limits to sequences at or below it."""
        pk = checkpoint_pk(workflow_id, task_id)
        condition = "pk = :pk AND begins_with(sk, :prefix)"
        values: dict[str, Any] = {":pk": pk, ":prefix": SEQUENCE_SK_PREFIX}
        if upto is not None:
            condition = "pk = :pk AND sk BETWEEN :low AND :high"
            values = {":pk": pk, ":low": sequence_sk(1), ":high": sequence_sk(upto)}
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": _item(values),
            "ScanIndexForward": False,
            "ConsistentRead": True,
        }
        while True:
            try:
                response = self._ddb.query(**request)
            except (ClientError, BotoCoreError) as exc:
                raise self._fail(exc, "Listing checkpoints") from exc
            for item in response.get("Items", []):
                yield _record(_plain(item))
            if "LastEvaluatedKey" not in response:
                return
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def highest_sequence(self, workflow_id: str, task_id: str) -> int:
        """The highest sequence ever reserved (pending or complete), 0 for none."""
        try:
            response = self._ddb.query(
                TableName=self.table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues=_item(
                    {":pk": checkpoint_pk(workflow_id, task_id), ":prefix": SEQUENCE_SK_PREFIX}
                ),
                ScanIndexForward=False,
                Limit=1,
                ConsistentRead=True,
                ProjectionExpression="#seq",
                ExpressionAttributeNames={"#seq": SEQUENCE_FIELD},
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "Reading checkpoint sequences") from exc
        items = response.get("Items", [])
        return int(_plain(items[0])[SEQUENCE_FIELD]) if items else 0

    def get(self, workflow_id: str, task_id: str, sequence: int) -> CheckpointRecord | None:
        try:
            response = self._ddb.get_item(
                TableName=self.table,
                Key=_key(workflow_id, task_id, sequence_sk(sequence)),
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "Reading a checkpoint") from exc
        item = response.get("Item")
        return _record(_plain(item)) if item else None

    def find_request(self, workflow_id: str, task_id: str, request_key: str) -> CheckpointRecord | None:
        """The complete checkpoint an earlier call with the same idempotency key created, if any."""
        for record in self.records(workflow_id, task_id):
            if record.request_key == request_key and record.complete:
                return record
        return None

    # ---- writes --------------------------------------------------------------------------------

    def reserve(self, record: CheckpointRecord) -> bool:
        """Create the PENDING item for ``record.sequence``; False if another writer holds that number."""
        values: dict[str, Any] = {
            "pk": checkpoint_pk(record.workflow_id, record.task_id),
            "sk": sequence_sk(record.sequence),
            "workflow_id": record.workflow_id,
            "task_id": record.task_id,
            SEQUENCE_FIELD: record.sequence,
            STATUS_FIELD: STATUS_PENDING,
            "writer": record.writer,
            CREATED_EPOCH_FIELD: int(record.created_epoch),
            CREATED_AT_FIELD: record.created_at,
            "expires_at": int(record.created_epoch) + PENDING_TTL_SECONDS,
        }
        if record.request_key:
            values["request_key"] = record.request_key
        return self._conditional(
            "Reserving a checkpoint sequence",
            self._ddb.put_item,
            TableName=self.table,
            Item=_item(values),
            ConditionExpression="attribute_not_exists(pk)",
        )

    def complete(
        self,
        record: CheckpointRecord,
        manifest_sha256: str,
        file_count: int,
        total_bytes: int,
        uploaded_bytes: int,
    ) -> bool:
        """Mark the reserved item COMPLETE (its manifest is written); False if it is no longer ours."""
        return self._conditional(
            "Completing a checkpoint",
            self._ddb.update_item,
            TableName=self.table,
            Key=_key(record.workflow_id, record.task_id, sequence_sk(record.sequence)),
            UpdateExpression=(
                "SET #status = :complete, manifest_sha256 = :sha, file_count = :count, "
                "total_bytes = :total, uploaded_bytes = :uploaded, completed_epoch = :now "
                "REMOVE expires_at"
            ),
            ConditionExpression="#status = :pending AND writer = :writer",
            ExpressionAttributeNames={"#status": STATUS_FIELD},
            ExpressionAttributeValues=_item(
                {
                    ":complete": STATUS_COMPLETE,
                    ":pending": STATUS_PENDING,
                    ":writer": record.writer,
                    ":sha": manifest_sha256,
                    ":count": file_count,
                    ":total": total_bytes,
                    ":uploaded": uploaded_bytes,
                    ":now": int(time.time()),
                }
            ),
        )

    def advance_latest(self, workflow_id: str, task_id: str, sequence: int) -> bool:
        """Point LATEST at ``sequence`` unless it already names a higher one; True if it moved."""
        return self._conditional(
            "Moving the latest checkpoint pointer",
            self._ddb.update_item,
            TableName=self.table,
            Key=_key(workflow_id, task_id, LATEST_SK),
            UpdateExpression="SET #seq = :seq, updated_epoch = :now, workflow_id = :wf, task_id = :task",
            ConditionExpression="attribute_not_exists(#seq) OR #seq < :seq",
            ExpressionAttributeNames={"#seq": SEQUENCE_FIELD},
            ExpressionAttributeValues=_item(
                {":seq": sequence, ":now": int(time.time()), ":wf": workflow_id, ":task": task_id}
            ),
        )

    def delete_record(self, workflow_id: str, task_id: str, sequence: int) -> None:
        try:
            self._ddb.delete_item(
                TableName=self.table,
                Key=_key(workflow_id, task_id, sequence_sk(sequence)),
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "Deleting a checkpoint") from exc

    def delete_latest_if(self, workflow_id: str, task_id: str, sequence: int) -> bool:
        """Remove the pointer only while it still names ``sequence`` (a writer may have moved it)."""
        return self._conditional(
            "Deleting the latest checkpoint pointer",
            self._ddb.delete_item,
            TableName=self.table,
            Key=_key(workflow_id, task_id, LATEST_SK),
            ConditionExpression="#seq = :seq",
            ExpressionAttributeNames={"#seq": SEQUENCE_FIELD},
            ExpressionAttributeValues=_item({":seq": sequence}),
        )

    # ---- run records and interruption statistics (stepspot.run_health) --------------------------

    def update_run(self, workflow_id: str, task_id: str, job_id: str, fields: Mapping[str, Any]) -> None:
        """SET ``fields`` on the attempt's run record (created by the first call); refreshes its expiry."""
        values = {**fields, "workflow_id": workflow_id, "task_id": task_id, "job_id": job_id}
        values["expires_at"] = int(time.time()) + RUN_RECORD_TTL_SECONDS
        names = {f"#f{i}": name for i, name in enumerate(values)}
        try:
            self._ddb.update_item(
                TableName=self.table,
                Key=_key(workflow_id, task_id, run_sk(job_id)),
                UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(values))),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_item({f":v{i}": _attribute(v) for i, v in enumerate(values.values())}),
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "Writing the run record") from exc

    def add_interruption_exposure(
        self, instance_type: str, availability_zone: str, exposure_seconds: float, notices: int
    ) -> None:
        """Atomically add running time (and notices seen) on one instance type and zone."""
        try:
            self._ddb.update_item(
                TableName=self.table,
                Key=_item(stats_key(instance_type, availability_zone)),
                UpdateExpression="ADD exposure_seconds :exposure, notices :notices",
                ExpressionAttributeValues=_item(
                    {":exposure": _attribute(float(exposure_seconds)), ":notices": int(notices)}
                ),
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "Recording interruption statistics") from exc

    def interruption_stats(self, instance_type: str, availability_zone: str) -> tuple[float, int]:
        """(exposure seconds, notices) observed on one instance type and zone; (0, 0) when none yet."""
        try:
            response = self._ddb.get_item(TableName=self.table, Key=_item(stats_key(instance_type, availability_zone)))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "Reading interruption statistics") from exc
        item = _plain(response.get("Item") or {})
        return float(item.get("exposure_seconds", 0)), int(item.get("notices", 0))


class WorkflowRegistry:
    """Read-only view of the state table: does a workflow exist? (Optional check for bad ids.)"""

    def __init__(self, client: Any, table: str) -> None:
        self._ddb = client
        self.table = table

    def exists(self, workflow_id: str) -> bool:
        try:
            response = self._ddb.get_item(
                TableName=self.table, Key=_item(workflow_key(workflow_id)), ProjectionExpression="pk"
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(
                exc,
                f"state table {self.table!r}",
                f"Reading workflow {workflow_id!r}",
                "create the table or set STEPSPOT_STATE_TABLE to an existing table",
            ) from exc
        return "Item" in response
