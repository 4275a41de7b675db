"""Pure helpers of the dataflow scheduler (its DynamoDB behaviour is in tests/integration)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

import stepspot.scheduler as scheduling
from stepspot.scheduler import (
    DEPENDENTS_PER_INVOCATION,
    MAX_EXECUTION_NAME,
    RESOLVE_DEPENDENTS,
    SKIP_DESCENDANTS,
    START_REMAINING,
    DependentsSlice,
    Scheduler,
    StartOutcome,
    TaskState,
    WorkflowCounters,
    continuation_event,
    dependents_slice,
    descendants_slice,
    execution_name,
    iter_descendants,
    start_continuation_event,
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
    assert list(iter_descendants(lambda t: tasks[t].dependents, "a")) == ["b", "c", "d"]
    assert list(iter_descendants(lambda t: tasks[t].dependents, "e")) == []


# ---------------------------------------------------------------------------------------------------
# Wide fan-outs: bounded work per invocation, continuations (fakes of the store and Step Functions)

WF = "wf"
URI = "s3://bucket/workflows/wf/plan.json"


class _GraphPlan:
    """Any DAG: ``edges`` maps a task to its dependents (the parts of a plan the scheduler reads)."""

    def __init__(self, edges: dict[str, list[str]], failure_mode: str = "continue") -> None:
        self.edges = edges
        self.workflow_id = WF
        self.failure_mode = failure_mode

    def has_task(self, task_id: str) -> bool:
        return task_id in self.edges

    def dependents(self, task_id: str) -> list[str]:
        return self.edges[task_id]

    def remaining_dependencies(self, task_ids, done):
        return {t: sum(1 for p, children in self.edges.items() if t in children and p not in done) for t in task_ids}


def _fan_out_plan(width: int) -> _GraphPlan:
    """A root task with ``width`` dependents (each depending on the root alone)."""
    children = [f"t{i:05d}" for i in range(width)]
    return _GraphPlan({"root": children, **{c: [] for c in children}}, failure_mode="fail")


class _MemoryStore:
    """The SchedulerStore contract in memory: per-edge markers, conditional starts, a slot limit."""

    def __init__(self, plan: _GraphPlan, running: list[str], max_running: int) -> None:
        parents = {t: 0 for t in plan.edges}
        for children in plan.edges.values():
            for child in children:
                parents[child] += 1
        self.state = {t: TaskState.RUNNING if t in running else TaskState.PENDING for t in plan.edges}
        self.remaining = {t: 0 if t in running else n for t, n in parents.items()}
        self.markers: set[tuple[str, str, str]] = set()
        self.ready: list[str] = []
        self.wf = WorkflowCounters(status="RUNNING", total=len(plan.edges), running=len(running), task_token="tok")
        self.max_running = max_running
        self.resolves = 0  # resolve_dependency calls since the last reset (one invocation's work)

    def counters(self, workflow_id: str) -> WorkflowCounters:
        return replace(self.wf)

    def resolve_dependency(self, workflow_id, task_id, parent_id, run_tag="0.0", park=False) -> int:
        self.resolves += 1
        edge = (run_tag, task_id, parent_id)
        if edge not in self.markers:
            self.markers.add(edge)
            self.remaining[task_id] -= 1
        if park and not self.remaining[task_id]:
            self.park(workflow_id, task_id)
        return self.remaining[task_id]

    def resolve_to_start(
        self, workflow_id, task_id, parent_id, execution_name, execution_arn, max_running, run_tag="0.0"
    ):
        counted = (run_tag, task_id, parent_id) not in self.markers
        left = self.resolve_dependency(workflow_id, task_id, parent_id, run_tag)
        if not counted or left or self.state[task_id] != TaskState.PENDING:
            return left, False
        if self.wf.status != "RUNNING" or self.wf.running >= max_running:
            return left, False
        self.state[task_id] = TaskState.RUNNING
        self.wf.running += 1
        return left, True

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

    def finish_into(self, workflow_id, task_id, execution_name, next_id, next_name, next_arn) -> bool:
        if self.state[task_id] != TaskState.RUNNING or self.state[next_id] != TaskState.READY:
            return False
        if self.wf.status != "RUNNING":
            return False
        self.state[task_id], self.state[next_id] = TaskState.SUCCEEDED, TaskState.RUNNING
        self.ready.remove(next_id)
        self.wf.ready -= 1
        self.wf.succeeded += 1
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
    plan = _fan_out_plan(width)
    store, sfn, queue = _MemoryStore(plan, ["root"], max_running), _Orchestrator(), _Queue()
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
    assert all(store.remaining[c] == 0 for c in plan.edges["root"])
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


# ---------------------------------------------------------------------------------------------------
# failure_mode continue: the skip walk downstream of a failed task, bounded the same way


def test_descendants_slices_follow_one_order_and_say_where_the_next_starts():
    tasks = {"a": ["b", "c"], "b": ["d", "e"], "c": ["e", "f"], "d": [], "e": ["g"], "f": [], "g": []}
    walked: list[str] = []
    offset: int | None = 0
    while offset is not None:
        part = descendants_slice(tasks.__getitem__, "a", offset, 2)
        walked.extend(part.task_ids)
        offset = part.next_offset
    assert walked == list(iter_descendants(tasks.__getitem__, "a")) == ["b", "c", "d", "e", "f", "g"]
    assert descendants_slice(tasks.__getitem__, "a", 4, 2) == DependentsSlice(["f", "g"], None)  # exactly the end
    assert descendants_slice(tasks.__getitem__, "a", 9, 2) == DependentsSlice([], None)  # a stale offset
    with pytest.raises(ValueError, match="offset >= 0 and size >= 1"):
        descendants_slice(tasks.__getitem__, "a", 0, 0)


class _GraphStore(_MemoryStore):
    """``_MemoryStore`` over any DAG, with skips and the start's reads; counts one invocation's writes."""

    def __init__(self, plan: _GraphPlan, running: list[str], max_running: int) -> None:
        super().__init__(plan, running, max_running)
        self.writes = 0  # skips, starts and parks since the last reset
        self.skipped_order: list[str] = []

    def skip(self, workflow_id, task_id, cause) -> bool:
        self.writes += 1
        if self.state[task_id] not in (TaskState.PENDING, TaskState.READY):
            return False
        if self.state[task_id] == TaskState.READY:
            self.ready.remove(task_id)
            self.wf.ready -= 1
        self.state[task_id] = TaskState.SKIPPED
        self.skipped_order.append(task_id)
        self.wf.skipped += 1
        return True

    def begin(self, workflow_id, task_token) -> WorkflowCounters:
        self.wf.task_token = task_token
        if self.wf.status == "PARSED":
            self.wf.status = "RUNNING"
        return self.counters(workflow_id)

    def initially_ready(self, workflow_id, after=None, limit=None) -> list[str]:
        found = [
            t
            for t in sorted(self.state)
            if (after is None or t > after)
            and (self.state[t] == TaskState.RUNNING or (self.state[t] == TaskState.PENDING and not self.remaining[t]))
        ]
        return found[:limit]

    def try_start(self, *args, **kwargs):
        self.writes += 1
        return super().try_start(*args, **kwargs)

    def park(self, workflow_id, task_id) -> None:
        self.writes += 1
        super().park(workflow_id, task_id)


def _one_invocation(store: _GraphStore, sfn, queue) -> Scheduler:
    store.writes = 0
    return Scheduler(store, sfn, max_running=store.max_running, continuations=queue)


def _continue(plan, store, sfn, event, queue) -> Scheduler:
    """Deliver a continuation event as the handler does."""
    scheduler = _one_invocation(store, sfn, queue)
    if event["action"] == SKIP_DESCENDANTS:
        args = (event["task_id"], event["offset"], event["run_tag"], event["reason"])
        scheduler.skip_descendants(plan, event["plan_uri"], *args)
    else:
        assert event["action"] == START_REMAINING
        scheduler.start_remaining(plan, event["plan_uri"], event["after"], event["run_tag"])
    return scheduler


def _downstream_of_a_failure(width: int) -> _GraphPlan:
    """``bad`` -> ``width`` children -> a grandchild each -> one join; ``good`` independent of all."""
    children = [f"c{i:03d}" for i in range(width)]
    edges: dict[str, list[str]] = {"bad": children, "good": [], "join": []}
    for child in children:
        edges[child] = [f"g{child[1:]}"]
        edges[f"g{child[1:]}"] = ["join"]
    return _GraphPlan(edges)


def test_a_continue_mode_failure_skips_its_descendants_in_bounded_invocations(monkeypatch):
    # Given slices of 10 and a failed task with 61 descendants (an independent task already done)
    monkeypatch.setattr(scheduling, "DEPENDENTS_PER_INVOCATION", 10)
    plan = _downstream_of_a_failure(30)
    store, sfn, queue = _GraphStore(plan, running=["bad", "good"], max_running=10), _Orchestrator(), _Queue()
    _one_invocation(store, sfn, queue).task_succeeded(plan, URI, "good")
    first = _one_invocation(store, sfn, queue)
    first.task_failed(plan, URI, "bad", "exit 3")
    # Then each invocation skips at most a slice and hands the rest on in the walk's order
    assert first.continued_at == 10 and store.writes == 10
    per_invocation = [store.writes]
    while queue.events:
        event = queue.events.pop(0)
        assert event == continuation_event(
            WF, "bad", URI, event["offset"], "0.0", action=SKIP_DESCENDANTS, reason="task bad failed: exit 3"
        )
        # the workflow is not complete while skips are pending: the counters do not add up yet
        assert store.wf.status == "RUNNING" and not sfn.answers
        assert store.wf.succeeded + store.wf.failed + store.wf.skipped < store.wf.total
        _continue(plan, store, sfn, event, queue)
        per_invocation.append(store.writes)
        before, skipped = store.snapshot(), store.wf.skipped
        _continue(plan, store, sfn, event, _Queue())  # a duplicate right after changes nothing
        assert store.snapshot() == before and store.wf.skipped == skipped
    assert per_invocation == [10, 10, 10, 10, 10, 10, 1]
    assert store.skipped_order == list(iter_descendants(plan.dependents, "bad"))  # each once, in the walk's order
    # And the last slice completes the workflow as failed (its duplicate answers the same again)
    assert store.wf.skipped == 61 and store.wf.status == "FAILED" and sfn.answers == ["failed", "failed"]
    assert sfn.heartbeats == 1 + 6 + 5  # good's event, each slice before the last and its duplicate
    # A continuation of an earlier run (a redrive made the skipped tasks PENDING again) skips nothing
    store.wf.status, store.wf.run_tag, store.wf.failed, store.wf.skipped = "RUNNING", "0.1", 0, 0
    for task_id in ["bad", *list(iter_descendants(plan.dependents, "bad"))]:
        store.state[task_id] = TaskState.PENDING
    before, stale = store.snapshot(), _Queue()
    event = continuation_event(WF, "bad", URI, 10, "0.0", action=SKIP_DESCENDANTS, reason="old")
    _continue(plan, store, sfn, event, stale)
    assert store.snapshot() == before and not stale.events


def test_a_start_with_many_roots_starts_them_in_bounded_invocations(monkeypatch):
    # Given slices of 100, 1,050 roots, 20 slots and a join
    monkeypatch.setattr(scheduling, "DEPENDENTS_PER_INVOCATION", 100)
    roots = [f"r{i:04d}" for i in range(1050)]
    plan = _GraphPlan({**{r: ["join"] for r in roots}, "join": []}, failure_mode="fail")
    store, sfn, queue = _GraphStore(plan, running=[], max_running=20), _Orchestrator(), _Queue()
    store.wf.status = "PARSED"
    first = _one_invocation(store, sfn, queue)
    first.start(plan, URI, "token")
    # Then each invocation starts or parks at most a slice, and hands on after the last task it did
    assert first.continued_at == "r0099" and store.writes == 100
    per_invocation, delivered = [store.writes], []
    while queue.events:
        event = queue.events.pop(0)
        delivered.append(event)
        assert event == start_continuation_event(WF, URI, event["after"], "0.0")
        assert store.wf.status == "RUNNING" and not sfn.answers
        _continue(plan, store, sfn, event, queue)
        per_invocation.append(store.writes)
    assert per_invocation == [100] * 10 + [50]
    # Every root runs or waits for a slot, none twice; the join still waits
    assert store.wf.running == 20 and store.wf.ready == 1030 and store.state["join"] == TaskState.PENDING
    assert sorted(sfn.started) == roots[:20] and sorted(store.ready) == roots[20:]
    assert sfn.heartbeats == 11  # every slice keeps StartWorkflow's token alive
    # Late duplicates (of the start and of a continuation) change nothing
    before = store.snapshot()
    _one_invocation(store, sfn, queue).start(plan, URI, "token")
    _continue(plan, store, sfn, delivered[3], queue)
    assert store.snapshot() == before and not queue.events
    # A start continuation of an earlier run starts nothing
    before, stale = store.snapshot(), _Queue()
    _continue(plan, store, sfn, start_continuation_event(WF, URI, "r0000", "0.1"), stale)
    assert store.snapshot() == before and not stale.events


def test_without_continuations_a_start_and_a_skip_walk_finish_in_the_same_call(monkeypatch):
    monkeypatch.setattr(scheduling, "DEPENDENTS_PER_INVOCATION", 7)
    plan = _downstream_of_a_failure(20)
    store, sfn = _GraphStore(plan, running=["bad"], max_running=5), _Orchestrator()
    Scheduler(store, sfn, max_running=5).task_failed(plan, URI, "bad", "boom")
    assert store.wf.skipped == 41 and store.state["good"] == TaskState.PENDING  # independent: not skipped
    roots = {f"r{i:02d}": [] for i in range(30)}
    store = _GraphStore(_GraphPlan(roots), running=[], max_running=5)
    store.wf.status = "PARSED"
    Scheduler(store, sfn, max_running=5).start(_GraphPlan(roots), URI, "t")
    assert store.wf.running == 5 and store.wf.ready == 25


def test_skip_and_start_continuations_are_what_the_handler_accepts_and_incomplete_ones_are_refused():
    from pydantic import ValidationError

    from stepspot.handlers.scheduler import SchedulerEvent

    skip = continuation_event(WF, "bad", URI, 20, "0.1", action=SKIP_DESCENDANTS, reason="task bad failed: x")
    event = SchedulerEvent.model_validate(skip)
    assert (event.action, event.task_id, event.offset, event.reason) == (SKIP_DESCENDANTS, "bad", 20, skip["reason"])
    with pytest.raises(ValidationError, match="a skip_descendants event needs offset and run_tag"):
        SchedulerEvent.model_validate({k: v for k, v in skip.items() if k != "offset"})
    start = SchedulerEvent.model_validate(start_continuation_event(WF, URI, "r0099", "0.0"))
    assert (start.action, start.after, start.run_tag) == (START_REMAINING, "r0099", "0.0")
    with pytest.raises(ValidationError, match="a start_remaining event needs after and run_tag"):
        SchedulerEvent.model_validate({**start_continuation_event(WF, URI, "r0099", "0.0"), "after": None})


def test_a_duplicated_start_continuation_starts_and_parks_each_root_once(monkeypatch):
    # Given slices of 10 and 45 roots, every continuation delivered twice in a row
    monkeypatch.setattr(scheduling, "DEPENDENTS_PER_INVOCATION", 10)
    roots = {f"r{i:02d}": [] for i in range(45)}
    plan = _GraphPlan(roots, failure_mode="fail")
    store, sfn, queue = _GraphStore(plan, running=[], max_running=5), _Orchestrator(), _Queue()
    store.wf.status = "PARSED"
    _one_invocation(store, sfn, queue).start(plan, URI, "token")
    while queue.events:
        event = queue.events.pop(0)
        _continue(plan, store, sfn, event, queue)
        assert store.writes <= 10
        _continue(plan, store, sfn, event, queue)  # the duplicate may run ahead of the chain: bounded too
        assert store.writes <= 10
    # Then each root was started or parked once: the counters match the tasks
    assert sorted(sfn.started) == sorted(roots)[:5] and sorted(store.ready) == sorted(roots)[5:]
    assert store.wf.running == 5 and store.wf.ready == 40
