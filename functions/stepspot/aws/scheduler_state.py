"""DynamoDB adapter of the scheduler: task transitions and workflow counters with conditional writes.

Every transition is one conditional write (or one transaction) keyed on the current state, which is
what makes duplicated and reordered deliveries harmless (see ``stepspot.scheduler``). Items are those
of docs/contracts.md; the workflow META item gains ``running`` (slots in use) and ``task_token``.
"""

from __future__ import annotations

import time
from typing import Any

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from stepspot.aws.conditional_writes import WriteResult, conditional_write
from stepspot.aws.errors import translate_client_error
from stepspot.aws.state_table import now_iso
from stepspot.errors import WorkflowStateMissingError
from stepspot.scheduler import PlanView, StartOutcome, TaskState, WorkflowCounters, WorkflowStatus
from stepspot.state_keys import (
    TASK_SK_PREFIX,
    dependency_key,
    ready_key,
    ready_pk,
    task_key,
    workflow_key,
    workflow_pk,
)


class SchedulerState:
    """Implements ``stepspot.scheduler.SchedulerStore`` on the state table."""

    def __init__(self, dynamodb_resource: Any, table_name: str) -> None:
        self._table = dynamodb_resource.Table(table_name)
        self._client = dynamodb_resource.meta.client  # high-level types: the resource's serializer applies
        self.table_name = table_name

    # -- workflow ---------------------------------------------------------------------------------

    def begin(self, workflow_id: str, task_token: str) -> WorkflowCounters:
        """Store the callback token (a redelivery stores its newer token), then PARSED -> RUNNING.
        A workflow that already finished keeps its outcome."""
        registered = conditional_write(
            lambda: self._table.update_item(
                Key=workflow_key(workflow_id),
                UpdateExpression="SET task_token = :t, started_at = if_not_exists(started_at, :now), "
                "#r = if_not_exists(#r, :zero), skipped = if_not_exists(skipped, :zero), "
                "ready_count = if_not_exists(ready_count, :zero), updated_at = :now",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#r": "running"},
                ExpressionAttributeValues={":t": task_token, ":now": now_iso(), ":zero": 0},
            ),
            f"starting workflow {workflow_id}",
        )
        if not registered.applied:
            raise WorkflowStateMissingError(
                f"workflow {workflow_id} is not registered in {self.table_name}: run ParseWorkflow first",
                workflow_id=workflow_id,
            )
        self._conditional_update(
            workflow_key(workflow_id),
            "SET #s = :running",
            "#s = :parsed",
            {"#s": "status"},
            {":running": WorkflowStatus.RUNNING.value, ":parsed": "PARSED"},
            f"starting workflow {workflow_id}",
        )
        return self.counters(workflow_id)

    def reset_unfinished(self, workflow_id: str, plan: PlanView) -> None:
        """Redrive: every task that did not succeed becomes PENDING again (dependencies recounted from
        the tasks that did), the counters are recomputed and the run tag moves on. Task ids come from
        the task items; the plan is asked only for the dependencies of the unfinished ones."""
        items = {str(i["task_id"]): i for i in self._query(workflow_id, TASK_SK_PREFIX)}
        succeeded = {t for t, i in items.items() if i.get("state") == TaskState.SUCCEEDED}
        # The next run has a new run tag: its dependency markers start afresh, and parents that
        # succeeded are not run again, so they count as done right away.
        unfinished = plan.remaining_dependencies((t for t in items if t not in succeeded), succeeded)
        for task_id, remaining in unfinished.items():
            self._table.update_item(
                Key=task_key(workflow_id, task_id),
                UpdateExpression="SET #st = :pending, remaining_deps = :remaining, updated_at = :now "
                "REMOVE execution_arn, execution_name",
                ExpressionAttributeNames={"#st": "state"},
                ExpressionAttributeValues={
                    ":pending": TaskState.PENDING.value,
                    ":remaining": remaining,
                    ":now": now_iso(),
                },
            )
            self._table.delete_item(Key=ready_key(workflow_id, task_id))
        self._table.update_item(
            Key=workflow_key(workflow_id),
            UpdateExpression="SET #s = :parsed, #r = :zero, failed = :zero, skipped = :zero, ready_count = :zero, "
            "succeeded = :done, redrives = if_not_exists(redrives, :zero) + :one REMOVE failure_detail, finished_at",
            ExpressionAttributeNames={"#s": "status", "#r": "running"},
            ExpressionAttributeValues={":parsed": "PARSED", ":zero": 0, ":one": 1, ":done": len(succeeded)},
        )

    def counters(self, workflow_id: str) -> WorkflowCounters:
        item = self._get(workflow_key(workflow_id))
        if item is None:
            raise WorkflowStateMissingError(
                f"workflow {workflow_id} is not registered in {self.table_name}", workflow_id=workflow_id
            )
        return WorkflowCounters(
            status=str(item.get("status", "PARSED")),
            total=int(item.get("total_tasks", 0)),
            succeeded=int(item.get("succeeded", 0)),
            failed=int(item.get("failed", 0)),
            skipped=int(item.get("skipped", 0)),
            running=int(item.get("running", 0)),
            ready=int(item.get("ready_count", 0)),
            failure_mode=str(item.get("failure_mode", "fail")),
            task_token=item.get("task_token"),
            first_failure=item.get("failure_detail"),
            run_tag=f"{int(item.get('resubmission', 0))}.{int(item.get('redrives', 0))}",
        )

    def complete(self, workflow_id: str, status: WorkflowStatus, detail: str | None = None) -> bool:
        values: dict[str, Any] = {":s": status.value, ":running": WorkflowStatus.RUNNING.value, ":now": now_iso()}
        expression = "SET #s = :s, finished_at = :now"
        if detail:
            expression += ", failure_detail = if_not_exists(failure_detail, :d)"
            values[":d"] = detail[:2000]
        return self._conditional_update(
            workflow_key(workflow_id), expression, "#s = :running", {"#s": "status"}, values, "finishing workflow"
        )

    def mark_failed(self, workflow_id: str, detail: str) -> bool:
        """Abort: any not-yet-final status -> FAILED (the orchestration itself broke)."""
        return self._conditional_update(
            workflow_key(workflow_id),
            "SET #s = :failed, finished_at = :now, failure_detail = if_not_exists(failure_detail, :d)",
            "attribute_exists(pk) AND NOT #s IN (:failed, :succeeded)",
            {"#s": "status"},
            {":failed": "FAILED", ":succeeded": "SUCCEEDED", ":now": now_iso(), ":d": detail[:2000]},
            "aborting workflow",
        )

    # -- tasks ------------------------------------------------------------------------------------

    def initially_ready(self, workflow_id: str) -> list[str]:
        """Tasks to launch at the start: RUNNING ones first (a retried start whose StartExecution call
        failed after the task took its slot: starting an execution by its name again is harmless), then
        PENDING/READY tasks with no unfinished dependency (roots, and tasks whose deps were skipped)."""
        running: list[str] = []
        ready: list[str] = []
        for item in self._query(workflow_id, TASK_SK_PREFIX, projection="sk, #st, remaining_deps"):
            task_id = item["sk"][len(TASK_SK_PREFIX) :]
            if item.get("state") == TaskState.RUNNING:
                running.append(task_id)
            elif item.get("state") in (TaskState.PENDING, TaskState.READY) and int(item.get("remaining_deps", 0)) == 0:
                ready.append(task_id)
        return running + ready

    def resolve_dependency(self, workflow_id: str, task_id: str, parent_id: str, run_tag: str = "0.0") -> int:
        """Decrement ``remaining_deps`` once per (run, parent): the decrement and a marker item for the
        edge are one transaction, so a redelivery finds the marker and changes nothing. (A marker item
        per edge, not a set on the task item: a join of 10,000 tasks must not approach 400 KB.)"""
        self._transact(  # item 0 (the edge's marker) guards: its condition failing means "already counted"
            [
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": {**dependency_key(workflow_id, run_tag, task_id, parent_id), "at": now_iso()},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": task_key(workflow_id, task_id),
                        "UpdateExpression": "SET remaining_deps = remaining_deps - :one, updated_at = :now",
                        "ConditionExpression": "attribute_exists(pk)",
                        "ExpressionAttributeValues": {":one": 1, ":now": now_iso()},
                    }
                },
            ],
            f"resolving a dependency of {task_id}",
        )
        item = self._get(task_key(workflow_id, task_id))
        if item is None:
            raise WorkflowStateMissingError(f"task {task_id} of workflow {workflow_id} has no state item")
        return int(item.get("remaining_deps", 0))

    def try_start(
        self,
        workflow_id: str,
        task_id: str,
        execution_name: str,
        execution_arn: str,
        max_running: int,
        from_ready: bool = False,
    ) -> StartOutcome:
        """PENDING (or, draining, READY) -> RUNNING, taking a slot, in one transaction."""
        now = now_iso()
        source = TaskState.READY if from_ready else TaskState.PENDING
        items = [
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": task_key(workflow_id, task_id),
                    "UpdateExpression": "SET #st = :running, execution_name = :name, execution_arn = :arn, "
                    "started_at = :now, updated_at = :now",
                    "ConditionExpression": "#st = :source AND remaining_deps = :zero",
                    "ExpressionAttributeNames": {"#st": "state"},
                    "ExpressionAttributeValues": {
                        ":running": TaskState.RUNNING.value,
                        ":source": source.value,
                        ":zero": 0,
                        ":name": execution_name,
                        ":arn": execution_arn,
                        ":now": now,
                    },
                }
            },
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": workflow_key(workflow_id),
                    "UpdateExpression": "SET #r = #r + :one"
                    + (", ready_count = ready_count - :one" if from_ready else ""),
                    "ConditionExpression": "#s = :wf_running AND #r < :max",
                    "ExpressionAttributeNames": {"#r": "running", "#s": "status"},
                    "ExpressionAttributeValues": {
                        ":one": 1,
                        ":max": max_running,
                        ":wf_running": WorkflowStatus.RUNNING.value,
                    },
                }
            },
            {"Delete": {"TableName": self.table_name, "Key": ready_key(workflow_id, task_id)}},
        ]
        # Items 0 (the task's state) and 1 (the workflow's slot and status) are guarded: either condition
        # failing decides the outcome below; a conflict or throttling is retried.
        result = self._transact_result(items, f"starting task {task_id}", guarded=(0, 1))
        if result.applied:
            return StartOutcome.STARTED
        task_failed = 0 in result.failed_items
        item = self._get(task_key(workflow_id, task_id)) or {}
        state = item.get("state")
        if state == TaskState.RUNNING:
            return StartOutcome.ALREADY_RUNNING
        if task_failed or state not in (TaskState.PENDING, TaskState.READY) or int(item.get("remaining_deps", 1)):
            return StartOutcome.NOT_STARTABLE
        if state == TaskState.READY:
            return StartOutcome.NO_SLOT  # already parked
        counters = self.counters(workflow_id)
        if counters.status != WorkflowStatus.RUNNING:
            return StartOutcome.NOT_STARTABLE
        self.park(workflow_id, task_id)
        return StartOutcome.NO_SLOT

    def park(self, workflow_id: str, task_id: str) -> None:
        """PENDING (dependencies done) -> READY with a marker, counted in ``ready_count``; idempotent."""
        self._transact(
            [
                {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": task_key(workflow_id, task_id),
                        "UpdateExpression": "SET #st = :ready, updated_at = :now",
                        "ConditionExpression": "#st = :pending AND remaining_deps = :zero",
                        "ExpressionAttributeNames": {"#st": "state"},
                        "ExpressionAttributeValues": {
                            ":ready": TaskState.READY.value,
                            ":pending": TaskState.PENDING.value,
                            ":zero": 0,
                            ":now": now_iso(),
                        },
                    }
                },
                {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": workflow_key(workflow_id),
                        "UpdateExpression": "SET ready_count = if_not_exists(ready_count, :zero) + :one",
                        "ExpressionAttributeValues": {":zero": 0, ":one": 1},
                    }
                },
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": {**ready_key(workflow_id, task_id), "task_id": task_id, "at": time.time_ns()},
                    }
                },
            ],
            f"queueing task {task_id}",
        )

    def ready_tasks(self, workflow_id: str, limit: int) -> list[str]:
        """Up to ``limit`` READY tasks, oldest marker first is not promised: any order keeps dataflow."""
        try:
            page = self._table.query(
                KeyConditionExpression=Key("pk").eq(ready_pk(workflow_id)), ConsistentRead=True, Limit=limit
            )
        except ClientError as exc:
            raise translate_client_error(exc, f"listing READY tasks of workflow {workflow_id}") from exc
        return [str(item["sk"]) for item in page.get("Items", [])]

    def finish(self, workflow_id: str, task_id: str, state: TaskState, detail: str | None = None) -> bool:
        """RUNNING -> SUCCEEDED/FAILED, releasing the slot and counting it, in one transaction."""
        counter = "succeeded" if state == TaskState.SUCCEEDED else "failed"
        task_update = {
            "TableName": self.table_name,
            "Key": task_key(workflow_id, task_id),
            "UpdateExpression": "SET #st = :final, finished_at = :now, updated_at = :now"
            + (", failure_detail = :d" if detail else ""),
            "ConditionExpression": "#st = :running",
            "ExpressionAttributeNames": {"#st": "state"},
            "ExpressionAttributeValues": {
                ":final": state.value,
                ":running": TaskState.RUNNING.value,
                ":now": now_iso(),
                **({":d": detail[:2000]} if detail else {}),
            },
        }
        workflow_update = {
            "TableName": self.table_name,
            "Key": workflow_key(workflow_id),
            "UpdateExpression": f"SET #r = #r - :one, {counter} = {counter} + :one",
            "ExpressionAttributeNames": {"#r": "running"},
            "ExpressionAttributeValues": {":one": 1},
        }
        return self._transact([{"Update": task_update}, {"Update": workflow_update}], f"finishing task {task_id}")

    def skip(self, workflow_id: str, task_id: str, cause: str) -> bool:
        """PENDING/READY -> SKIPPED, counted once (a READY task also gives back its place in the queue)."""
        for source in (TaskState.PENDING, TaskState.READY):
            task_update = {
                "TableName": self.table_name,
                "Key": task_key(workflow_id, task_id),
                "UpdateExpression": "SET #st = :skipped, failure_detail = :c, updated_at = :now",
                "ConditionExpression": "#st = :source",
                "ExpressionAttributeNames": {"#st": "state"},
                "ExpressionAttributeValues": {
                    ":skipped": TaskState.SKIPPED.value,
                    ":source": source.value,
                    ":c": cause[:2000],
                    ":now": now_iso(),
                },
            }
            counters = "SET skipped = if_not_exists(skipped, :zero) + :one"
            if source == TaskState.READY:
                counters += ", ready_count = ready_count - :one"
            items: list[dict[str, Any]] = [
                {"Update": task_update},
                {
                    "Update": {
                        "TableName": self.table_name,
                        "Key": workflow_key(workflow_id),
                        "UpdateExpression": counters,
                        "ExpressionAttributeValues": {":one": 1, ":zero": 0},
                    }
                },
            ]
            if source == TaskState.READY:
                items.append({"Delete": {"TableName": self.table_name, "Key": ready_key(workflow_id, task_id)}})
            if self._transact(items, f"skipping task {task_id}"):
                return True
        return False

    def running_executions(self, workflow_id: str) -> list[str]:
        return [
            str(item["execution_arn"])
            for item in self._query(workflow_id, TASK_SK_PREFIX, projection="#st, execution_arn")
            if item.get("state") == TaskState.RUNNING and item.get("execution_arn")
        ]

    def task(self, workflow_id: str, task_id: str) -> dict[str, Any] | None:
        return self._get(task_key(workflow_id, task_id))

    def tasks(self, workflow_id: str) -> list[dict[str, Any]]:
        return list(self._query(workflow_id, TASK_SK_PREFIX))

    # -- plumbing ---------------------------------------------------------------------------------

    def _get(self, key: dict[str, str]) -> dict[str, Any] | None:
        try:
            item = self._table.get_item(Key=key, ConsistentRead=True).get("Item")
        except ClientError as exc:
            raise translate_client_error(exc, f"reading {key['pk']} {key['sk']}") from exc
        return dict(item) if item else None

    def _query(self, workflow_id: str, prefix: str, projection: str | None = None, limit: int | None = None):
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(workflow_pk(workflow_id)) & Key("sk").begins_with(prefix),
            "ConsistentRead": True,
        }
        if projection:
            kwargs["ProjectionExpression"] = projection
            if "#st" in projection:
                kwargs["ExpressionAttributeNames"] = {"#st": "state"}
        returned = 0
        while True:
            try:
                page = self._table.query(**kwargs)
            except ClientError as exc:
                raise translate_client_error(exc, f"listing items of workflow {workflow_id}") from exc
            for item in page.get("Items", []):
                yield item
                returned += 1
                if limit is not None and returned >= limit:
                    return
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _conditional_update(
        self,
        key: dict[str, str],
        expression: str,
        condition: str,
        names: dict[str, str],
        values: dict[str, Any],
        doing: str,
    ) -> bool:
        return conditional_write(
            lambda: self._table.update_item(
                Key=key,
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            ),
            doing,
        ).applied

    def _transact(self, items: list[dict[str, Any]], doing: str) -> bool:
        """One transaction guarded by its first item; False: that item's condition was false."""
        return self._transact_result(items, doing).applied

    def _transact_result(self, items: list[dict[str, Any]], doing: str, guarded: tuple[int, ...] = (0,)) -> WriteResult:
        return conditional_write(lambda: self._client.transact_write_items(TransactItems=items), doing, guarded)
