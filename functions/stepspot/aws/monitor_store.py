"""DynamoDB adapter of the monitoring handlers: event dedup, job index, notices and status on the state table.

Every write is conditional so that redelivered or out-of-order events change nothing:

- ``EVENT#<source>#<event id>`` / ``DEDUP`` is claimed with a conditional put before an event is
  processed and marked ``DONE`` after; a claim left ``IN_PROGRESS`` by a crashed invocation is taken over
  once its lease expired, and released at once when the handler fails (so EventBridge's retry works).
- Notices are recorded on a task at most once per event id (``notice_event_ids`` string set).
- Job status only moves forward: ``job_status_version`` must grow (see ``stepspot.job_events``).
- Workflow execution status only moves forward: ``execution_status_version`` must grow.

Needs ``dynamodb:GetItem``, ``PutItem``, ``UpdateItem``, ``DeleteItem`` and ``Query`` on the state table and
``dynamodb:Query`` on the checkpoint table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from stepspot.aws.errors import is_condition_failed
from stepspot.aws.errors import translate_client_error as translate
from stepspot.checkpointing.model import MAX_SEQUENCE, STATUS_COMPLETE, STATUS_FIELD, sequence_from_sk, sequence_sk
from stepspot.run_health import run_sk
from stepspot.scheduler import TaskState
from stepspot.state_items import EXPIRES_AT, Event, EventStatus, JobIndexItem
from stepspot.state_items import Task as T
from stepspot.state_items import Workflow as W
from stepspot.state_keys import (
    TASK_SK_PREFIX,
    checkpoint_pk,
    event_dedup_key,
    job_index_key,
    task_key,
    workflow_key,
    workflow_pk,
)

DEDUP_TTL = timedelta(days=7)  # EventBridge retries for at most 24 hours; a week covers replays too
CLAIM_LEASE = timedelta(minutes=15)  # longer than the Lambda timeout: a live claim is never taken over


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class TaskRef:
    workflow_id: str
    task_id: str


@dataclass(frozen=True)
class Notice:
    event_id: str
    kind: str  # "spot_interruption_warning" | "rebalance_recommendation"
    instance_id: str
    instance_action: str | None
    at: datetime
    job_id: str


@dataclass(frozen=True)
class JobStatusWrite:
    job_id: str
    status: str
    status_reason: str | None
    version: str
    at: datetime
    queue_name: str
    queue_kind: str
    attempts: int


@dataclass(frozen=True)
class JobStatusApplied:
    applied: bool  # False: the item holds a newer (or the same) status, or there is no such task
    task_item: Mapping[str, Any] | None  # the task item after this event's writes; None: no task item
    queue_flags: Mapping[str, Any] | None  # the same item when the job's queue kind has a flag, else None


_QUEUE_FLAGS = {"SPOT": T.SPOT_ATTEMPTED, "ON_DEMAND": T.ONDEMAND_ATTEMPTED}  # queue kind -> task flag


class MonitorStore:
    def __init__(self, state_table: Any, checkpoint_table: Any | None = None) -> None:
        self._table = state_table
        self._checkpoints = checkpoint_table

    # -- event dedup ----------------------------------------------------------------------------------

    def claim_event(self, source: str, event_id: str, now: datetime) -> bool:
        """Claim an event for processing; False when it was processed (or is being processed) already."""
        item = {
            **event_dedup_key(source, event_id),
            Event.STATUS: EventStatus.IN_PROGRESS.value,
            Event.CLAIMED_AT: int(now.timestamp()),
            EXPIRES_AT: int((now + DEDUP_TTL).timestamp()),
        }
        try:
            self._table.put_item(
                Item=item,
                ConditionExpression=Attr("pk").not_exists()
                | (
                    Attr(Event.STATUS).eq(EventStatus.IN_PROGRESS.value)
                    & Attr(Event.CLAIMED_AT).lt(int((now - CLAIM_LEASE).timestamp()))
                ),
            )
        except ClientError as exc:
            if is_condition_failed(exc):
                return False
            raise translate(exc, "calling dynamodb:PutItem (event dedup)") from exc
        return True

    def complete_event(self, source: str, event_id: str, outcome: str) -> None:
        self._update(
            event_dedup_key(source, event_id),
            f"SET #s = :done, {Event.OUTCOME} = :outcome",
            {":done": EventStatus.DONE.value, ":outcome": outcome},
            names={"#s": Event.STATUS},
            action="dynamodb:UpdateItem (event dedup)",
        )

    def release_event(self, source: str, event_id: str) -> None:
        """Forget a claim whose processing failed, so the redelivery of the event is processed."""
        try:
            self._table.delete_item(
                Key=event_dedup_key(source, event_id),
                ConditionExpression=Attr(Event.STATUS).eq(EventStatus.IN_PROGRESS.value),
            )
        except ClientError as exc:
            if not is_condition_failed(exc):
                raise translate(exc, "calling dynamodb:DeleteItem (event dedup)") from exc

    # -- job index ------------------------------------------------------------------------------------

    def task_for_job(self, job_id: str) -> TaskRef | None:
        """The task a Batch job belongs to, from the ``JOB#<job id>`` reverse index item."""
        try:
            item = self._table.get_item(Key=job_index_key(job_id)).get("Item")
        except ClientError as exc:
            raise translate(exc, "calling dynamodb:GetItem (job index)") from exc
        found = JobIndexItem.from_item(item)
        return TaskRef(found.workflow_id, found.task_id) if found else None

    # -- Spot notices ---------------------------------------------------------------------------------

    def record_notice(self, task: TaskRef, notice: Notice) -> bool:
        """Record a notice on an existing task item; False if the task is unknown or already has it."""
        counter = T.INTERRUPTIONS if notice.kind == "spot_interruption_warning" else T.REBALANCE_RECOMMENDATIONS
        sets = [
            f"{T.LAST_NOTICE_KIND} = :kind",
            f"{T.LAST_NOTICE_AT} = :at",
            f"{T.LAST_NOTICE_INSTANCE_ID} = :instance",
            f"{T.LAST_NOTICE_JOB_ID} = :job",
        ]
        values: dict[str, Any] = {
            ":kind": notice.kind,
            ":at": _iso(notice.at),
            ":instance": notice.instance_id,
            ":job": notice.job_id,
            ":one": 1,
            ":event": notice.event_id,
            ":events": {notice.event_id},
        }
        if notice.kind == "spot_interruption_warning":
            sets.append(f"{T.LAST_INTERRUPTION_AT} = :at")
            sets.append(f"{T.LAST_INTERRUPTION_ACTION} = :action")
            values[":action"] = notice.instance_action or "terminate"
        expression = f"SET {', '.join(sets)} ADD {counter} :one, {T.NOTICE_EVENT_IDS} :events"
        return (
            self._update(
                task_key(task.workflow_id, task.task_id),
                expression,
                values,
                condition=f"attribute_exists(pk) AND NOT contains({T.NOTICE_EVENT_IDS}, :event)",
                action="dynamodb:UpdateItem (task notice)",
            )
            is not None
        )

    # -- Batch job status -----------------------------------------------------------------------------

    def apply_job_status(self, task: TaskRef, write: JobStatusWrite) -> JobStatusApplied:
        """Write the job status fields unless the item already holds a newer (or the same) status, and mark
        the job's queue kind on the task whatever the order of arrival (``mark_queue_seen``): one UpdateItem
        when the status is newer, the flag alone otherwise."""
        flag = _QUEUE_FLAGS.get(write.queue_kind)
        values: dict[str, Any] = {
            ":job": write.job_id,
            ":status": write.status,
            ":reason": write.status_reason or "",
            ":version": write.version,
            ":at": _iso(write.at),
            ":queue": write.queue_name,
            ":kind": write.queue_kind,
            ":attempts": write.attempts,
        }
        expression = (
            f"SET {T.JOB_ID} = :job, {T.JOB_STATUS} = :status, {T.JOB_STATUS_REASON} = :reason,"
            f" {T.JOB_STATUS_VERSION} = :version, {T.JOB_STATUS_AT} = :at, {T.JOB_QUEUE} = :queue,"
            f" {T.JOB_QUEUE_KIND} = :kind, {T.JOB_ATTEMPTS} = :attempts"
        )
        if flag is not None:
            expression += f", {flag} = :true"
            values[":true"] = True
        item = self._update(
            task_key(task.workflow_id, task.task_id),
            expression,
            values,
            condition=f"attribute_exists(pk) AND (attribute_not_exists({T.JOB_STATUS_VERSION})"
            f" OR {T.JOB_STATUS_VERSION} < :version)",
            action="dynamodb:UpdateItem (task job status)",
            return_values="ALL_NEW",
        )
        if item is not None:
            return JobStatusApplied(True, item, item if flag is not None else None)
        after = self.mark_queue_seen(task, write.queue_kind)
        return JobStatusApplied(False, after, after)

    def task_item(self, task: TaskRef) -> Mapping[str, Any] | None:
        try:
            item = self._table.get_item(Key=task_key(task.workflow_id, task.task_id), ConsistentRead=True)
        except ClientError as exc:
            raise translate(exc, "calling dynamodb:GetItem (task)") from exc
        found: Mapping[str, Any] | None = item.get("Item")
        return found

    def task_exists(self, task: TaskRef) -> bool:
        try:
            item = self._table.get_item(Key=task_key(task.workflow_id, task.task_id), ProjectionExpression="pk")
        except ClientError as exc:
            raise translate(exc, "calling dynamodb:GetItem (task)") from exc
        return "Item" in item

    def mark_queue_seen(self, task: TaskRef, queue_kind: str) -> Mapping[str, Any] | None:
        """Remember that the task had a job on a Spot / On-Demand queue; returns the item after the write."""
        flag = _QUEUE_FLAGS.get(queue_kind)
        if flag is None:
            return None
        return self._update(
            task_key(task.workflow_id, task.task_id),
            f"SET {flag} = :true",
            {":true": True},
            condition="attribute_exists(pk)",
            action="dynamodb:UpdateItem (task queue flag)",
            return_values="ALL_NEW",
        )

    def record_fallback(self, task: TaskRef, at: datetime) -> bool:
        """Mark the task's move from Spot to On-Demand once; True only for the call that marked it."""
        return (
            self._update(
                task_key(task.workflow_id, task.task_id),
                f"SET {T.FALLBACK_RECORDED_AT} = :at",
                {":at": _iso(at), ":true": True},
                condition=f"attribute_exists(pk) AND attribute_not_exists({T.FALLBACK_RECORDED_AT})"
                f" AND {T.SPOT_ATTEMPTED} = :true AND {T.ONDEMAND_ATTEMPTED} = :true",
                action="dynamodb:UpdateItem (task fallback)",
            )
            is not None
        )

    def count_new_checkpoints(self, task: TaskRef, task_item: Mapping[str, Any] | None = None) -> int:
        """Count completed checkpoints registered since the last count and remember the newest one counted.
        ``task_item``: the task item as a write of this event returned it (saves reading it again; the
        count's own write is conditional on the value it read, so an older copy only loses the race)."""
        if self._checkpoints is None:
            return 0
        item = task_item
        if item is None:
            try:
                item = self._table.get_item(
                    Key=task_key(task.workflow_id, task.task_id), ProjectionExpression=T.CHECKPOINTS_COUNTED_SEQ
                ).get("Item")
            except ClientError as exc:
                raise translate(exc, "calling dynamodb:GetItem (task)") from exc
        if item is None:
            return 0
        counted = int(item.get(T.CHECKPOINTS_COUNTED_SEQ, 0))
        low, high = sequence_sk(counted + 1), sequence_sk(MAX_SEQUENCE)
        sequences: list[int] = []
        query: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(checkpoint_pk(task.workflow_id, task.task_id))
            & Key("sk").between(low, high),
            "FilterExpression": Attr(STATUS_FIELD).eq(STATUS_COMPLETE),
            "ProjectionExpression": "sk",
        }
        try:
            while True:
                page = self._checkpoints.query(**query)
                sequences.extend(sequence_from_sk(str(i["sk"])) for i in page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    break
                query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except ClientError as exc:
            raise translate(exc, "calling dynamodb:Query (checkpoint table)") from exc
        if not sequences:
            return 0
        newest = max(sequences)
        moved = self._update(
            task_key(task.workflow_id, task.task_id),
            f"SET {T.CHECKPOINTS_COUNTED_SEQ} = :newest",
            {":newest": newest, ":counted": counted},
            condition=f"attribute_exists(pk) AND (attribute_not_exists({T.CHECKPOINTS_COUNTED_SEQ})"
            f" OR {T.CHECKPOINTS_COUNTED_SEQ} = :counted)",
            action="dynamodb:UpdateItem (task checkpoint count)",
        )
        return len(sequences) if moved is not None else 0  # another invocation counted them first

    def run_record(self, task: TaskRef, job_id: str) -> Mapping[str, Any] | None:
        """The runner's record of one job attempt (stepspot.run_health); a Query, as the role allows."""
        if self._checkpoints is None:
            return None
        try:
            page = self._checkpoints.query(
                KeyConditionExpression=Key("pk").eq(checkpoint_pk(task.workflow_id, task.task_id))
                & Key("sk").eq(run_sk(job_id)),
                ConsistentRead=True,
            )
        except ClientError as exc:
            raise translate(exc, "calling dynamodb:Query (run record)") from exc
        items = page.get("Items", [])
        return items[0] if items else None

    def record_run_health(
        self,
        task: TaskRef,
        job_id: str,
        lost_work_seconds: float | None,
        restore_seconds: float | None,
        checkpoint_empty: bool,
    ) -> bool:
        """Append one job's lost work / restore time to the task item, once per job; True if written now."""
        sets = [f"{T.CHECKPOINT_EMPTY} = :empty"] if checkpoint_empty else []
        values: dict[str, Any] = {":job": job_id, ":jobs": {job_id}}
        if checkpoint_empty:
            values[":empty"] = True
        for name, value in ((T.LOST_WORK_SECONDS, lost_work_seconds), (T.RESTORE_SECONDS, restore_seconds)):
            if value is not None:
                sets.append(f"{name} = list_append(if_not_exists({name}, :none), :{name})")
                values[f":{name}"] = [Decimal(str(value))]
                values[":none"] = []
        if not sets:
            return False
        return (
            self._update(
                task_key(task.workflow_id, task.task_id),
                f"SET {', '.join(sets)} ADD {T.RUN_HEALTH_JOBS} :jobs",
                values,
                condition=f"attribute_exists(pk) AND NOT contains({T.RUN_HEALTH_JOBS}, :job)",
                action="dynamodb:UpdateItem (task run health)",
            )
            is not None
        )

    # -- workflows ------------------------------------------------------------------------------------

    def apply_execution_status(
        self, workflow_id: str, fields: Mapping[str, Any], version: str, terminal_status: str | None
    ) -> Mapping[str, Any] | None:
        """Write execution status fields on the workflow META item if newer; returns the item, or None."""
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":v{i}": value for i, value in enumerate(fields.values())}
        sets = [f"#f{i} = :v{i}" for i in range(len(fields))]
        sets.append(f"{W.EXECUTION_STATUS_VERSION} = :version")
        values[":version"] = version
        if terminal_status is not None:
            names["#status"] = W.STATUS
            values[":status"] = terminal_status
            sets.append("#status = :status")
        return self._update(
            workflow_key(workflow_id),
            "SET " + ", ".join(sets),
            values,
            names=names,
            condition=f"attribute_exists(pk) AND (attribute_not_exists({W.EXECUTION_STATUS_VERSION})"
            f" OR {W.EXECUTION_STATUS_VERSION} < :version)",
            action="dynamodb:UpdateItem (workflow status)",
            return_values="ALL_NEW",
        )

    def workflow(self, workflow_id: str) -> Mapping[str, Any] | None:
        try:
            found: Mapping[str, Any] | None = self._table.get_item(Key=workflow_key(workflow_id)).get("Item")
        except ClientError as exc:
            raise translate(exc, "calling dynamodb:GetItem (workflow)") from exc
        return found

    def failed_tasks(self, workflow_id: str, limit: int = 20) -> list[Mapping[str, Any]]:
        """Task items of the workflow whose task or last job failed (at most ``limit``)."""
        query: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(workflow_pk(workflow_id)) & Key("sk").begins_with(TASK_SK_PREFIX),
            "FilterExpression": Attr(T.STATE).eq(TaskState.FAILED.value) | Attr(T.JOB_STATUS).eq("FAILED"),
        }
        found: list[Mapping[str, Any]] = []
        try:
            while len(found) < limit:
                page = self._table.query(**query)
                found.extend(page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    break
                query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except ClientError as exc:
            raise translate(exc, "calling dynamodb:Query (workflow tasks)") from exc
        return found[:limit]

    # -- helpers --------------------------------------------------------------------------------------

    def _update(
        self,
        key: Mapping[str, str],
        expression: str,
        values: Mapping[str, Any],
        *,
        action: str,
        names: Mapping[str, str] | None = None,
        condition: str | None = None,
        return_values: str = "NONE",
    ) -> Mapping[str, Any] | None:
        """Run one UpdateItem; None when its condition failed, else the returned attributes ({} for NONE)."""
        params: dict[str, Any] = {
            "Key": dict(key),
            "UpdateExpression": expression,
            "ExpressionAttributeValues": dict(values),
            "ReturnValues": return_values,
        }
        if names:
            params["ExpressionAttributeNames"] = dict(names)
        if condition:
            params["ConditionExpression"] = condition
        try:
            response = self._table.update_item(**params)
        except ClientError as exc:
            if is_condition_failed(exc):
                return None
            raise translate(exc, f"calling {action}") from exc
        attributes: Mapping[str, Any] = response.get("Attributes", {})
        return attributes
