"""The dataflow scheduler on its real DynamoDB adapter (moto): dataflow order, slots, failure modes,
and idempotence under duplicated and reordered deliveries."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from stepspot.aws import scheduler_state
from stepspot.aws.plan_objects import write_plan
from stepspot.aws.s3 import DocumentStore
from stepspot.aws.scheduler_state import SchedulerState
from stepspot.aws.state_table import StateTable
from stepspot.errors import RetryableError, StateWriteContendedError, WorkflowStateMissingError
from stepspot.handlers import _plans
from stepspot.handlers._plans import ShardedPlan, load_plan
from stepspot.local.resources import create_table
from stepspot.plan import Plan, build_plan, initial_task_states
from stepspot.plan_store import encode_plan
from stepspot.scheduler import Scheduler, TaskState, execution_name
from stepspot.state_items import Task as T
from stepspot.state_keys import task_key
from stepspot.workflow import parse_workflow

TABLE = "state"
PLAN_URI = "s3://bucket/workflows/wf/plan.json"


class FakeStepFunctions:
    """Records what the scheduler asks of Step Functions; starting a name twice starts it once."""

    def __init__(self) -> None:
        self.started: dict[str, dict[str, Any]] = {}
        self.start_calls = 0
        self.stopped: list[str] = []
        self.answers: list[tuple[str, str, Any]] = []
        self.heartbeats: list[str] = []

    def execution_arn(self, execution_name: str) -> str:
        return f"arn:aws:states:us-east-1:123456789012:execution:task:{execution_name}"

    def start_task(self, execution_name: str, payload: Any) -> str:
        self.start_calls += 1
        self.started.setdefault(execution_name, dict(payload))
        return f"arn:aws:states:us-east-1:123456789012:execution:task:{execution_name}"

    def stop_task(self, execution_arn: str, cause: str) -> None:
        self.stopped.append(execution_arn)

    def workflow_succeeded(self, task_token: str, output: Any) -> None:
        self.answers.append(("success", task_token, output))

    def workflow_failed(self, task_token: str, error: str, cause: str) -> None:
        self.answers.append(("failure", task_token, cause))

    def workflow_heartbeat(self, task_token: str) -> None:
        self.heartbeats.append(task_token)

    def tasks(self) -> list[str]:
        return [payload["task_id"] for payload in self.started.values()]


def _workflow(tasks: list[dict[str, Any]], failure_mode: str = "fail") -> dict[str, Any]:
    return {
        "name": "diamond",
        "global_config": {"failure_mode": failure_mode},
        "tasks": [{"container_image": "img", "command": ["true"], **t} for t in tasks],
    }


DIAMOND = [
    {"id": "a"},
    {"id": "b", "depends_on": ["a"]},
    {"id": "c", "depends_on": ["a"]},
    {"id": "d", "depends_on": ["b", "c"]},
    {"id": "e"},  # an independent branch
]


@pytest.fixture
def dynamodb():
    with mock_aws():
        resource = boto3.resource("dynamodb", region_name="us-east-1")
        create_table(resource, TABLE)
        yield resource


def _setup(dynamodb, tasks, failure_mode="fail", max_running=100, stored=True):
    """``stored``: the scheduler reads the plan as the Lambda does, from its shards in S3 (moto)."""
    plan = build_plan(parse_workflow(_workflow(tasks, failure_mode)).workflow, "wf")
    meta = {
        "workflow_id": "wf",
        "status": "PARSED",
        "plan_uri": PLAN_URI,
        "total_tasks": len(plan.tasks),
        "succeeded": 0,
        "failed": 0,
        "failure_mode": plan.failure_mode,
    }
    StateTable(dynamodb, TABLE).register_workflow(meta, initial_task_states(plan), "sha")
    store = SchedulerState(dynamodb, TABLE)
    sfn = FakeStepFunctions()
    view: ShardedPlan | Plan = plan
    if stored:
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bucket")
        documents = DocumentStore(s3, "bucket")
        write_plan(documents, "workflows/wf/plan.json", encode_plan(plan, "workflows/wf/plan.json"))
        _plans.clear()
        view = load_plan(documents, PLAN_URI)
        assert isinstance(view, ShardedPlan)
    return view, store, sfn, Scheduler(store, sfn, max_running=max_running)


def _state(store: SchedulerState, task_id: str) -> str:
    item = store.task("wf", task_id)
    assert item is not None, f"task {task_id} has no item"
    return item.state


def test_dataflow_a_task_starts_when_its_own_dependencies_are_done(dynamodb):
    plan, store, sfn, scheduler = _setup(dynamodb, DIAMOND)
    # Given the workflow started: the roots a and e run
    scheduler.start(plan, PLAN_URI, "token-1")
    assert sorted(sfn.tasks()) == ["a", "e"]
    # When a finishes, b and c start at once (e still running: no stage barrier)
    scheduler.task_succeeded(plan, PLAN_URI, "a")
    assert sorted(sfn.tasks()) == ["a", "b", "c", "e"]
    # When only b finishes, d waits for c
    scheduler.task_succeeded(plan, PLAN_URI, "b")
    assert "d" not in sfn.tasks() and _state(store, "d") == "PENDING"
    scheduler.task_succeeded(plan, PLAN_URI, "c")
    assert "d" in sfn.tasks()
    # Every task event while the workflow runs heartbeats its StartWorkflow token
    assert sfn.heartbeats.count("token-1") == 4
    for task in ("d", "e"):
        scheduler.task_succeeded(plan, PLAN_URI, task)
    # Then the workflow's token is answered once with the counts
    assert sfn.answers == [
        (
            "success",
            "token-1",
            {"workflow_id": "wf", "status": "SUCCEEDED", "total_tasks": 5, "succeeded": 5, "failed": 0, "skipped": 0},
        )
    ]


def test_duplicated_and_reordered_deliveries_change_nothing(dynamodb):
    plan, store, sfn, scheduler = _setup(dynamodb, DIAMOND)
    scheduler.start(plan, PLAN_URI, "token-1")
    scheduler.start(plan, PLAN_URI, "token-1")  # duplicated start
    scheduler.task_succeeded(plan, PLAN_URI, "a")
    scheduler.task_succeeded(plan, PLAN_URI, "b")
    scheduler.task_succeeded(plan, PLAN_URI, "a")  # late duplicate of a, after b
    scheduler.task_succeeded(plan, PLAN_URI, "b")  # duplicate of b: must not release d alone
    assert "d" not in sfn.tasks()
    assert store.task("wf", "d").remaining_deps == 1
    scheduler.task_succeeded(plan, PLAN_URI, "c")
    scheduler.task_succeeded(plan, PLAN_URI, "c")
    counters = store.counters("wf")
    assert (counters.succeeded, counters.running) == (3, 2)  # d and e running, each counted once
    assert len(sfn.started) == 5 and len(set(sfn.started)) == 5


def test_at_most_max_running_tasks_run_and_the_rest_wait_ready(dynamodb):
    fan_out = [{"id": "root"}, *({"id": f"leaf{i}", "depends_on": ["root"]} for i in range(5))]
    plan, store, sfn, scheduler = _setup(dynamodb, fan_out, max_running=2)
    scheduler.start(plan, PLAN_URI, "t")
    calls = _count_calls(store)
    scheduler.task_succeeded(plan, PLAN_URI, "root")
    running = [t for t in sfn.tasks() if t != "root"]
    assert len(running) == 2
    assert sum(1 for i in range(5) if _state(store, f"leaf{i}") == "READY") == 3
    # root's end, then one write per leaf: its edge with its start (a slot free) or with its park
    assert calls["TransactWriteItems"] == 1 + 2 + 3
    for leaf in running:
        scheduler.task_succeeded(plan, PLAN_URI, leaf)
    assert len(sfn.tasks()) == 5  # two more started as slots freed
    assert store.counters("wf").running == 2


def test_fail_mode_fails_the_workflow_and_stops_running_tasks(dynamodb):
    plan, _store, sfn, scheduler = _setup(dynamodb, DIAMOND)
    scheduler.start(plan, PLAN_URI, "t")
    result = scheduler.task_failed(plan, PLAN_URI, "a", "app_error: exit code 2; budget of 3 retries used up")
    assert result["status"] == "FAILED"
    assert sfn.stopped == [sfn.execution_arn(execution_name("wf", "e"))]
    kind, token, cause = sfn.answers[-1]
    assert (kind, token) == ("failure", "t")
    assert "task a failed: app_error: exit code 2" in cause
    # A late success of e does not start anything any more
    scheduler.task_succeeded(plan, PLAN_URI, "e")
    assert sorted(sfn.tasks()) == ["a", "e"]


def test_continue_mode_skips_downstream_and_lets_independent_branches_finish(dynamodb):
    plan, store, sfn, scheduler = _setup(dynamodb, DIAMOND, failure_mode="continue")
    scheduler.start(plan, PLAN_URI, "t")
    scheduler.task_succeeded(plan, PLAN_URI, "a")
    scheduler.task_failed(plan, PLAN_URI, "b", "app_error: exit code 1")
    assert _state(store, "d") == "SKIPPED"
    assert sfn.answers == []  # c and e still run
    scheduler.task_succeeded(plan, PLAN_URI, "c")
    scheduler.task_succeeded(plan, PLAN_URI, "e")
    kind, _, cause = sfn.answers[-1]
    assert kind == "failure"
    assert '"succeeded": 3' in cause and '"failed": 1' in cause and '"skipped": 1' in cause


def test_redrive_runs_unfinished_tasks_again_under_new_execution_names(dynamodb):
    plan, store, sfn, scheduler = _setup(dynamodb, DIAMOND)
    scheduler.start(plan, PLAN_URI, "t1")
    scheduler.task_succeeded(plan, PLAN_URI, "a")
    scheduler.task_failed(plan, PLAN_URI, "b", "app_error")
    before = set(sfn.started)
    # When StartWorkflow is redriven (a new token on a failed workflow)
    scheduler.start(plan, PLAN_URI, "t2")
    # Then the tasks that did not succeed are pending again and the ready ones start under new names
    assert _state(store, "a") == TaskState.SUCCEEDED
    new = set(sfn.started) - before
    assert sorted(sfn.started[n]["task_id"] for n in new) == ["b", "c", "e"]
    assert execution_name("wf", "b", "0.1") in new


def test_a_start_for_an_unknown_workflow_names_it(dynamodb):
    plan, _store, _sfn, scheduler = _setup(dynamodb, DIAMOND, stored=False)
    plan.workflow_id = "nope"
    with pytest.raises(Exception, match="workflow nope is not registered"):
        scheduler.start(plan, PLAN_URI, "t")


def test_local_progress_reads_task_states_through_the_adapter(dynamodb):
    from rich.console import Console

    from stepspot.cli.local import _progress_view
    from stepspot.local.engine import _progress

    plan, store, _sfn, scheduler = _setup(dynamodb, DIAMOND, max_running=1, stored=False)
    scheduler.start(plan, PLAN_URI, "token")  # a (or e) takes the one slot, the other root waits READY
    snapshot = _progress(store, plan)
    assert snapshot["counts"] == {"RUNNING": 1, "READY": 1, "PENDING": 3}
    assert snapshot["total"] == 5 and sorted(snapshot["tasks"]) == ["a", "b", "c", "d", "e"]
    assert all(isinstance(item["remaining_deps"], int) for item in snapshot["tasks"].values())
    console = Console(record=True, width=100)
    console.print(_progress_view(snapshot))
    shown = console.export_text()
    assert "running 1" in shown and "ready 1" in shown and "pending 3" in shown


# -- wide fan-outs: bounded slices handed on through the Lambda handler ------------------------------


def test_a_fan_out_wider_than_a_slice_is_resolved_by_continuations_of_the_handler(dynamodb, monkeypatch):
    """Through the handler (event model, settings, ShardedPlan from S3, DynamoDB on moto): each invocation
    resolves one slice and hands the rest on; duplicates and a stale run's continuation change nothing."""
    from stepspot import scheduler as scheduling
    from stepspot.aws.scheduler_invoker import SchedulerInvoker
    from stepspot.handlers import _cache
    from stepspot.handlers import scheduler as handler
    from stepspot.local.lambdas import FakeContext

    width, size = 45, 10
    monkeypatch.setattr(scheduling, "DEPENDENTS_PER_INVOCATION", size)
    fan_out = [{"id": "root"}, *({"id": f"leaf{i:02d}", "depends_on": ["root"]} for i in range(width))]
    _plan, store, _sfn, _ = _setup(dynamodb, fan_out)
    own_arn = _scheduler_environment(monkeypatch, max_running=20)
    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(SchedulerInvoker, "send", lambda self, event: sent.append((self.function_arn, dict(event))))
    starts: list[str] = []
    monkeypatch.setattr(handler.StepFunctions, "start_task", lambda self, name, payload: starts.append(name) or name)
    monkeypatch.setattr(handler.StepFunctions, "workflow_heartbeat", lambda self, token: None)
    _cache.reset_all()
    resolved_per_invocation: list[int] = []
    original_resolve = SchedulerState.resolve_dependency

    def counting_resolve(self, *args, **kwargs):
        resolved_per_invocation[-1] += 1
        return original_resolve(self, *args, **kwargs)

    monkeypatch.setattr(SchedulerState, "resolve_dependency", counting_resolve)

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        resolved_per_invocation.append(0)
        return handler.lambda_handler(json.loads(json.dumps(event)), FakeContext("scheduler", own_arn))

    try:
        invoke({"action": "start", "workflow_id": "wf", "plan_uri": PLAN_URI, "task_token": "token-1"})
        invoke({"action": "task_succeeded", "workflow_id": "wf", "task_id": "root", "plan_uri": PLAN_URI})
        offsets = []
        while sent:
            arn, event = sent.pop(0)
            assert arn == own_arn and event["action"] == "resolve_dependents"
            offsets.append(event["offset"])
            remaining = sum(1 for i in range(width) if _state(store, f"leaf{i:02d}") == "PENDING")
            assert remaining == width - event["offset"]  # the next slice is exactly where the last ended
            before = [store.task("wf", f"leaf{i:02d}") for i in range(width)]
            invoke(event)
            invoke(event)  # delivered twice: the duplicate resolves nothing more
            assert store.counters("wf").status == "RUNNING"
            assert [store.task("wf", f"leaf{i:02d}").remaining_deps for i in range(width)] == [
                0 if i < min(event["offset"] + size, width) else 1 for i in range(width)
            ]
            assert sum(1 for item in before if item.state == "PENDING") >= remaining
            sent[:] = sent[:1]  # the duplicate's own continuation is the same event: deliver it once
        assert offsets == [10, 20, 30, 40]
        assert max(resolved_per_invocation) <= size
        counters = store.counters("wf")
        assert (counters.running, counters.ready) == (20, width - 20)
        assert all(store.task("wf", f"leaf{i:02d}").remaining_deps == 0 for i in range(width))
        # A continuation of an earlier run (before a redrive) resolves nothing
        before = store.tasks("wf")
        assert invoke({**event, "offset": 0, "run_tag": "0.7"})["status"] == "RUNNING"
        assert [t.raw for t in store.tasks("wf")] == [t.raw for t in before] and not sent
    finally:
        _cache.reset_all()


