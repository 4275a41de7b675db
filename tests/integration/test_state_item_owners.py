"""Every attribute of the state table is written by the one adapter ``stepspot.state_items.WRITERS`` names.

Each state-table adapter's write methods run on moto; every PutItem / UpdateItem / TransactWriteItems /
BatchWriteItem is recorded with the ``stepspot.aws`` module that made it, and the attributes it writes are
checked against the registry. The registry must also be complete: every attribute it lists is written by
the run (an entry nobody writes any more is a lie in the docs).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from monitoring_world import one_hour_ledger_entry
from moto import mock_aws

from stepspot import state_items
from stepspot.aws.cost_store import CostStore
from stepspot.aws.monitor_store import JobStatusWrite, MonitorStore, Notice, TaskRef
from stepspot.aws.scheduler_state import SchedulerState
from stepspot.aws.state_table import StateTable
from stepspot.aws.task_attempts import TaskAttempts
from stepspot.checkpointing.model import STATUS_COMPLETE, STATUS_FIELD, sequence_sk
from stepspot.local.resources import create_table
from stepspot.plan import build_plan, initial_task_states
from stepspot.scheduler import TaskState, WorkflowStatus
from stepspot.state_items import (
    CREATED_TASK,
    CREATED_WORKFLOW,
    CREATOR,
    PK,
    SK,
    UPDATED_AT,
    WRITERS,
    EventItem,
    EventStatus,
    Kind,
)
from stepspot.state_items import Task as T
from stepspot.state_keys import checkpoint_pk, event_dedup_key
from stepspot.workflow import parse_workflow

STATE, CHECKPOINTS = "state", "checkpoints"
WF = "wf-owners"
_CLAUSE = re.compile(r"\b(SET|ADD|REMOVE|DELETE)\b")


def _top_level(body: str) -> Iterator[str]:
    """The comma-separated actions of one clause (commas inside if_not_exists(...) do not split)."""
    depth, start = 0, 0
    for i, char in enumerate(body):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            yield body[start:i].strip()
            start = i + 1
    if body[start:].strip():
        yield body[start:].strip()


def updated_attributes(expression: str, names: dict[str, str]) -> set[str]:
    """The top-level attributes an UpdateExpression writes."""
    parts = _CLAUSE.split(expression)
    written: set[str] = set()
    for clause, body in zip(parts[1::2], parts[2::2], strict=True):
        for action in _top_level(body):
            target = action.split("=")[0] if clause == "SET" else action.split()[0]
            first = re.split(r"[.\[]", target.strip())[0]
            written.add(names.get(first, first))
    return written


def test_the_parser_reads_set_add_and_remove_clauses() -> None:
    names = {"#s": "status", "#job": "job-1"}
    expression = "SET #s = :s, b = if_not_exists(b, :zero) + :one, m.#job = :e ADD c :one, d :set REMOVE e, f"
    assert updated_attributes(expression, names) == {"status", "b", "m", "c", "d", "e", "f"}


def _kind(key: dict[str, Any]) -> Kind | None:
    pk, sk = str(key[PK]), str(key[SK])
    if pk.startswith("WF#"):
        if pk.endswith("#READY"):
            return Kind.READY
        if pk.endswith("#DEPS"):
            return Kind.DEPS
        return Kind.WORKFLOW if sk == "META" else Kind.TASK
    for prefix, kind in (("EVENT#", Kind.EVENT), ("JOB#", Kind.JOB), ("BREAKER#", Kind.BREAKER)):
        if pk.startswith(prefix):
            return kind
    return None


def _adapter() -> str:
    """The stepspot.aws module (not its shared plumbing) whose call is being made."""
    for frame in inspect.stack():
        module = frame.frame.f_globals.get("__name__", "")
        if module.startswith("stepspot.aws.") and module not in ("stepspot.aws.conditional_writes",):
            return module.rsplit(".", 1)[1]
    return "?"


class Recorder:
    def __init__(self) -> None:
        # (adapter, kind, attribute, whole item put?)
        self.writes: list[tuple[str, Kind, str, bool]] = []

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        operation = model.name
        adapter = _adapter()
        if operation == "TransactWriteItems":
            for item in params["TransactItems"]:
                for verb, request in item.items():
                    self._one(adapter, verb + "Item", request)
        elif operation == "BatchWriteItem":
            for table, requests in params["RequestItems"].items():
                for request in requests:
                    if "PutRequest" in request:
                        self._one(adapter, "PutItem", {"TableName": table, **request["PutRequest"]})
        elif operation in ("PutItem", "UpdateItem"):
            self._one(adapter, operation, params)

    def _one(self, adapter: str, operation: str, request: dict[str, Any]) -> None:
        if request.get("TableName") != STATE or operation not in ("PutItem", "UpdateItem"):
            return
        key = request["Item"] if operation == "PutItem" else request["Key"]
        kind = _kind({name: _value(value) for name, value in key.items()})
        if kind is None:
            return
        if operation == "PutItem":
            attributes = set(request["Item"]) - {PK, SK}
        else:
            attributes = updated_attributes(request["UpdateExpression"], request.get("ExpressionAttributeNames", {}))
        for attribute in attributes:
            self.writes.append((adapter, kind, attribute, operation == "PutItem"))


def _value(value: Any) -> Any:
    """Key values arrive serialised ({"S": ...}) from the client, plain from the resource."""
    return value.get("S", value) if isinstance(value, dict) else value


@pytest.fixture
def recorded() -> Iterator[tuple[Any, Any, Recorder]]:
    with mock_aws():
        resource = boto3.resource("dynamodb", region_name="us-east-1")
        for name in (STATE, CHECKPOINTS):
            create_table(resource, name)
        recorder = Recorder()
        resource.meta.client.meta.events.register("provide-client-params.dynamodb.*", recorder)
        yield resource, resource.Table(CHECKPOINTS), recorder


def _register(resource: Any, skip: tuple[str, ...] = ()) -> None:
    definition = {
        "name": "owners",
        "tasks": [
            {"id": "a", "container_image": "img", "command": ["true"]},
            {"id": "b", "container_image": "img", "command": ["true"], "depends_on": ["a"]},
            {"id": "c", "container_image": "img", "command": ["true"]},
        ],
    }
    plan = build_plan(parse_workflow(definition).workflow, WF)
    meta = {
        state_items.Workflow.WORKFLOW_ID: WF,
        state_items.Workflow.NAME: "owners",
        state_items.Workflow.STATUS: WorkflowStatus.PARSED.value,
        state_items.Workflow.PLAN_URI: "s3://b/plan.json",
        state_items.Workflow.DEFINITION_URI: "s3://b/definition.json",
        state_items.Workflow.TOTAL_TASKS: 3,
        state_items.Workflow.SUCCEEDED: 0,
        state_items.Workflow.FAILED: 0,
        state_items.Workflow.FAILURE_MODE: "continue",
        state_items.Workflow.RESUBMISSION: len(skip),
    }
    StateTable(resource, STATE).register_workflow(meta, initial_task_states(plan, skip), "sha")


def _exercise(resource: Any, checkpoints: Any) -> None:
    """Every write method of every state-table adapter, once."""
    _register(resource)
    scheduler = SchedulerState(resource, STATE)
    scheduler.begin(WF, "token")
    scheduler.try_start(WF, "a", "exec-a", "arn:exec-a", max_running=1)
    scheduler.park(WF, "c")  # no free slot: c waits READY
    scheduler.finish(WF, "a", TaskState.SUCCEEDED)
    scheduler.resolve_dependency(WF, "b", "a")
    scheduler.try_start(WF, "c", "exec-c", "arn:exec-c", max_running=1, from_ready=True)
    scheduler.finish(WF, "c", TaskState.FAILED, detail="boom")
    scheduler.skip(WF, "b", "upstream failed")
    scheduler.complete(WF, WorkflowStatus.FAILED, detail="c failed")
    scheduler.reset_unfinished(WF, _Deps({"a": (), "b": ("a",), "c": ()}))
    scheduler.mark_failed(WF, "aborted")

    attempts = TaskAttempts(resource, STATE)
    attempts.record_choice(WF, "c", 1, "spot-queue", "SPOT", fallback=False, base_memory=512)
    attempts.record_failure(WF, "c", 1, "app_error", "exit 1", "job-1")
    attempts.record_next_memory(WF, "c", 2, 1024)

    monitor = MonitorStore(resource.Table(STATE), checkpoints)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert monitor.claim_event("batch", "event-1", now)
    monitor.complete_event("batch", "event-1", "applied")
    dedup = resource.Table(STATE).get_item(Key=event_dedup_key("batch", "event-1"))["Item"]
    assert EventItem.from_item(dedup) == EventItem(EventStatus.DONE, int(now.timestamp()), "applied")
    task = TaskRef(WF, "c")
    for kind in ("spot_interruption_warning", "rebalance_recommendation"):
        monitor.record_notice(task, Notice(f"notice-{kind}", kind, "i-1", "terminate", now, "job-1"))
    monitor.apply_job_status(task, JobStatusWrite("job-1", "FAILED", "boom", "0005", now, "spot-queue", "SPOT", 1))
    monitor.mark_queue_seen(task, "SPOT")
    monitor.mark_queue_seen(task, "ON_DEMAND")
    monitor.record_fallback(task, now)
    checkpoints.put_item(
        Item={"pk": checkpoint_pk(WF, "c"), "sk": sequence_sk(1), "sequence": 1, STATUS_FIELD: STATUS_COMPLETE}
    )
    assert monitor.count_new_checkpoints(task) == 1
    monitor.record_run_health(task, "job-1", 12.5, 3.0, checkpoint_empty=True)
    fields = {
        state_items.Workflow.EXECUTION_ARN: "arn:wf",
        state_items.Workflow.EXECUTION_STATUS: "TIMED_OUT",
        state_items.Workflow.EXECUTION_STARTED_AT: "2026-01-01T00:00:00Z",
        state_items.Workflow.EXECUTION_STOPPED_AT: "2026-01-01T01:00:00Z",
        state_items.Workflow.EXECUTION_ERROR: "States.Timeout",
        state_items.Workflow.EXECUTION_CAUSE: "too slow",
    }
    assert monitor.apply_execution_status(WF, fields, "0009", "TIMED_OUT") is not None

    entry = one_hour_ledger_entry("c", capacity="SPOT", status="FAILED", instance_type="c5.large")
    assert CostStore(resource.Table(STATE)).record(WF, entry)
    _register(resource, skip=("a",))  # a resubmission rewrites the items whole


class _Deps:
    """The part of a plan a redrive asks (``PlanView.remaining_dependencies``)."""

    def __init__(self, depends_on: dict[str, tuple[str, ...]]) -> None:
        self.depends_on = depends_on

    def remaining_dependencies(self, task_ids, done):
        return {t: sum(1 for d in self.depends_on[t] if d not in done) for t in task_ids if t in self.depends_on}


def _owned(kind: Kind, attribute: str) -> tuple[str, ...] | None:
    if kind is Kind.BREAKER:
        return ("breaker_store",)
    if kind is Kind.TASK and attribute.startswith(T.FAILURES_PREFIX):
        attribute = T.FAILURES_PREFIX
    return WRITERS[kind].get(attribute)


def test_each_attribute_is_written_only_by_its_owner(recorded: tuple[Any, Any, Recorder]) -> None:
    resource, checkpoints, recorder = recorded
    _exercise(resource, checkpoints)
    created = {Kind.TASK: CREATED_TASK, Kind.WORKFLOW: CREATED_WORKFLOW}
    wrong = sorted(
        {
            f"{adapter} writes {kind.value} {attribute!r} (owner: {_owned(kind, attribute) or 'nobody'})"
            for adapter, kind, attribute, whole in recorder.writes
            if attribute not in (UPDATED_AT,)
            and not (whole and adapter == CREATOR and attribute in created.get(kind, ()))
            and adapter not in (_owned(kind, attribute) or ())
        }
    )
    assert not wrong, "\n".join(wrong)


def test_every_registered_attribute_is_written(recorded: tuple[Any, Any, Recorder]) -> None:
    resource, checkpoints, recorder = recorded
    _exercise(resource, checkpoints)
    seen = {
        (kind, T.FAILURES_PREFIX if kind is Kind.TASK and a.startswith(T.FAILURES_PREFIX) else a, adapter)
        for adapter, kind, a, _ in recorder.writes
    }
    missing = [
        f"{kind.value} {attribute!r} by {writer}"
        for kind, attributes in WRITERS.items()
        for attribute, writers in attributes.items()
        for writer in writers
        if (kind, attribute, writer) not in seen
    ]
    creations = {(k, a) for _, k, a, whole in recorder.writes if whole}
    missing += [f"TASK {a!r} at creation" for a in CREATED_TASK if (Kind.TASK, a) not in creations]
    missing += [f"META {a!r} at creation" for a in CREATED_WORKFLOW if (Kind.WORKFLOW, a) not in creations]
    assert not missing, "registered but never written: " + ", ".join(missing)
