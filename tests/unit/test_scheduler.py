"""Pure helpers of the dataflow scheduler (its DynamoDB behaviour is in tests/integration)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from stepspot.scheduler import (
    DEPENDENTS_PER_INVOCATION,
    MAX_EXECUTION_NAME,
    RESOLVE_DEPENDENTS,
    DependentsSlice,
    Scheduler,
    StartOutcome,
    TaskState,
    WorkflowCounters,
    continuation_event,
    dependents_slice,
    descendants,
    execution_name,
)


@dataclass
class _Task:
    dependents: list[str] = field(default_factory=list)


def test_execution_names_are_deterministic_short_and_distinct():
    long_workflow, long_task = "w" * 80, "t" * 80
    name = execution_name(long_workflow, long_task)
    assert len(name) <= MAX_EXECUTION_NAME
    assert name == execution_name(long_workflow, long_task)
    assert name != execution_name(long_workflow, long_task, run_tag="0.1")
    assert execution_name("wf-a", "prep") != execution_name("wf-b", "prep")
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def test_descendants_are_every_task_downstream_once():
    tasks = {"a": _Task(["b", "c"]), "b": _Task(["d"]), "c": _Task(["d"]), "d": _Task([]), "e": _Task([])}
    assert descendants(lambda t: tasks[t].dependents, "a") == ["b", "c", "d"]
    assert descendants(lambda t: tasks[t].dependents, "e") == []


# ---------------------------------------------------------------------------------------------------
# Wide fan-outs: bounded work per invocation, continuations (fakes of the store and Step Functions)

WF = "wf"
URI = "s3://bucket/workflows/wf/plan.json"


class _FanOutPlan:
    """A root task with ``width`` dependents (each depending on the root alone)."""

    def __init__(self, width: int) -> None:
        self.children = [f"t{i:05d}" for i in range(width)]
        self.workflow_id = WF
        self.failure_mode = "fail"

    def has_task(self, task_id: str) -> bool:
        return task_id == "root" or task_id in set(self.children)

    def dependents(self, task_id: str) -> list[str]:
        return list(self.children) if task_id == "root" else []

    def remaining_dependencies(self, task_ids, done):  # pragma: no cover - redrive is not exercised here
        raise NotImplementedError


class _MemoryStore:
    """The SchedulerStore contract in memory: per-edge markers, conditional starts, a slot limit."""

    def __init__(self, plan: _FanOutPlan, max_running: int) -> None:
        self.state = {"root": TaskState.RUNNING, **{c: TaskState.PENDING for c in plan.children}}
        self.remaining = {"root": 0, **{c: 1 for c in plan.children}}
        self.markers: set[tuple[str, str, str]] = set()
        self.ready: list[str] = []
        self.wf = WorkflowCounters(status="RUNNING", total=1 + len(plan.children), running=1, task_token="tok")
        self.max_running = max_running
        self.resolves = 0  # resolve_dependency calls since the last reset (one invocation's work)

    def counters(self, workflow_id: str) -> WorkflowCounters:
        return replace(self.wf)

    def resolve_dependency(self, workflow_id, task_id, parent_id, run_tag="0.0") -> int:
        self.resolves += 1
        edge = (run_tag, task_id, parent_id)
        if edge not in self.markers:
            self.markers.add(edge)
            self.remaining[task_id] -= 1
        return self.remaining[task_id]

    def try_start(self, workflow_id, task_id, execution_name, execution_arn, max_running, from_ready=False):
        state = self.state[task_id]
        if state == TaskState.RUNNING:
            return StartOutcome.ALREADY_RUNNING
        source = TaskState.READY if from_ready else TaskState.PENDING
        if state != source or self.remaining[task_id] or self.wf.status != "RUNNING":
            return StartOutcome.NOT_STARTABLE
        if self.wf.running >= max_running:
            self.park(workflow_id, task_id)
            return StartOutcome.NO_SLOT
        self.state[task_id] = TaskState.RUNNING
        self.wf.running += 1
        if from_ready:
            self.ready.remove(task_id)
            self.wf.ready -= 1
        return StartOutcome.STARTED

    def park(self, workflow_id, task_id) -> None:
        if self.state[task_id] == TaskState.PENDING and not self.remaining[task_id]:
            self.state[task_id] = TaskState.READY
            self.ready.append(task_id)
            self.wf.ready += 1

    def ready_tasks(self, workflow_id, limit):
        return self.ready[:limit]

    def finish(self, workflow_id, task_id, state, detail=None) -> bool:
        if self.state[task_id] != TaskState.RUNNING:
            return False
        self.state[task_id] = state
        self.wf.running -= 1
        self.wf.succeeded += state == TaskState.SUCCEEDED
        self.wf.failed += state == TaskState.FAILED
        return True

    def complete(self, workflow_id, status, detail=None) -> bool:
        if self.wf.status != "RUNNING":
            return False
        self.wf.status = status.value
        return True

    def snapshot(self) -> tuple[Any, ...]:
        return (dict(self.state), dict(self.remaining), len(self.markers), list(self.ready), replace(self.wf))


class _Orchestrator:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.answers: list[str] = []
        self.heartbeats = 0

    def execution_arn(self, execution_name: str) -> str:
        return f"arn:aws:states:us-east-1:123456789012:execution:task:{execution_name}"

    def start_task(self, execution_name: str, payload: Mapping[str, Any]) -> str:
        self.started.append(str(payload["task_id"]))
        return self.execution_arn(execution_name)

    def stop_task(self, execution_arn: str, cause: str) -> None: ...

    def workflow_succeeded(self, task_token: str, output: Mapping[str, Any]) -> None:
        self.answers.append("succeeded")

    def workflow_failed(self, task_token: str, error: str, cause: str) -> None:
        self.answers.append("failed")

    def workflow_heartbeat(self, task_token: str) -> None:
        self.heartbeats += 1


class _Queue:
    """Continuations as an asynchronous invocation queue."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def send(self, event: Mapping[str, Any]) -> None:
        self.events.append(dict(event))


