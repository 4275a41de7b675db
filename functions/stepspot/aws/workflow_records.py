"""Read-only view of a workflow's DynamoDB items (state table and checkpoint table) for the CLI.

Item layout: docs/contracts.md ("DynamoDB"). Writers are the Lambdas; the CLI only reads.
"""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from stepspot.aws.cli_errors import aws_call
from stepspot.checkpointing.model import LATEST_SK, SEQUENCE_FIELD, SEQUENCE_SK_PREFIX
from stepspot.run_health import RUN_SK_PREFIX
from stepspot.state_items import SK
from stepspot.state_items import Task as T
from stepspot.state_keys import WORKFLOW_META_SK, checkpoint_pk, is_task_sk, task_id_from_sk, workflow_pk

_deserializer = TypeDeserializer()


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    values = {key: _deserializer.deserialize(value) for key, value in item.items()}
    # DynamoDB numbers come back as Decimal: integers become int, the rest float, for display.
    for key, value in values.items():
        if type(value).__name__ == "Decimal":
            values[key] = int(value) if value == value.to_integral_value() else float(value)
    return values


class WorkflowRecords:
    """Workflow and task items of the state table, checkpoint items of the checkpoint table."""

    def __init__(self, client: Any, state_table: str, checkpoint_table: str) -> None:
        self._client = client
        self._state_table = state_table
        self._checkpoint_table = checkpoint_table

    def workflow_items(self, workflow_id: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """(META item or None, task items sorted by task id) of one workflow."""
        items = self._query(self._state_table, workflow_pk(workflow_id), "read the workflow state")
        meta = next((item for item in items if item[SK] == WORKFLOW_META_SK), None)
        tasks = [{**item, T.TASK_ID: task_id_from_sk(item[SK])} for item in items if is_task_sk(item[SK])]
        return meta, sorted(tasks, key=lambda item: item[T.TASK_ID])

    def checkpoints(self, workflow_id: str, task_id: str) -> tuple[list[dict[str, Any]], int | None]:
        """(checkpoint items ``SEQ#...`` oldest first, sequence the ``LATEST`` pointer names or None)."""
        items, latest, _ = self.checkpoints_and_runs(workflow_id, task_id)
        return items, latest

    def checkpoints_and_runs(
        self, workflow_id: str, task_id: str
    ) -> tuple[list[dict[str, Any]], int | None, list[dict[str, Any]]]:
        """``checkpoints`` plus the runners' run records ``RUN#<job id>`` (stepspot.run_health): one query."""
        items = self._query(self._checkpoint_table, checkpoint_pk(workflow_id, task_id), "read the checkpoints")
        latest = next((item for item in items if item[SK] == LATEST_SK), None)
        latest_sequence = int(latest[SEQUENCE_FIELD]) if latest and SEQUENCE_FIELD in latest else None
        runs = [item for item in items if str(item[SK]).startswith(RUN_SK_PREFIX)]
        return [item for item in items if str(item[SK]).startswith(SEQUENCE_SK_PREFIX)], latest_sequence, runs

    def _query(self, table: str, pk: str, action: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        with aws_call(action):
            paginator = self._client.get_paginator("query")
            for page in paginator.paginate(
                TableName=table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": pk}},
                ConsistentRead=True,
            ):
                items.extend(_plain(item) for item in page.get("Items", []))
        return items