def _scheduler_environment(monkeypatch, max_running: int) -> str:
    """The scheduler Lambda's environment, its policy running at most ``max_running`` tasks; returns its own ARN
    (where its continuations go)."""
    from stepspot.local.lambdas import function_arn

    own_arn = function_arn("scheduler")
    for name, value in {
        "STEPSPOT_BUCKET": "bucket",
        "STEPSPOT_STATE_TABLE": TABLE,
        "STEPSPOT_TASK_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:task",
        "STEPSPOT_SCHEDULER_FUNCTION_ARN": own_arn,
        "STEPSPOT_ENVIRONMENT": "test",
        "STEPSPOT_POLICY": json.dumps({"max_running_tasks": max_running}),
    }.items():
        monkeypatch.setenv(name, value)
    return own_arn


def _through_the_handler(monkeypatch, size: int, max_running: int, counted: tuple[str, ...]):
    """The scheduler Lambda with slices of ``size``: ``invoke`` delivers an event to its handler and
    returns the store calls named in ``counted`` that invocation made; ``sent`` collects continuations."""
    from stepspot import scheduler as scheduling
    from stepspot.aws.scheduler_invoker import SchedulerInvoker
    from stepspot.handlers import _cache
    from stepspot.handlers import scheduler as handler
    from stepspot.local.lambdas import FakeContext

    monkeypatch.setattr(scheduling, "DEPENDENTS_PER_INVOCATION", size)
    own_arn = _scheduler_environment(monkeypatch, max_running)
    sent: list[dict[str, Any]] = []
    answers: list[str] = []
    monkeypatch.setattr(SchedulerInvoker, "send", lambda self, event: sent.append(dict(event)))
    monkeypatch.setattr(handler.StepFunctions, "start_task", lambda self, name, payload: name)
    monkeypatch.setattr(handler.StepFunctions, "workflow_heartbeat", lambda self, token: answers.append("heartbeat"))
    monkeypatch.setattr(handler.StepFunctions, "workflow_failed", lambda self, *args: answers.append("failed"))
    monkeypatch.setattr(handler.StepFunctions, "workflow_succeeded", lambda self, *args: answers.append("succeeded"))
    calls = [0]
    for method in counted:
        original = getattr(SchedulerState, method)

        def counting(self, *args, _original=original, **kwargs):
            calls[0] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(SchedulerState, method, counting)

    def invoke(event: dict[str, Any]) -> int:
        calls[0] = 0
        handler.lambda_handler(json.loads(json.dumps(event)), FakeContext("scheduler", own_arn))
        return calls[0]

    _cache.reset_all()
    return invoke, sent, answers


