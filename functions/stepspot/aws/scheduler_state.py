"""DynamoDB adapter of the scheduler: task transitions and workflow counters with conditional writes.

Every transition is one conditional write (or one transaction) keyed on the current state, which is
what makes duplicated and reordered deliveries harmless (see ``stepspot.scheduler``). Items are those
of docs/contracts.md; the workflow META item gains ``running`` (slots in use) and ``task_token``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from stepspot.aws.conditional_writes import WriteResult, conditional_write
from stepspot.aws.errors import CANCELLATION_CONDITION_FAILED, translate_client_error
from stepspot.aws.state_table import now_iso
from stepspot.errors import StateWriteContendedError, WorkflowStateMissingError
from stepspot.scheduler import PlanView, StartOutcome, TaskState, WorkflowCounters, WorkflowStatus
from stepspot.state_items import UPDATED_AT, Marker, TaskItem, WorkflowItem
from stepspot.state_items import Task as T
from stepspot.state_items import Workflow as W
from stepspot.state_keys import (
    TASK_SK_PREFIX,
    dependency_key,
    ready_key,
    ready_pk,
    task_key,
    workflow_key,
    workflow_pk,
)

# Tries of one dependency's conditional decrement: each miss but the first means another parent of the
# task was counted meanwhile (a join whose parents end at once); more raise a retryable error.
RESOLVE_ATTEMPTS = 8


@dataclass(frozen=True)
class _Start:
    """A last edge that also starts its task: the execution it gets and the slots there are."""

    name: str
    arn: str
    max_running: int


_PARK: Final = "park"  # a last edge that also parks its task READY

# A task's move to RUNNING as an execution: the SET clause (``:now`` is the caller's) and its values
_RUNNING_AS: Final = f"#st = :running, {T.EXECUTION_NAME} = :name, {T.EXECUTION_ARN} = :arn, {T.STARTED_AT} = :now"


def _running_values(execution_name: str, execution_arn: str) -> dict[str, Any]:
    return {":running": TaskState.RUNNING.value, ":name": execution_name, ":arn": execution_arn}


_LastEdge = _Start | Literal["park"] | None  # what the write of a task's last edge does besides counting it


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
                UpdateExpression=f"SET {W.TASK_TOKEN} = :t, {W.STARTED_AT} = if_not_exists({W.STARTED_AT}, :now), "
                f"#r = if_not_exists(#r, :zero), {W.SKIPPED} = if_not_exists({W.SKIPPED}, :zero), "
                f"{W.READY_COUNT} = if_not_exists({W.READY_COUNT}, :zero), {UPDATED_AT} = :now",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#r": W.RUNNING},
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
            {"#s": W.STATUS},
            {":running": WorkflowStatus.RUNNING.value, ":parsed": WorkflowStatus.PARSED.value},
            f"starting workflow {workflow_id}",
        )
        return self.counters(workflow_id)

    def reset_unfinished(self, workflow_id: str, plan: PlanView) -> None:
        """Redrive: every task that did not succeed becomes PENDING again (dependencies recounted from
        the tasks that did), the counters are recomputed and the run tag moves on. Task ids come from
        the task items; the plan is asked only for the dependencies of the unfinished ones."""
        items = {t.task_id: t for t in self.tasks(workflow_id)}
        succeeded = {t for t, i in items.items() if i.state == TaskState.SUCCEEDED}
        # The next run has a new run tag: its dependency markers start afresh, and parents that
        # succeeded are not run again, so they count as done right away.
        unfinished = plan.remaining_dependencies((t for t in items if t not in succeeded), succeeded)
        for task_id, remaining in unfinished.items():
            self._table.update_item(
                Key=task_key(workflow_id, task_id),
                UpdateExpression=f"SET #st = :pending, {T.REMAINING_DEPS} = :remaining, {UPDATED_AT} = :now "
                f"REMOVE {T.EXECUTION_ARN}, {T.EXECUTION_NAME}",
                ExpressionAttributeNames={"#st": T.STATE},
                ExpressionAttributeValues={
                    ":pending": TaskState.PENDING.value,
                    ":remaining": remaining,
                    ":now": now_iso(),
                },
            )
            self._table.delete_item(Key=ready_key(workflow_id, task_id))
        self._table.update_item(
            Key=workflow_key(workflow_id),
            UpdateExpression=f"SET #s = :parsed, #r = :zero, {W.FAILED} = :zero, {W.SKIPPED} = :zero, "
            f"{W.READY_COUNT} = :zero, {W.SUCCEEDED} = :done, {W.REDRIVES} = if_not_exists({W.REDRIVES}, :zero) + :one "
            f"REMOVE {W.FAILURE_DETAIL}, {W.FINISHED_AT}",
            ExpressionAttributeNames={"#s": W.STATUS, "#r": W.RUNNING},
            ExpressionAttributeValues={
                ":parsed": WorkflowStatus.PARSED.value,
                ":zero": 0,
                ":one": 1,
                ":done": len(succeeded),
            },
        )

    def counters(self, workflow_id: str) -> WorkflowCounters:
        found = self._get(workflow_key(workflow_id))
        if found is None:
            raise WorkflowStateMissingError(
                f"workflow {workflow_id} is not registered in {self.table_name}", workflow_id=workflow_id
            )
        item = WorkflowItem.from_item(found)
        return WorkflowCounters(
            status=item.status,
            total=item.total_tasks,
            succeeded=item.succeeded,
            failed=item.failed,
            skipped=item.skipped,
            running=item.running,
            ready=item.ready_count,
            failure_mode=item.failure_mode,
            task_token=item.task_token,
            first_failure=item.failure_detail,
            run_tag=item.run_tag,
        )

    def complete(self, workflow_id: str, status: WorkflowStatus, detail: str | None = None) -> bool:
        values: dict[str, Any] = {":s": status.value, ":running": WorkflowStatus.RUNNING.value, ":now": now_iso()}
        expression = f"SET #s = :s, {W.FINISHED_AT} = :now"
        if detail:
            expression += f", {W.FAILURE_DETAIL} = if_not_exists({W.FAILURE_DETAIL}, :d)"
            values[":d"] = detail[:2000]
        return self._conditional_update(
            workflow_key(workflow_id), expression, "#s = :running", {"#s": W.STATUS}, values, "finishing workflow"
        )

    def mark_failed(self, workflow_id: str, detail: str) -> bool:
        """Abort: any not-yet-final status -> FAILED (the orchestration itself broke)."""
        return self._conditional_update(
            workflow_key(workflow_id),
            f"SET #s = :failed, {W.FINISHED_AT} = :now, {W.FAILURE_DETAIL} = if_not_exists({W.FAILURE_DETAIL}, :d)",
            "attribute_exists(pk) AND NOT #s IN (:failed, :succeeded)",
            {"#s": W.STATUS},
            {
                ":failed": WorkflowStatus.FAILED.value,
                ":succeeded": WorkflowStatus.SUCCEEDED.value,
                ":now": now_iso(),
                ":d": detail[:2000],
            },
            "aborting workflow",
        )

    # -- tasks ------------------------------------------------------------------------------------

    def initially_ready(self, workflow_id: str, after: str | None = None, limit: int | None = None) -> list[str]:
        """Tasks to launch at the start, in task-id order, those after task ``after`` and at most
        ``limit``: RUNNING ones (a retried start whose StartExecution call failed after the task took
        its slot: starting an execution by its name again is harmless) and PENDING ones with no
        unfinished dependency (roots, and tasks whose deps were skipped). READY ones wait for a slot."""
        found_ids: list[str] = []
        start = task_key(workflow_id, after) if after is not None else None
        for found in self._query(
            workflow_id, TASK_SK_PREFIX, projection=f"sk, #st, {T.REMAINING_DEPS}", start_after=start
        ):
            item = TaskItem.from_item(found, workflow_id)
            if item.state == TaskState.RUNNING or (item.state == TaskState.PENDING and item.remaining_deps == 0):
                found_ids.append(item.task_id)
                if limit is not None and len(found_ids) >= limit:
                    break
        return found_ids

    def resolve_dependency(
        self, workflow_id: str, task_id: str, parent_id: str, run_tag: str = "0.0", park: bool = False
    ) -> int:
        """Decrement ``remaining_deps`` once per (run, parent) and return what is left: the decrement and a
        marker item for the edge are one transaction, so a redelivery finds the marker and changes
        nothing. (A marker item per edge, not a set on the task item: a join of 10,000 tasks must not
        approach 400 KB.)

        One call per edge, not a write and then a read of the count: the decrement is conditional on the
        count it expects, first 1 (the last dependency: every edge of a chain or a fan-out), and a miss
        cancels the transaction with the task item as it was (``ReturnValuesOnConditionCheckFailure``),
        whose count the next try expects. A join's edges but its last take two calls; a miss after that
        means another parent was counted meanwhile, which happens at most once per parent.

        ``park``: the caller has no slot for the task once it is ready, so the last edge also parks it
        (``park``'s writes in the same transaction: one call per edge of a wide fan-out, not two). On
        return the task is then READY or past it, whoever counted its last edge."""
        left, parked = self._count_edge(workflow_id, task_id, parent_id, run_tag, _PARK if park else None)
        if park and left == 0 and not parked:  # an earlier delivery counted the last edge, or it was skipped
            self.park(workflow_id, task_id)
        return left

    def resolve_to_start(
        self,
        workflow_id: str,
        task_id: str,
        parent_id: str,
        execution_name: str,
        execution_arn: str,
        max_running: int,
        run_tag: str = "0.0",
    ) -> tuple[int, bool]:
        """``resolve_dependency`` whose last edge also starts the task in a free slot, ``try_start``'s writes
        in the same transaction (one call per started task of a chain or a fan-out, not two): (what is
        left, whether this call started it). Not started with nothing left (no slot, the workflow not
        running, or an earlier delivery counted the edge): the caller starts or parks it as before."""
        return self._count_edge(
            workflow_id, task_id, parent_id, run_tag, _Start(execution_name, execution_arn, max_running)
        )

    def _count_edge(
        self, workflow_id: str, task_id: str, parent_id: str, run_tag: str, last: _LastEdge
    ) -> tuple[int, bool]:
        """(dependencies left, whether this call also did ``last`` to the task): the tries of
        ``resolve_dependency`` and ``resolve_to_start``."""
        expected, pending = 1, True
        for _ in range(RESOLVE_ATTEMPTS):
            then = last if pending and expected == 1 else None
            edge = {  # guards: its condition failing means "this edge is counted already"
                "Put": {
                    "TableName": self.table_name,
                    "Item": {**dependency_key(workflow_id, run_tag, task_id, parent_id), Marker.AT: now_iso()},
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
            items = [edge, {"Update": self._decrement(workflow_id, task_id, expected, then)}]
            if isinstance(then, _Start):
                items.append({"Update": self._slot_taken(workflow_id, then.max_running)})
            elif then is not None:
                items += self._queued(workflow_id, task_id)
            guarded = (0, 1, 2) if isinstance(then, _Start) else (0, 1)
            result = self._transact_result(items, f"resolving a dependency of {task_id}", guarded=guarded)
            if result.applied:
                return expected - 1, then is not None
            if 0 in result.failed_items:  # counted by an earlier delivery: what is left now
                item = self.task(workflow_id, task_id)
                if item is None:
                    raise _no_task_item(workflow_id, task_id)
                return item.remaining_deps, False
            if 2 in result.failed_items and 1 not in result.failed_items:  # no slot, or not running: count only
                last = None
                continue
            found = result.old_items.get(1)  # the count (and state) as it was
            if found is None:
                raise _no_task_item(workflow_id, task_id)
            old = TaskItem.from_item(found, workflow_id)
            expected, pending = old.remaining_deps, old.state == TaskState.PENDING
        raise StateWriteContendedError(
            f"the dependency count of task {task_id} changed under each of {RESOLVE_ATTEMPTS} tries to resolve "
            f"its dependency on {parent_id}; the step will be retried",
            reasons=[CANCELLATION_CONDITION_FAILED],
        )

    def _decrement(self, workflow_id: str, task_id: str, expected: int, then: _LastEdge) -> dict[str, Any]:
        """The task's decrement of one dependency, conditional on the count ``expected``; with ``then`` (its
        last) also PENDING -> READY (parked) or -> RUNNING (started)."""
        update: dict[str, Any] = {
            "TableName": self.table_name,
            "Key": task_key(workflow_id, task_id),
            "UpdateExpression": f"SET {T.REMAINING_DEPS} = {T.REMAINING_DEPS} - :one, {UPDATED_AT} = :now",
            "ConditionExpression": f"{T.REMAINING_DEPS} = :expected",
            "ExpressionAttributeValues": {":one": 1, ":expected": expected, ":now": now_iso()},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if then is None:
            return update
        update["ConditionExpression"] += " AND #st = :pending"
        update["ExpressionAttributeNames"] = {"#st": T.STATE}
        values = update["ExpressionAttributeValues"]
        values[":pending"] = TaskState.PENDING.value
        if isinstance(then, _Start):
            update["UpdateExpression"] += f", {_RUNNING_AS}"
            values.update(_running_values(then.name, then.arn))
        else:
            update["UpdateExpression"] += ", #st = :ready"
            values[":ready"] = TaskState.READY.value
        return update

    def _slot_taken(self, workflow_id: str, max_running: int, from_ready: bool = False) -> dict[str, Any]:
        """The workflow's count of running tasks + 1, conditional on a free slot and the workflow running
        (``from_ready``: and one READY task fewer)."""
        return {
            "TableName": self.table_name,
            "Key": workflow_key(workflow_id),
            "UpdateExpression": "SET #r = #r + :one"
            + (f", {W.READY_COUNT} = {W.READY_COUNT} - :one" if from_ready else ""),
            "ConditionExpression": "#s = :wf_running AND #r < :max",
            "ExpressionAttributeNames": {"#r": W.RUNNING, "#s": W.STATUS},
            "ExpressionAttributeValues": {":one": 1, ":max": max_running, ":wf_running": WorkflowStatus.RUNNING.value},
        }

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
        source = TaskState.READY if from_ready else TaskState.PENDING
        items = [
            {"Update": self._started(workflow_id, task_id, source, execution_name, execution_arn)},
            {"Update": self._slot_taken(workflow_id, max_running, from_ready)},
            {"Delete": {"TableName": self.table_name, "Key": ready_key(workflow_id, task_id)}},
        ]
        # Items 0 (the task's state) and 1 (the workflow's slot and status) are guarded: either condition
        # failing decides the outcome below; a conflict or throttling is retried.
        result = self._transact_result(items, f"starting task {task_id}", guarded=(0, 1))
        if result.applied:
            return StartOutcome.STARTED
        task_failed = 0 in result.failed_items
        found = self._get(task_key(workflow_id, task_id))
        item = TaskItem.from_item(found, workflow_id) if found else None
        state = item.state if item else None
        if state == TaskState.RUNNING:
            return StartOutcome.ALREADY_RUNNING
        if task_failed or item is None or state not in (TaskState.PENDING, TaskState.READY) or item.remaining_deps:
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
                        "UpdateExpression": f"SET #st = :ready, {UPDATED_AT} = :now",
                        "ConditionExpression": f"#st = :pending AND {T.REMAINING_DEPS} = :zero",
                        "ExpressionAttributeNames": {"#st": T.STATE},
                        "ExpressionAttributeValues": {
                            ":ready": TaskState.READY.value,
                            ":pending": TaskState.PENDING.value,
                            ":zero": 0,
                            ":now": now_iso(),
                        },
                    }
                },
                *self._queued(workflow_id, task_id),
            ],
            f"queueing task {task_id}",
        )

    def _queued(self, workflow_id: str, task_id: str) -> list[dict[str, Any]]:
        """The writes besides the task's own that make it READY: counted in ``ready_count``, and its marker
        (what ``ready_tasks`` finds)."""
        return [
            {
                "Update": {
                    "TableName": self.table_name,
                    "Key": workflow_key(workflow_id),
                    "UpdateExpression": f"SET {W.READY_COUNT} = if_not_exists({W.READY_COUNT}, :zero) + :one",
                    "ExpressionAttributeValues": {":zero": 0, ":one": 1},
                }
            },
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": {**ready_key(workflow_id, task_id), Marker.TASK_ID: task_id, Marker.AT: time.time_ns()},
                }
            },
        ]

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
        counter = W.SUCCEEDED if state == TaskState.SUCCEEDED else W.FAILED
        task_update = self._finished(workflow_id, task_id, state, detail=detail)
        workflow_update = {
            "TableName": self.table_name,
            "Key": workflow_key(workflow_id),
            "UpdateExpression": f"SET #r = #r - :one, {counter} = {counter} + :one",
            "ExpressionAttributeNames": {"#r": W.RUNNING},
            "ExpressionAttributeValues": {":one": 1},
        }
        return self._transact([{"Update": task_update}, {"Update": workflow_update}], f"finishing task {task_id}")

    def finish_into(
        self,
        workflow_id: str,
        task_id: str,
        execution_name: str,
        next_id: str,
        next_execution_name: str,
        next_execution_arn: str,
    ) -> bool:
        """``task_id`` (RUNNING as the execution ``execution_name``) SUCCEEDED, and its slot taken by the
        READY task ``next_id``, RUNNING as the given execution, in one transaction; False (nothing
        written) when a condition is false: the task is not that RUNNING execution, the next one is no
        longer READY, or the workflow is not running."""
        finished = self._finished(workflow_id, task_id, TaskState.SUCCEEDED, execution_name=execution_name)
        started = self._started(workflow_id, next_id, TaskState.READY, next_execution_name, next_execution_arn)
        counted = {  # one slot released, one taken: running stays as it is
            "TableName": self.table_name,
            "Key": workflow_key(workflow_id),
            "UpdateExpression": f"SET {W.SUCCEEDED} = {W.SUCCEEDED} + :one, {W.READY_COUNT} = {W.READY_COUNT} - :one",
            "ConditionExpression": "#s = :wf_running",
            "ExpressionAttributeNames": {"#s": W.STATUS},
            "ExpressionAttributeValues": {":one": 1, ":wf_running": WorkflowStatus.RUNNING.value},
        }
        items = [
            {"Update": finished},
            {"Update": started},
            {"Update": counted},
            {"Delete": {"TableName": self.table_name, "Key": ready_key(workflow_id, next_id)}},
        ]
        return self._transact_result(items, f"finishing task {task_id} into {next_id}", guarded=(0, 1, 2)).applied

    def _started(
        self, workflow_id: str, task_id: str, source: TaskState, execution_name: str, execution_arn: str
    ) -> dict[str, Any]:
        """The task's move ``source`` (PENDING or READY, nothing left to wait for) -> RUNNING as the
        execution named."""
        return {
            "TableName": self.table_name,
            "Key": task_key(workflow_id, task_id),
            "UpdateExpression": f"SET {_RUNNING_AS}, {UPDATED_AT} = :now",
            "ConditionExpression": f"#st = :source AND {T.REMAINING_DEPS} = :zero",
            "ExpressionAttributeNames": {"#st": T.STATE},
            "ExpressionAttributeValues": {
                **_running_values(execution_name, execution_arn),
                ":source": source.value,
                ":zero": 0,
                ":now": now_iso(),
            },
        }

    def _finished(
        self,
        workflow_id: str,
        task_id: str,
        state: TaskState,
        detail: str | None = None,
        execution_name: str | None = None,
    ) -> dict[str, Any]:
        """The task's move RUNNING (``execution_name``: as that execution) -> ``state``."""
        condition = "#st = :running" + (f" AND {T.EXECUTION_NAME} = :name" if execution_name else "")
        return {
            "TableName": self.table_name,
            "Key": task_key(workflow_id, task_id),
            "UpdateExpression": f"SET #st = :final, {T.FINISHED_AT} = :now, {UPDATED_AT} = :now"
            + (f", {T.FAILURE_DETAIL} = :d" if detail else ""),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#st": T.STATE},
            "ExpressionAttributeValues": {
                ":final": state.value,
                ":running": TaskState.RUNNING.value,
                ":now": now_iso(),
                **({":d": detail[:2000]} if detail else {}),
                **({":name": execution_name} if execution_name else {}),
            },
        }

    def skip(self, workflow_id: str, task_id: str, cause: str) -> bool:
        """PENDING/READY -> SKIPPED, counted once (a READY task also gives back its place in the queue)."""
        for source in (TaskState.PENDING, TaskState.READY):
            task_update = {
                "TableName": self.table_name,
                "Key": task_key(workflow_id, task_id),
                "UpdateExpression": f"SET #st = :skipped, {T.FAILURE_DETAIL} = :c, {UPDATED_AT} = :now",
                "ConditionExpression": "#st = :source",
                "ExpressionAttributeNames": {"#st": T.STATE},
                "ExpressionAttributeValues": {
                    ":skipped": TaskState.SKIPPED.value,
                    ":source": source.value,
                    ":c": cause[:2000],
                    ":now": now_iso(),
                },
            }
            counters = f"SET {W.SKIPPED} = if_not_exists({W.SKIPPED}, :zero) + :one"
            if source == TaskState.READY:
                counters += f", {W.READY_COUNT} = {W.READY_COUNT} - :one"
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
        items = (
            TaskItem.from_item(found, workflow_id)
            for found in self._query(workflow_id, TASK_SK_PREFIX, projection=f"sk, #st, {T.EXECUTION_ARN}")
        )
        return [item.execution_arn for item in items if item.state == TaskState.RUNNING and item.execution_arn]

    def task(self, workflow_id: str, task_id: str) -> TaskItem | None:
        found = self._get(task_key(workflow_id, task_id))
        return TaskItem.from_item(found, workflow_id) if found else None

    def tasks(self, workflow_id: str) -> list[TaskItem]:
        """Every task item of the workflow (local mode's progress and summary read them here too)."""
        return [TaskItem.from_item(found, workflow_id) for found in self._query(workflow_id, TASK_SK_PREFIX)]

    # -- plumbing ---------------------------------------------------------------------------------

    def _get(self, key: dict[str, str]) -> dict[str, Any] | None:
        try:
            item = self._table.get_item(Key=key, ConsistentRead=True).get("Item")
        except ClientError as exc:
            raise translate_client_error(exc, f"reading {key['pk']} {key['sk']}") from exc
        return dict(item) if item else None

    def _query(
        self,
        workflow_id: str,
        prefix: str,
        projection: str | None = None,
        limit: int | None = None,
        start_after: dict[str, str] | None = None,
    ) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(workflow_pk(workflow_id)) & Key("sk").begins_with(prefix),
            "ConsistentRead": True,
        }
        if start_after is not None:  # the key of an item: the query goes on after it (sort-key order)
            kwargs["ExclusiveStartKey"] = start_after
        if projection:
            kwargs["ProjectionExpression"] = projection
            if "#st" in projection:
                kwargs["ExpressionAttributeNames"] = {"#st": T.STATE}
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


def _no_task_item(workflow_id: str, task_id: str) -> WorkflowStateMissingError:
    return WorkflowStateMissingError(f"task {task_id} of workflow {workflow_id} has no state item")
