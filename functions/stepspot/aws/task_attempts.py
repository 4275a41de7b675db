"""Per-attempt bookkeeping on the task items (attempt manager): where an attempt ran and why it failed.

Both writes are conditional on the attempt number, so a redelivered ChooseCapacity or ClassifyFailure
(Lambda retry, Step Functions retry) counts nothing twice and returns what the first delivery decided.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from stepspot.aws.errors import is_condition_failed, translate_client_error
from stepspot.aws.state_table import now_iso
from stepspot.errors import WorkflowStateMissingError
from stepspot.state_items import UPDATED_AT
from stepspot.state_items import Task as T
from stepspot.state_keys import task_key


class TaskAttempts:
    def __init__(self, dynamodb_resource: Any, table_name: str) -> None:
        self._table = dynamodb_resource.Table(table_name)

    def record_choice(
        self,
        workflow_id: str,
        task_id: str,
        attempt: int,
        queue: str,
        capacity: str,
        fallback: bool,
        base_memory: int = 0,
    ) -> dict[str, Any]:
        """Remember the queue of ``attempt``; the first delivery's choice wins and is returned.
        ``base_memory`` (the task's MiB, kept once) and ``memory_escalations`` give each attempt's memory."""
        try:
            response = self._table.update_item(
                Key=task_key(workflow_id, task_id),
                UpdateExpression=f"SET #attempts = :a, {T.CHOICE_ATTEMPT} = :a, #queue = :q, #capacity = :c, "
                f"{T.BASE_MEMORY} = if_not_exists({T.BASE_MEMORY}, :bm), {UPDATED_AT} = :now ADD {T.FALLBACKS} :f",
                ExpressionAttributeNames={"#attempts": T.ATTEMPTS, "#queue": T.QUEUE, "#capacity": T.CAPACITY},
                ConditionExpression="attribute_exists(pk) AND "
                f"(attribute_not_exists({T.CHOICE_ATTEMPT}) OR {T.CHOICE_ATTEMPT} < :a)",
                ExpressionAttributeValues={
                    ":a": attempt,
                    ":q": queue,
                    ":c": capacity,
                    ":f": 1 if fallback else 0,
                    ":bm": base_memory,
                    ":now": now_iso(),
                },
                ReturnValues="ALL_NEW",
            )
            return dict(response["Attributes"])
        except ClientError as exc:
            if not is_condition_failed(exc):
                raise translate_client_error(exc, f"recording the queue of {task_id}") from exc
        return self._existing(workflow_id, task_id)

    def record_failure(
        self, workflow_id: str, task_id: str, attempt: int, failure_class: str, reason: str, job_id: str | None
    ) -> tuple[dict[str, Any], bool]:
        """Count a failed attempt under its class. Returns the item and whether this call counted it."""
        try:
            response = self._table.update_item(
                Key=task_key(workflow_id, task_id),
                UpdateExpression=f"SET {T.CLASSIFIED_ATTEMPT} = :a, {T.LAST_FAILURE_CLASS} = :c, "
                f"{T.LAST_FAILURE} = :r, {T.LAST_JOB_ID} = :j, {UPDATED_AT} = :now "
                f"ADD {T.FAILURES_PREFIX}{failure_class} :one",
                ConditionExpression="attribute_exists(pk) AND "
                f"(attribute_not_exists({T.CLASSIFIED_ATTEMPT}) OR {T.CLASSIFIED_ATTEMPT} < :a)",
                ExpressionAttributeValues={
                    ":a": attempt,
                    ":c": failure_class,
                    ":r": reason[:1000],
                    ":j": job_id or "",
                    ":one": 1,
                    ":now": now_iso(),
                },
                ReturnValues="ALL_NEW",
            )
            return dict(response["Attributes"]), True
        except ClientError as exc:
            if not is_condition_failed(exc):
                raise translate_client_error(exc, f"recording a failure of {task_id}") from exc
        return self._existing(workflow_id, task_id), False

    def record_next_memory(self, workflow_id: str, task_id: str, attempt: int, memory_mib: int) -> None:
        """Memory of ``attempt`` after an out-of-memory failure; ``memory_escalations`` keeps
        ``[attempt, MiB]`` pairs for status and summaries. Written once per attempt (redeliveries skip)."""
        try:
            self._table.update_item(
                Key=task_key(workflow_id, task_id),
                UpdateExpression=f"SET {T.NEXT_MEMORY} = :m, {T.MEMORY_ATTEMPT} = :a, "
                f"{T.MEMORY_ESCALATIONS} = list_append(if_not_exists({T.MEMORY_ESCALATIONS}, :empty), :pair)",
                ConditionExpression="attribute_exists(pk) AND "
                f"(attribute_not_exists({T.MEMORY_ATTEMPT}) OR {T.MEMORY_ATTEMPT} < :a)",
                ExpressionAttributeValues={
                    ":m": memory_mib,
                    ":a": attempt,
                    ":empty": [],
                    ":pair": [[attempt, memory_mib]],
                },
            )
        except ClientError as exc:
            if not is_condition_failed(exc):
                raise translate_client_error(exc, f"recording the memory of {task_id}") from exc

    def _existing(self, workflow_id: str, task_id: str) -> dict[str, Any]:
        try:
            item = self._table.get_item(Key=task_key(workflow_id, task_id), ConsistentRead=True).get("Item")
        except ClientError as exc:
            raise translate_client_error(exc, f"reading task {task_id}") from exc
        if not item:
            raise WorkflowStateMissingError(
                f"task {task_id} of workflow {workflow_id} has no state item: was the workflow parsed?",
                workflow_id=workflow_id,
                task_id=task_id,
            )
        return dict(item)