def test_a_continue_mode_failure_skips_its_descendants_through_continuations_of_the_handler(dynamodb, monkeypatch):
    # Given slices of 10, failure_mode continue and a task with 26 descendants (25 children and a join)
    from stepspot.handlers import _cache

    children = [{"id": f"c{i:02d}", "depends_on": ["bad"]} for i in range(25)]
    tasks = [{"id": "bad"}, {"id": "solo"}, *children, {"id": "join", "depends_on": [c["id"] for c in children]}]
    _plan, store, _sfn, _ = _setup(dynamodb, tasks, failure_mode="continue")
    invoke, sent, answers = _through_the_handler(monkeypatch, size=10, max_running=20, counted=("skip",))
    try:
        invoke({"action": "start", "workflow_id": "wf", "plan_uri": PLAN_URI, "task_token": "token-1"})
        invoke({"action": "task_succeeded", "workflow_id": "wf", "task_id": "solo", "plan_uri": PLAN_URI})
        failed = {"action": "task_failed", "workflow_id": "wf", "task_id": "bad", "plan_uri": PLAN_URI}
        skips = [invoke({**failed, "failure_class": "app_error", "reason": "exit code 3"})]
        # Then each invocation skips one slice and hands the rest on; the workflow ends after the last
        offsets = []
        while sent:
            event = sent.pop(0)
            assert (
                event["action"] == "skip_descendants" and event["reason"] == "task bad failed: app_error: exit code 3"
            )
            offsets.append(event["offset"])
            counters = store.counters("wf")
            assert counters.status == "RUNNING" and "failed" not in answers
            assert counters.skipped == event["offset"] and counters.succeeded + counters.failed + counters.skipped < 28
            skips.append(invoke(event))
            before = [t.raw for t in store.tasks("wf")]
            invoke(event)  # delivered twice: the duplicate skips nothing more
            assert [t.raw for t in store.tasks("wf")] == before
            sent[:] = sent[:1]  # the duplicate's own continuation is the same event: deliver it once
        assert offsets == [10, 20] and skips[:3] == [10, 10, 6]
        counters = store.counters("wf")
        assert (counters.status, counters.skipped, counters.failed, counters.succeeded) == ("FAILED", 26, 1, 1)
        assert answers.count("failed") >= 1 and answers.index("failed") > answers.index("heartbeat")
        assert all(_state(store, c["id"]) == "SKIPPED" for c in children) and _state(store, "join") == "SKIPPED"
        assert "task bad failed" in (counters.first_failure or "")
    finally:
        _cache.reset_all()


