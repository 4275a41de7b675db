"""DynamoDB adapter for workflow registration: the workflow META item and one TASK item per task.

Scheduling transitions (decrementing ``remaining_deps``, marking tasks) live with the scheduler; this
module owns creating the items, which must be idempotent because Step Functions may retry ParseWorkflow.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from stepspot.aws.errors import error_code, translate_client_error
from stepspot.errors import FatalError
from stepspot.plan import InitialTaskState
from stepspot.state_keys import task_key, workflow_key


class WorkflowAlreadyExistsError(FatalError):
    """Indicates that a workflow id is already registered with a different plan: choose another id."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class StateTable:
    """Workflow and task items in the state table (docs/contracts.md)."""

    def __init__(self, dynamodb_resource: Any, table_name: str) -> None:
        self._table = dynamodb_resource.Table(table_name)
        self.table_name = table_name

    def get_workflow(self, workflow_id: str) -> dict[str, Any] | None:
        try:
            item = self._table.get_item(Key=workflow_key(workflow_id), ConsistentRead=True).get("Item")
        except ClientError as exc:
            raise translate_client_error(exc, f"reading workflow {workflow_id} from {self.table_name}") from exc
        return dict(item) if item else None

    def register_workflow(self, workflow_meta: dict[str, Any], tasks: list[InitialTaskState], plan_sha256: str) -> bool:
        """Create the task items, then the META item (conditionally). Returns False when the same plan was
        already registered (a retry), raises ``WorkflowAlreadyExistsError`` for a different one."""
        workflow_id = workflow_meta["workflow_id"]
        existing = self.get_workflow(workflow_id)
        if existing is not None:
            return self.same_plan_or_raise(existing, plan_sha256)
        stamp = now_iso()
        try:
            # Task items first, META last: a retry after a partial write rewrites identical task items,
            # and nothing reads the tasks of a workflow whose META item does not exist yet.
            with self._table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
                for task in tasks:
                    batch.put_item(
                        Item={
                            **task_key(workflow_id, task.task_id),
                            "workflow_id": workflow_id,
                            "task_id": task.task_id,
                            "state": task.state,
                            "remaining_deps": task.remaining_deps,
                            "attempts": 0,
                            "interruptions": 0,
                            "created_at": stamp,
                            "updated_at": stamp,
                        }
                    )
            self._table.put_item(
                Item={**workflow_key(workflow_id), **workflow_meta, "plan_sha256": plan_sha256, "created_at": stamp},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":  # a concurrent twin won the race
                raced = self.get_workflow(workflow_id)
                if raced is not None:
                    return self.same_plan_or_raise(raced, plan_sha256)
            raise translate_client_error(exc, f"registering workflow {workflow_id} in {self.table_name}") from exc
        return True

    @staticmethod
    def same_plan_or_raise(existing: dict[str, Any], plan_sha256: str) -> bool:
        """False (nothing to do) when ``existing`` holds this plan; raises when it holds another."""
        if existing.get("plan_sha256") == plan_sha256:
            return False
        workflow_id = existing.get("workflow_id")
        raise WorkflowAlreadyExistsError(
            f"workflow id {workflow_id!r} is already registered with a different definition: "
            "submit with a new workflow id (execution name)",
            workflow_id=workflow_id,
        )
