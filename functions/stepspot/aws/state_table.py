"""DynamoDB adapter for workflow registration: the workflow META item and one TASK item per task.

Scheduling transitions (decrementing ``remaining_deps``, marking tasks) live with the scheduler; this
module owns creating the items, which must be idempotent because Step Functions may retry ParseWorkflow.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from stepspot.aws.errors import is_condition_failed, translate_client_error
from stepspot.errors import FatalError
from stepspot.plan import InitialTaskState
from stepspot.state_items import UPDATED_AT
from stepspot.state_items import Task as T
from stepspot.state_items import Workflow as W
from stepspot.state_keys import task_key, workflow_key


class WorkflowAlreadyExistsError(FatalError):
    """Indicates that a workflow id is already registered with a different plan: choose another id."""


def now_iso() -> str:
    """The timestamp format of every ``*_at`` attribute of the state table (UTC, milliseconds)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


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
        """Create (or, for a higher ``resubmission`` number, reset) the task items, then write the META item
        conditionally. Returns False when this registration already happened (a retry); raises
        ``WorkflowAlreadyExistsError`` when the id holds a different plan or a newer resubmission."""
        workflow_id = workflow_meta[W.WORKFLOW_ID]
        resubmission = int(workflow_meta.get(W.RESUBMISSION, 0))
        existing = self.get_workflow(workflow_id)
        if existing is not None and not self.is_newer_resubmission(existing, resubmission):
            return self.same_plan_or_raise(existing, plan_sha256, resubmission)
        stamp = now_iso()
        if existing is None:
            condition, values = "attribute_not_exists(pk)", None
        else:  # only move forward: a late retry of an older resubmission must not reset newer progress
            condition = f"attribute_not_exists({W.RESUBMISSION}) OR {W.RESUBMISSION} < :resubmission"
            values = {":resubmission": resubmission}
        try:
            # Task items first, META last: a retry after a partial write rewrites the same task items, and
            # the scheduler reads tasks only after the META item says the registration is complete.
            with self._table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
                for task in tasks:
                    batch.put_item(
                        Item={
                            **task_key(workflow_id, task.task_id),
                            T.WORKFLOW_ID: workflow_id,
                            T.TASK_ID: task.task_id,
                            T.STATE: task.state.value,
                            T.REMAINING_DEPS: task.remaining_deps,
                            T.ATTEMPTS: 0,
                            T.INTERRUPTIONS: 0,
                            T.CREATED_AT: stamp,
                            UPDATED_AT: stamp,
                        }
                    )
            item = {**workflow_key(workflow_id), **workflow_meta, W.PLAN_SHA256: plan_sha256, W.CREATED_AT: stamp}
            extra = {"ExpressionAttributeValues": values} if values else {}
            self._table.put_item(Item=item, ConditionExpression=condition, **extra)
        except ClientError as exc:
            if is_condition_failed(exc):  # a concurrent twin won the race
                raced = self.get_workflow(workflow_id)
                if raced is not None:
                    return self.same_plan_or_raise(raced, plan_sha256, resubmission)
            raise translate_client_error(exc, f"registering workflow {workflow_id} in {self.table_name}") from exc
        return True

    @staticmethod
    def is_newer_resubmission(existing: dict[str, Any], resubmission: int) -> bool:
        return resubmission > int(existing.get(W.RESUBMISSION, 0))

    @staticmethod
    def same_plan_or_raise(existing: dict[str, Any], plan_sha256: str, resubmission: int = 0) -> bool:
        """False (nothing to do) when ``existing`` is this registration; raises when it is another."""
        workflow_id = existing.get(W.WORKFLOW_ID)
        registered = int(existing.get(W.RESUBMISSION, 0))
        if registered > resubmission:
            raise WorkflowAlreadyExistsError(
                f"workflow {workflow_id!r} was already resubmitted as attempt {registered}: "
                f"resubmission {resubmission} is stale; resume it again for a new attempt",
                workflow_id=workflow_id,
            )
        if existing.get(W.PLAN_SHA256) == plan_sha256:
            return False
        raise WorkflowAlreadyExistsError(
            f"workflow id {workflow_id!r} is already registered with a different definition: "
            "submit with a new workflow id (execution name), or resume it with --resubmit",
            workflow_id=workflow_id,
        )