def test_a_start_with_more_roots_than_a_slice_is_finished_by_continuations_of_the_handler(dynamodb, monkeypatch):
    # Given slices of 10, 35 roots, 5 slots and a join of them all
    from stepspot.handlers import _cache

    roots = [{"id": f"r{i:02d}"} for i in range(35)]
    _plan, store, _sfn, _ = _setup(dynamodb, [*roots, {"id": "join", "depends_on": [r["id"] for r in roots]}])
    invoke, sent, answers = _through_the_handler(monkeypatch, size=10, max_running=5, counted=("try_start", "park"))
    try:
        start = {"action": "start", "workflow_id": "wf", "plan_uri": PLAN_URI, "task_token": "token-1"}
        writes = [invoke(start)]
        # Then each invocation starts or parks one slice and hands on after the last task it did
        delivered = []
        while sent:
            event = sent.pop(0)
            delivered.append(event)
            assert event["action"] == "start_remaining" and store.counters("wf").status == "RUNNING"
            pending = [r["id"] for r in roots if _state(store, r["id"]) == "PENDING"]
            assert pending == [r["id"] for r in roots if r["id"] > event["after"]]
            writes.append(invoke(event))
        assert [e["after"] for e in delivered] == ["r09", "r19", "r29"] and writes == [10, 10, 10, 5]
        assert answers.count("heartbeat") == 4  # every slice keeps StartWorkflow's token alive
        counters = store.counters("wf")
        assert (counters.running, counters.ready) == (5, 30) and _state(store, "join") == "PENDING"
        # A late duplicate of a continuation and one of an earlier run change nothing
        before = [t.raw for t in store.tasks("wf")]
        invoke(delivered[0])
        invoke({**delivered[0], "run_tag": "0.7"})
        assert [t.raw for t in store.tasks("wf")] == before and not sent
    finally:
        _cache.reset_all()


