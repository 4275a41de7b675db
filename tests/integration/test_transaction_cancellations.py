"""DynamoDB cancels a transaction that touches an item another transaction is writing
(TransactionConflict) or when it throttles; moto never does, so these tests inject the cancellation
with a botocore before-call hook. Only ConditionalCheckFailed on the guarded item may mean "already
done": every other reason must be retried, never swallowed."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from monitoring_world import one_hour_ledger_entry
from moto import mock_aws
from test_scheduler_state import PLAN_URI, TABLE, FakeStepFunctions, _workflow

from stepspot.asl import retryable_error_names
from stepspot.aws.conditional_writes import conditional_write
from stepspot.aws.cost_store import CostStore, totals_from_item
from stepspot.aws.errors import WriteVerdict, write_verdict
from stepspot.aws.scheduler_state import SchedulerState
from stepspot.aws.state_table import StateTable
from stepspot.errors import StateWriteContendedError
from stepspot.local.aws_faults import error_response, request_body
from stepspot.local.resources import create_table
from stepspot.plan import build_plan, initial_task_states
from stepspot.scheduler import Scheduler
from stepspot.state_keys import workflow_key
from stepspot.workflow import parse_workflow

FAN_IN = [{"id": "a"}, {"id": "b"}, {"id": "join", "depends_on": ["a", "b"]}]


class CancelFirstTransactions:
    """Cancels the first ``count`` TransactWriteItems calls as DynamoDB does under contention."""

    def __init__(self, count: int, reasons: list[str | None]) -> None:
        self.remaining = count
        self.reasons = reasons
        self.cancelled = 0

    def __call__(self, params: dict[str, Any], **_: Any) -> Any:
        if self.remaining <= 0:
            return None
        self.remaining -= 1
        self.cancelled += 1
        return error_response(
            "TransactionCanceledException",
            "Transaction cancelled, please refer cancellation reasons for specific reasons",
            cancellation_reasons=[{"Code": c} if c else {"Code": "None"} for c in self.reasons]
            + [{"Code": "None"}] * (len(request_body(params)["TransactItems"]) - len(self.reasons)),
        )


@pytest.fixture
def dynamodb(monkeypatch):
    monkeypatch.setattr("stepspot.aws.conditional_writes.time.sleep", lambda _s: None)
    with mock_aws():
        resource = boto3.resource("dynamodb", region_name="us-east-1")
        create_table(resource, TABLE)
        yield resource


def _scheduler(dynamodb, tasks):
    plan = build_plan(parse_workflow(_workflow(tasks)).workflow, "wf")
    meta = {"workflow_id": "wf", "status": "PARSED", "plan_uri": PLAN_URI, "total_tasks": len(plan.tasks)}
    meta |= {"succeeded": 0, "failed": 0, "failure_mode": plan.failure_mode}
    StateTable(dynamodb, TABLE).register_workflow(meta, initial_task_states(plan), "sha")
    store = SchedulerState(dynamodb, TABLE)
    sfn = FakeStepFunctions()
    return plan, store, sfn, Scheduler(store, sfn, max_running=100)


def _inject(dynamodb, hook) -> None:
    dynamodb.meta.client.meta.events.register("before-call.dynamodb.TransactWriteItems", hook)


@pytest.mark.parametrize("reason", ["TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"])
def test_conflicting_completions_are_applied_once_and_the_join_starts(dynamodb, reason):
    plan, store, sfn, scheduler = _scheduler(dynamodb, FAN_IN)
    scheduler.start(plan, PLAN_URI, "token")
    # Given every completion's first two transactions cancelled on the second item (the workflow META
    # item, or the join's counter), as when a and b finish at the same moment
    hook = CancelFirstTransactions(2, [None, reason])
    _inject(dynamodb, hook)
    scheduler.task_succeeded(plan, PLAN_URI, "a")
    hook.remaining = 2
    scheduler.task_succeeded(plan, PLAN_URI, "b")
    # Then each finish and each decrement was applied exactly once and the join runs
    counters = store.counters("wf")
    assert hook.cancelled == 4
    assert (counters.succeeded, counters.running) == (2, 1)
    assert store.task("wf", "join").remaining_deps == 0
    assert sorted(sfn.tasks()) == ["a", "b", "join"]
    assert store.task("wf", "join").state == "RUNNING"


def test_persistent_conflicts_raise_an_error_the_state_machine_retries(dynamodb):
    plan, store, _sfn, scheduler = _scheduler(dynamodb, FAN_IN)
    scheduler.start(plan, PLAN_URI, "token")
    hook = CancelFirstTransactions(1000, [None, "TransactionConflict"])
    _inject(dynamodb, hook)
    with pytest.raises(StateWriteContendedError, match="TransactionConflict"):
        scheduler.task_succeeded(plan, PLAN_URI, "a")
    assert "StateWriteContendedError" in retryable_error_names()
    # Nothing was counted; the retried step (no more conflicts) counts it once
    hook.remaining = 0
    scheduler.task_succeeded(plan, PLAN_URI, "a")
    assert store.counters("wf").succeeded == 1


def test_a_condition_failing_on_the_guarded_item_means_already_done(dynamodb):
    plan, store, _sfn, scheduler = _scheduler(dynamodb, FAN_IN)
    scheduler.start(plan, PLAN_URI, "token")
    scheduler.task_succeeded(plan, PLAN_URI, "a")
    scheduler.task_succeeded(plan, PLAN_URI, "a")  # real (moto) ConditionalCheckFailed on item 0
    assert store.counters("wf").succeeded == 1


def _client_error(code: str, reasons: list[str] | None = None) -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": code}}
    if reasons is not None:
        response["CancellationReasons"] = [{"Code": r} for r in reasons]
    return ClientError(response, "TransactWriteItems")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "reasons", "guarded", "verdict"),
    [
        ("TransactionCanceledException", ["ConditionalCheckFailed", "None"], (0,), WriteVerdict.CONDITION_FAILED),
        ("TransactionCanceledException", ["None", "TransactionConflict"], (0,), WriteVerdict.CONTENDED),
        (
            "TransactionCanceledException",
            ["ConditionalCheckFailed", "TransactionConflict"],
            (0,),
            WriteVerdict.CONDITION_FAILED,
        ),
        ("TransactionCanceledException", ["None", "ThrottlingError"], (0,), WriteVerdict.CONTENDED),
        ("TransactionCanceledException", ["None", "ValidationError"], (0,), WriteVerdict.OTHER),
        ("TransactionCanceledException", [], (0,), WriteVerdict.OTHER),
        ("ConditionalCheckFailedException", None, (0,), WriteVerdict.CONDITION_FAILED),
        ("TransactionConflictException", None, (0,), WriteVerdict.CONTENDED),
        ("ProvisionedThroughputExceededException", None, (0,), WriteVerdict.CONTENDED),
        ("ValidationException", None, (0,), WriteVerdict.OTHER),
    ],
)
def test_write_verdicts(code, reasons, guarded, verdict):
    assert write_verdict(_client_error(code, reasons), guarded)[0] is verdict


def test_single_writes_retry_conflicts_and_report_a_false_condition():
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise _client_error("TransactionConflictException")

    assert conditional_write(flaky, "writing", sleep=lambda _s: None).applied
    assert len(calls) == 3

    def condition_false() -> None:
        raise _client_error("ConditionalCheckFailedException")

    assert conditional_write(condition_false, "writing", sleep=lambda _s: None).failed_items == {0}


def test_cost_ledger_transactions_retry_conflicts_on_the_workflow_item(dynamodb):
    # Many attempts ending at once all add to the workflow META item: DynamoDB cancels the colliding
    # transactions with TransactionConflict. That says nothing about the entry: retry, count it once.
    _scheduler(dynamodb, FAN_IN)
    costs = CostStore(dynamodb.Table(TABLE))
    hook = CancelFirstTransactions(2, [None, "TransactionConflict"])
    _inject(dynamodb, hook)
    assert costs.record("wf", one_hour_ledger_entry(job_id="job-1")) is True
    assert hook.cancelled == 2
    # A redelivered event: ConditionalCheckFailed on the entry (item 0) means already recorded
    assert costs.record("wf", one_hour_ledger_entry(job_id="job-1")) is False
    meta = dynamodb.Table(TABLE).get_item(Key=workflow_key("wf"))["Item"]
    assert totals_from_item(meta).attempts == 1
    # Conflicts that do not stop raise the retryable error (the handler's invocation is retried)
    hook.remaining = 1000
    with pytest.raises(StateWriteContendedError, match="TransactionConflict"):
        costs.record("wf", one_hour_ledger_entry(job_id="job-2"))