def _fan_out(width: int, max_running: int = 500):
    plan = _FanOutPlan(width)
    store, sfn, queue = _MemoryStore(plan, max_running), _Orchestrator(), _Queue()
    return plan, store, sfn, queue


def _scheduler(store, sfn, queue, max_running=500) -> Scheduler:
    """One invocation's scheduler (the Lambda makes one per event)."""
    store.resolves = 0
    return Scheduler(store, sfn, max_running=max_running, continuations=queue)


def _deliver(plan, store, sfn, event) -> Scheduler:
    scheduler = _scheduler(store, sfn, event["_queue"])
    body = {k: v for k, v in event.items() if k != "_queue"}
    assert body["action"] == RESOLVE_DEPENDENTS
    scheduler.resolve_dependents(plan, body["plan_uri"], body["task_id"], body["offset"], body["run_tag"])
    return scheduler


def test_dependents_slice_cuts_by_offset_and_says_where_the_next_starts():
    ids = [str(i) for i in range(25)]
    assert dependents_slice(ids, 0, 10) == DependentsSlice(ids[:10], 10)
    assert dependents_slice(ids, 20, 10) == DependentsSlice(ids[20:], None)
    assert dependents_slice(ids, 15, 10) == DependentsSlice(ids[15:25], None)  # exactly the end
    assert dependents_slice(ids, 40, 10) == DependentsSlice([], None)  # a stale offset: nothing to do
    with pytest.raises(ValueError, match="offset >= 0 and size >= 1"):
        dependents_slice(ids, -1, 10)