# -- resolving a dependency: each edge counted once, what is left known from the conditional write itself
# (one call for the last or only dependency of a task, two for a join's other edges), no read after it

JOIN = [{"id": "p1"}, {"id": "p2"}, {"id": "p3"}, {"id": "join", "depends_on": ["p1", "p2", "p3"]}]


def _count_calls(store: SchedulerState) -> Counter[str]:
    """DynamoDB operations the store's client makes from now on, by name."""
    calls: Counter[str] = Counter()
    store._client.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: calls.update([model.name]), unique_id="count-calls"
    )
    return calls


def _remaining(dynamodb: Any, task_id: str) -> int:
    return int(dynamodb.Table(TABLE).get_item(Key=task_key("wf", task_id))["Item"][T.REMAINING_DEPS])


def test_the_only_dependency_of_a_task_is_resolved_in_one_call(dynamodb):
    _, store, _, _ = _setup(dynamodb, [{"id": "a"}, {"id": "b", "depends_on": ["a"]}], stored=False)
    calls = _count_calls(store)

    assert store.resolve_dependency("wf", "b", "a") == 0
    assert calls == Counter({"TransactWriteItems": 1})
    assert _remaining(dynamodb, "b") == 0


def test_a_join_knows_what_is_left_from_its_writes_and_the_last_edge_takes_one_call(dynamodb):
    _, store, _, _ = _setup(dynamodb, JOIN, stored=False)
    calls = _count_calls(store)

    left = [store.resolve_dependency("wf", "join", parent) for parent in ("p1", "p2", "p3")]

    assert left == [2, 1, 0]
    assert calls == Counter({"TransactWriteItems": 2 + 2 + 1})  # no GetItem after any of them
    assert _remaining(dynamodb, "join") == 0


