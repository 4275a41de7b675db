"""Resolving a dependency (SchedulerState.resolve_dependency, moto): each edge is counted once, and the
count left is known from the conditional write itself, without reading the task item after it: one call
for the last (or only) dependency of a task, two for a join's other edges."""

from __future__ import annotations

from collections import Counter
from typing import Any

import boto3
import pytest
from moto import mock_aws
from test_scheduler_state import TABLE, _setup

from stepspot.aws import scheduler_state
from stepspot.aws.scheduler_state import SchedulerState
from stepspot.errors import RetryableError, StateWriteContendedError, WorkflowStateMissingError
from stepspot.local.resources import create_table
from stepspot.state_items import Task as T
from stepspot.state_keys import task_key

JOIN = [{"id": "p1"}, {"id": "p2"}, {"id": "p3"}, {"id": "join", "depends_on": ["p1", "p2", "p3"]}]


@pytest.fixture
def dynamodb():
    with mock_aws():
        resource = boto3.resource("dynamodb", region_name="us-east-1")
        create_table(resource, TABLE)
        yield resource


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


def test_a_task_without_a_state_item_is_refused(dynamodb):
    _, store, _, _ = _setup(dynamodb, JOIN, stored=False)

    with pytest.raises(WorkflowStateMissingError, match="task ghost of workflow wf has no state item"):
        store.resolve_dependency("wf", "ghost", "p1")