def test_a_wide_fan_out_is_resolved_in_bounded_invocations_and_completes_after_the_last():
    width = 12_345
    plan, store, sfn, queue = _fan_out(width)
    first = _scheduler(store, sfn, queue)
    first.task_succeeded(plan, URI, "root")
    per_invocation = [store.resolves]
    assert first.continued_at == DEPENDENTS_PER_INVOCATION
    invocations = 1
    while queue.events:
        event = queue.events.pop(0)
        assert event == continuation_event(WF, "root", URI, event["offset"], "0.0")
        assert store.wf.status == "RUNNING" and not sfn.answers  # not complete before the last slice
        _deliver(plan, store, sfn, {**event, "_queue": queue})
        per_invocation.append(store.resolves)
        invocations += 1
    assert invocations == math.ceil(width / DEPENDENTS_PER_INVOCATION) == 13
    assert max(per_invocation) <= DEPENDENTS_PER_INVOCATION and sum(per_invocation) == width
    assert all(store.remaining[c] == 0 for c in plan.children)
    # Every dependent is running or waiting for a slot; none is left PENDING
    assert store.wf.running == 500 and store.wf.ready == width - 500
    assert sfn.heartbeats == invocations  # every slice proves the callback chain is alive
    # The workflow completes when the children do, once
    while store.wf.status == "RUNNING":
        running = [t for t, s in store.state.items() if s == TaskState.RUNNING]
        for task_id in running:
            _scheduler(store, sfn, queue).task_succeeded(plan, URI, task_id)
    assert sfn.answers == ["succeeded"] and store.wf.succeeded == width + 1


def test_duplicated_and_late_continuations_change_nothing():
    plan, store, sfn, queue = _fan_out(3_500)
    _scheduler(store, sfn, queue).task_succeeded(plan, URI, "root")
    delivered: list[dict[str, Any]] = []
    while queue.events:
        event = queue.events.pop(0)
        delivered.append(event)
        _deliver(plan, store, sfn, {**event, "_queue": queue})
        before, started = store.snapshot(), list(sfn.started)
        _deliver(plan, store, sfn, {**event, "_queue": _Queue()})  # a duplicate right after
        assert store.snapshot() == before
        assert set(sfn.started) == set(started)  # a re-start of a running task names the same execution
    assert [e["offset"] for e in delivered] == [1000, 2000, 3000]
    # A duplicate of the first slice (the task_succeeded redelivered) and a late duplicate of a slice
    before = store.snapshot()
    _scheduler(store, sfn, queue).task_succeeded(plan, URI, "root")
    _deliver(plan, store, sfn, {**delivered[0], "_queue": queue})
    assert store.snapshot() == before
    # A continuation of an earlier run (the workflow was redriven since) resolves nothing
    stale = _Queue()
    _deliver(plan, store, sfn, {**continuation_event(WF, "root", URI, 0, "0.1"), "_queue": stale})
    assert store.snapshot() == before and not stale.events


def test_without_continuations_every_slice_runs_in_the_same_call():
    plan, store, sfn, _ = _fan_out(2_500, max_running=10_000)
    Scheduler(store, sfn, max_running=10_000, slice_size=1000).task_succeeded(plan, URI, "root")
    assert store.resolves == 2_500 and store.wf.running == 2_500


def test_a_continuation_event_is_what_the_handler_accepts_and_an_incomplete_one_is_refused():
    from pydantic import ValidationError

    from stepspot.handlers.scheduler import SchedulerEvent

    event = SchedulerEvent.model_validate(continuation_event(WF, "root", URI, 3000, "0.1"))
    assert (event.action, event.task_id, event.offset, event.run_tag) == (RESOLVE_DEPENDENTS, "root", 3000, "0.1")
    incomplete = {k: v for k, v in continuation_event(WF, "root", URI, 3000, "0.1").items() if k != "run_tag"}
    with pytest.raises(ValidationError, match="a resolve_dependents event needs offset and run_tag"):
        SchedulerEvent.model_validate(incomplete)
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        SchedulerEvent.model_validate({**incomplete, "run_tag": "0.0", "offset": -1})