def test_a_redelivered_edge_changes_nothing_and_says_what_is_left(dynamodb):
    _, store, _, _ = _setup(dynamodb, JOIN, stored=False)
    assert store.resolve_dependency("wf", "join", "p1") == 2

    assert store.resolve_dependency("wf", "join", "p1") == 2  # the same edge again
    assert _remaining(dynamodb, "join") == 2
    assert store.resolve_dependency("wf", "join", "p1", run_tag="1.0") == 1  # a new run counts it afresh


def test_another_parent_counted_between_two_tries_is_seen_by_the_next(dynamodb, monkeypatch):
    """On AWS a join's parents end at once: the count a miss returned may be stale by the next try."""
    _, store, _, _ = _setup(dynamodb, JOIN, stored=False)
    original = SchedulerState._transact_result
    tries = 0

    def concurrent_parent(self, items, doing, guarded=(0,)):
        nonlocal tries
        tries += 1
        if tries == 2:  # after p1's first miss, p2 is counted by another invocation
            assert original(self, _edge_of(items, "p2"), doing, guarded).applied
        return original(self, items, doing, guarded)

    monkeypatch.setattr(SchedulerState, "_transact_result", concurrent_parent)

    assert store.resolve_dependency("wf", "join", "p1") == 1
    assert tries == 3  # expected 1 (miss: 3), expected 3 (miss: p2 made it 2), expected 2 (applied)
    assert _remaining(dynamodb, "join") == 1
    monkeypatch.setattr(SchedulerState, "_transact_result", original)
    assert store.resolve_dependency("wf", "join", "p2") == 1  # p2's own delivery: counted already
    assert store.resolve_dependency("wf", "join", "p3") == 0


def _edge_of(items: list[dict[str, Any]], parent: str) -> list[dict[str, Any]]:
    """The same transaction for another parent, expecting the count as it is."""
    marker, update = items[0]["Put"], items[1]["Update"]
    item = dict(marker["Item"])
    item["sk"] = item["sk"].rsplit("#", 1)[0] + f"#{parent}"
    values = {**update["ExpressionAttributeValues"], ":expected": 3}
    return [{"Put": {**marker, "Item": item}}, {"Update": {**update, "ExpressionAttributeValues": values}}]


def test_a_count_that_keeps_changing_raises_a_retryable_error_and_counts_nothing(dynamodb, monkeypatch):
    _, store, _, _ = _setup(dynamodb, JOIN, stored=False)
    table = dynamodb.Table(TABLE)
    original = SchedulerState._transact_result

    def moving_count(self, items, doing, guarded=(0,)):
        table.update_item(
            Key=task_key("wf", "join"),
            UpdateExpression=f"SET {T.REMAINING_DEPS} = {T.REMAINING_DEPS} + :one",
            ExpressionAttributeValues={":one": 1},
        )
        return original(self, items, doing, guarded)

    monkeypatch.setattr(SchedulerState, "_transact_result", moving_count)

    with pytest.raises(StateWriteContendedError, match="dependency count of task join changed") as raised:
        store.resolve_dependency("wf", "join", "p1")
    assert isinstance(raised.value, RetryableError)  # Step Functions runs the step again
    assert _remaining(dynamodb, "join") == 3 + scheduler_state.RESOLVE_ATTEMPTS  # no decrement applied


# -- a last edge that parks: a fan-out wider than the free slots makes each dependent beyond them READY in
# the write that counts its edge (one call per dependent, not a resolve and then a park)


def test_the_last_edge_parks_the_task_in_the_same_write(dynamodb):
    _, store, _, _ = _setup(dynamodb, [{"id": "a"}, {"id": "b", "depends_on": ["a"]}], stored=False)
    calls = _count_calls(store)

    assert store.resolve_dependency("wf", "b", "a", park=True) == 0

    assert calls == Counter({"TransactWriteItems": 1})
    assert store.task("wf", "b").state == TaskState.READY and _remaining(dynamodb, "b") == 0
    assert store.counters("wf").ready == 1 and store.ready_tasks("wf", limit=5) == ["b"]


def test_an_edge_that_is_not_the_last_does_not_park(dynamodb):
    _, store, _, _ = _setup(dynamodb, JOIN, stored=False)

    assert store.resolve_dependency("wf", "join", "p1", park=True) == 2
    assert store.resolve_dependency("wf", "join", "p2", park=True) == 1

    assert store.task("wf", "join").state == TaskState.PENDING and store.counters("wf").ready == 0
    assert store.resolve_dependency("wf", "join", "p3", park=True) == 0
    assert store.task("wf", "join").state == TaskState.READY and store.counters("wf").ready == 1


def test_a_redelivered_last_edge_parks_a_task_its_first_delivery_left_pending(dynamodb):
    """The first delivery counted the edge for a start (a slot was free) and its invocation ended before
    starting the task; the redelivery has no slot: the task must not stay PENDING with nothing left."""
    _, store, _, _ = _setup(dynamodb, [{"id": "a"}, {"id": "b", "depends_on": ["a"]}], stored=False)
    assert store.resolve_dependency("wf", "b", "a") == 0

    assert store.resolve_dependency("wf", "b", "a", park=True) == 0
    assert store.resolve_dependency("wf", "b", "a", park=True) == 0  # and once parked, again: no change

    assert store.task("wf", "b").state == TaskState.READY and store.counters("wf").ready == 1


def test_a_skipped_task_s_last_edge_is_counted_and_not_parked(dynamodb):
    _, store, _, _ = _setup(dynamodb, [{"id": "a"}, {"id": "b", "depends_on": ["a"]}], stored=False)
    assert store.skip("wf", "b", cause="upstream task x failed")

    assert store.resolve_dependency("wf", "b", "a", park=True) == 0

    assert store.task("wf", "b").state == TaskState.SKIPPED and _remaining(dynamodb, "b") == 0
    assert store.counters("wf").ready == 0


# -- a last edge that starts: a dependent with a free slot starts in the write that counts its last edge


CHAIN = [{"id": "a"}, {"id": "b", "depends_on": ["a"]}]


def _running(store: SchedulerState, workflow_id: str = "wf") -> int:
    return store.counters(workflow_id).running


def _to_start(store: SchedulerState, parent: str = "a", max_running: int = 5) -> tuple[int, bool]:
    name = execution_name("wf", "b", "0.0")
    return store.resolve_to_start("wf", "b", parent, name, f"arn:aws:states:::execution:task:{name}", max_running)


def test_the_last_edge_starts_the_task_in_the_same_write_when_a_slot_is_free(dynamodb):
    _, store, _, _ = _setup(dynamodb, CHAIN, stored=False)
    store.begin("wf", "token")
    calls = _count_calls(store)

    assert _to_start(store) == (0, True)

    assert calls == Counter({"TransactWriteItems": 1})
    item = dynamodb.Table(TABLE).get_item(Key=task_key("wf", "b"))["Item"]
    assert item[T.STATE] == TaskState.RUNNING and item[T.EXECUTION_NAME] == execution_name("wf", "b", "0.0")
    assert item[T.EXECUTION_ARN].endswith(item[T.EXECUTION_NAME]) and item[T.REMAINING_DEPS] == 0
    assert _running(store) == 1
    assert _to_start(store) == (0, False)  # a redelivery starts nothing twice
    assert _running(store) == 1


@pytest.mark.parametrize("running", [True, False])
def test_a_last_edge_without_a_free_slot_or_a_running_workflow_is_counted_only(dynamodb, running):
    _, store, _, _ = _setup(dynamodb, CHAIN, stored=False)
    if running:
        store.begin("wf", "token")

    # no slot, or the workflow not RUNNING (still PARSED): the caller starts or parks it as before
    assert _to_start(store, max_running=0 if running else 5) == (0, False)

    assert store.task("wf", "b").state == TaskState.PENDING and _remaining(dynamodb, "b") == 0
    assert _running(store) == 0


def test_an_edge_that_is_not_the_last_starts_nothing_and_a_skipped_task_is_not_started(dynamodb):
    _, store, _, _ = _setup(dynamodb, JOIN, stored=False)
    store.begin("wf", "token")
    name = execution_name("wf", "join", "0.0")

    assert store.resolve_to_start("wf", "join", "p1", name, "arn", 5) == (2, False)
    assert store.task("wf", "join").state == TaskState.PENDING and _running(store) == 0
    assert store.skip("wf", "join", cause="upstream task x failed")
    assert store.resolve_to_start("wf", "join", "p2", name, "arn", 5) == (1, False)
    assert store.resolve_to_start("wf", "join", "p3", name, "arn", 5) == (0, False)
    assert store.task("wf", "join").state == TaskState.SKIPPED and _running(store) == 0


# -- a leaf's end hands its slot to a READY task in the write that finishes it


def _fan_out_with_one_slot(dynamodb):
    """root, then leaf0 RUNNING and leaf1, leaf2 READY (one slot); the scheduler that ran root's end."""
    fan_out = [{"id": "root"}, *({"id": f"leaf{i}", "depends_on": ["root"]} for i in range(3))]
    plan, store, sfn, scheduler = _setup(dynamodb, fan_out, max_running=1)
    scheduler.start(plan, PLAN_URI, "t")
    scheduler.task_succeeded(plan, PLAN_URI, "root")
    assert [_state(store, f"leaf{i}") for i in range(3)] == ["RUNNING", "READY", "READY"]
    return plan, store, sfn, scheduler


def test_a_leaf_that_ends_hands_its_slot_to_a_ready_task_in_one_write(dynamodb):
    plan, store, sfn, scheduler = _fan_out_with_one_slot(dynamodb)
    calls = _count_calls(store)

    scheduler.task_succeeded(plan, PLAN_URI, "leaf0")

    # The READY task found, then one write finishing leaf0 and starting it, then the counters read once
    assert calls == Counter({"Query": 1, "TransactWriteItems": 1, "GetItem": 1})
    assert [_state(store, f"leaf{i}") for i in range(3)] == ["SUCCEEDED", "RUNNING", "READY"]
    counters = store.counters("wf")
    assert (counters.running, counters.ready, counters.succeeded) == (1, 1, 2)
    assert store.ready_tasks("wf", limit=5) == ["leaf2"]
    assert execution_name("wf", "leaf1") in sfn.started

    # A redelivery of leaf0's end changes nothing and starts nothing
    before = [t.raw for t in store.tasks("wf")]
    scheduler.task_succeeded(plan, PLAN_URI, "leaf0")
    assert [t.raw for t in store.tasks("wf")] == before


def test_a_hand_over_guessed_for_another_run_is_not_written_and_the_end_is_handled_as_before(dynamodb):
    plan, store, sfn, scheduler = _fan_out_with_one_slot(dynamodb)
    seen = scheduler.last_read["wf"]
    scheduler.last_read["wf"] = replace(seen, run_tag="0.9")  # as read before a redrive the container missed

    scheduler.task_succeeded(plan, PLAN_URI, "leaf0")

    # leaf0's execution is not the one the guess names: nothing written by the hand-over; the finish and
    # the drain started the READY task under the run's own execution name
    assert [_state(store, f"leaf{i}") for i in range(3)] == ["SUCCEEDED", "RUNNING", "READY"]
    assert execution_name("wf", "leaf1", seen.run_tag) in sfn.started
    assert execution_name("wf", "leaf1", "0.9") not in sfn.started
    counters = store.counters("wf")
    assert (counters.running, counters.ready, counters.succeeded) == (1, 1, 2)


def test_a_task_with_dependents_ends_without_a_hand_over(dynamodb):
    chain = [{"id": "a"}, {"id": "b", "depends_on": ["a"]}, {"id": "c"}, {"id": "d", "depends_on": ["c"]}]
    plan, store, _sfn, scheduler = _setup(dynamodb, chain, max_running=1)
    scheduler.start(plan, PLAN_URI, "t")  # a runs, c waits READY
    assert store.counters("wf").ready == 1
    calls = _count_calls(store)

    scheduler.task_succeeded(plan, PLAN_URI, "a")

    # No READY task looked up for a hand-over: the slot goes to a's dependent first, as before
    assert calls["Query"] == 0
    assert (_state(store, "a"), _state(store, "b"), _state(store, "c")) == ("SUCCEEDED", "RUNNING", "READY")


def test_a_task_without_a_state_item_is_refused(dynamodb):
    _, store, _, _ = _setup(dynamodb, JOIN, stored=False)

    with pytest.raises(WorkflowStateMissingError, match="task ghost of workflow wf has no state item"):
        store.resolve_dependency("wf", "ghost", "p1")
