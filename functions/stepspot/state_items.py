"""The items of the state table: every attribute name, the one adapter that writes it, typed views.

The names below are the only place an attribute name of the state table is spelled; adapters build their
expressions from them and readers read through them (or the typed views). ``WRITERS`` says which adapter
(a module of ``stepspot.aws``) writes each attribute after the item exists; ``tests/unit/test_state_items.py``
checks it against the writes the adapters really make. Stored names and values are those of deployed
tables: change one only with a migration. Key grammar: ``stepspot.state_keys``. Pure: no AWS calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

from stepspot import run_health
from stepspot.scheduler import TaskState, WorkflowStatus


class Kind(StrEnum):
    """The item kinds of the state table (``state_keys`` builds their keys)."""

    WORKFLOW = "META"  # WF#<workflow id> / META
    TASK = "TASK"  # WF#<workflow id> / TASK#<task id>
    JOB = "JOB"  # JOB#<batch job id> / JOB
    EVENT = "EVENT"  # EVENT#<source>#<event id> / DEDUP
    BREAKER = "BREAKER"  # BREAKER#<queue name> / STATE
    READY = "READY"  # WF#<workflow id>#READY / <task id>
    DEPS = "DEPS"  # WF#<workflow id>#DEPS / <run tag>#<task id>#<parent id>


# Key and bookkeeping attributes every writer may set.
PK: Final = "pk"
SK: Final = "sk"
UPDATED_AT: Final = "updated_at"  # "last touched": every adapter that changes a task item stamps it
EXPIRES_AT: Final = "expires_at"  # the table's TTL attribute (epoch seconds)


class Common:
    """Attributes on both WORKFLOW and TASK items."""

    WORKFLOW_ID: Final = "workflow_id"
    CREATED_AT: Final = "created_at"
    STARTED_AT: Final = "started_at"
    FINISHED_AT: Final = "finished_at"
    FAILURE_DETAIL: Final = "failure_detail"
    EXECUTION_ARN: Final = "execution_arn"  # task: its task execution (scheduler); workflow: its execution (monitor)


class Workflow(Common):
    """The workflow's META item."""

    STATUS: Final = "status"
    NAME: Final = "name"
    PLAN_URI: Final = "plan_uri"
    DEFINITION_URI: Final = "definition_uri"
    PLAN_SHA256: Final = "plan_sha256"
    TOTAL_TASKS: Final = "total_tasks"
    FAILURE_MODE: Final = "failure_mode"
    RESUBMISSION: Final = "resubmission"
    SUCCEEDED: Final = "succeeded"
    FAILED: Final = "failed"
    SKIPPED: Final = "skipped"
    RUNNING: Final = "running"
    READY_COUNT: Final = "ready_count"
    REDRIVES: Final = "redrives"
    TASK_TOKEN: Final = "task_token"
    EXECUTION_STATUS: Final = "execution_status"
    EXECUTION_STATUS_VERSION: Final = "execution_status_version"
    EXECUTION_STARTED_AT: Final = "execution_started_at"
    EXECUTION_STOPPED_AT: Final = "execution_stopped_at"
    EXECUTION_ERROR: Final = "execution_error"
    EXECUTION_CAUSE: Final = "execution_cause"


class Task(Common):
    """A task's TASK item."""

    TASK_ID: Final = "task_id"
    STATE: Final = "state"
    REMAINING_DEPS: Final = "remaining_deps"
    ATTEMPTS: Final = "attempts"
    INTERRUPTIONS: Final = "interruptions"
    EXECUTION_NAME: Final = "execution_name"
    # attempt manager (task_attempts)
    CHOICE_ATTEMPT: Final = "choice_attempt"
    QUEUE: Final = "queue"
    CAPACITY: Final = "capacity"
    BASE_MEMORY: Final = "base_memory"
    FALLBACKS: Final = "fallbacks"
    CLASSIFIED_ATTEMPT: Final = "classified_attempt"
    LAST_FAILURE_CLASS: Final = "last_failure_class"
    LAST_FAILURE: Final = "last_failure"
    LAST_JOB_ID: Final = "last_job_id"
    FAILURES_PREFIX: Final = "failures_"  # + a FailureClass value: attempts failed in that class
    NEXT_MEMORY: Final = "next_memory"
    MEMORY_ATTEMPT: Final = "memory_attempt"
    MEMORY_ESCALATIONS: Final = "memory_escalations"
    # monitoring handlers (monitor_store)
    REBALANCE_RECOMMENDATIONS: Final = "rebalance_recommendations"
    LAST_NOTICE_KIND: Final = "last_notice_kind"
    LAST_NOTICE_AT: Final = "last_notice_at"
    LAST_NOTICE_INSTANCE_ID: Final = "last_notice_instance_id"
    LAST_NOTICE_JOB_ID: Final = "last_notice_job_id"
    LAST_INTERRUPTION_AT: Final = "last_interruption_at"
    LAST_INTERRUPTION_ACTION: Final = "last_interruption_action"
    NOTICE_EVENT_IDS: Final = "notice_event_ids"
    JOB_ID: Final = "job_id"
    JOB_STATUS: Final = "job_status"
    JOB_STATUS_REASON: Final = "job_status_reason"
    JOB_STATUS_VERSION: Final = "job_status_version"
    JOB_STATUS_AT: Final = "job_status_at"
    JOB_QUEUE: Final = "job_queue"
    JOB_QUEUE_KIND: Final = "job_queue_kind"
    JOB_ATTEMPTS: Final = "job_attempts"
    SPOT_ATTEMPTED: Final = "spot_attempted"
    ONDEMAND_ATTEMPTED: Final = "ondemand_attempted"
    FALLBACK_RECORDED_AT: Final = "fallback_recorded_at"
    CHECKPOINTS_COUNTED_SEQ: Final = "checkpoints_counted_seq"
    CHECKPOINT_EMPTY: Final = run_health.CHECKPOINT_EMPTY  # the run record's names (stdlib-only owner)
    LOST_WORK_SECONDS: Final = run_health.LOST_WORK_SECONDS
    RESTORE_SECONDS: Final = run_health.RESTORE_SECONDS
    RUN_HEALTH_JOBS: Final = "run_health_jobs"
    # cost ledger (cost_store)
    COST_LEDGER: Final = "cost_ledger"


class Cost:
    """The cost ledger's running sums, on TASK and WORKFLOW items alike (``CostTotals`` field -> attribute)."""

    SPOT_USD: Final = "cost_spot_usd"
    ON_DEMAND_USD: Final = "cost_on_demand_usd"
    FALLBACK_USD: Final = "cost_fallback_usd"
    LOST_USD: Final = "cost_lost_usd"
    TOTAL_USD: Final = "cost_total_usd"
    ALL_ON_DEMAND_USD: Final = "cost_all_on_demand_usd"
    ATTEMPTS: Final = "cost_attempts"


COST_SUMS: Final[Mapping[str, str]] = {
    "spot_usd": Cost.SPOT_USD,
    "on_demand_usd": Cost.ON_DEMAND_USD,
    "fallback_usd": Cost.FALLBACK_USD,
    "lost_usd": Cost.LOST_USD,
    "total_usd": Cost.TOTAL_USD,
    "all_on_demand_usd": Cost.ALL_ON_DEMAND_USD,
    "attempts": Cost.ATTEMPTS,
}


class JobIndex:
    """``JOB#<job id>`` / ``JOB``: job -> task, read by the monitoring handlers (no adapter writes it)."""

    WORKFLOW_ID: Final = Common.WORKFLOW_ID
    TASK_ID: Final = Task.TASK_ID


class Event:
    """``EVENT#<source>#<event id>`` / ``DEDUP``: an EventBridge event claimed or processed."""

    STATUS: Final = "status"
    CLAIMED_AT: Final = "claimed_at"
    OUTCOME: Final = "outcome"


class EventStatus(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    DONE = "DONE"


class Marker:
    """READY and DEPS marker items (scheduler)."""

    TASK_ID: Final = Task.TASK_ID
    AT: Final = "at"


class Breaker:
    """``BREAKER#<queue name>`` / ``STATE`` (``stepspot.breaker.BreakerState`` holds the state fields)."""

    VERSION: Final = "version"


def _names(*namespaces: type) -> frozenset[str]:
    return frozenset(
        value for ns in namespaces for key, value in vars(ns).items() if key.isupper() and isinstance(value, str)
    )


ALL_TASK: Final = _names(Common, Task, Cost)
ALL_WORKFLOW: Final = _names(Common, Workflow, Cost)

# Who creates an item: registration writes each TASK and META item whole (state_table.register_workflow,
# also on a resubmission, which resets them); these are the attributes it starts them with.
CREATOR: Final = "state_table"
CREATED_TASK: Final = frozenset(
    {
        Common.WORKFLOW_ID,
        Task.TASK_ID,
        Task.STATE,
        Task.REMAINING_DEPS,
        Task.ATTEMPTS,
        Task.INTERRUPTIONS,
        Common.CREATED_AT,
        UPDATED_AT,
    }
)
CREATED_WORKFLOW: Final = frozenset(
    {
        Common.WORKFLOW_ID,
        Workflow.NAME,
        Workflow.STATUS,
        Workflow.PLAN_URI,
        Workflow.DEFINITION_URI,
        Workflow.TOTAL_TASKS,
        Workflow.SUCCEEDED,
        Workflow.FAILED,
        Workflow.FAILURE_MODE,
        Workflow.RESUBMISSION,
        Workflow.PLAN_SHA256,
        Common.CREATED_AT,
    }
)

SCHEDULER = "scheduler_state"
FLEET = "task_attempts"
MONITOR = "monitor_store"
COSTS = "cost_store"

# The adapter (module of stepspot.aws) that writes each attribute of an existing item. One each, except
# the workflow's ``status``: the scheduler drives it (PARSED -> RUNNING -> SUCCEEDED/FAILED), and the
# monitor records how an execution ended when the scheduler could not (TIMED_OUT, ABORTED), in the same
# conditional write as the execution's status; both writes are conditional, so neither undoes the other.
WRITERS: Final[Mapping[Kind, Mapping[str, tuple[str, ...]]]] = {
    Kind.TASK: {
        **dict.fromkeys(
            (
                Task.STATE,
                Task.REMAINING_DEPS,
                Task.EXECUTION_NAME,
                Common.EXECUTION_ARN,
                Common.STARTED_AT,
                Common.FINISHED_AT,
                Common.FAILURE_DETAIL,
            ),
            (SCHEDULER,),
        ),
        **dict.fromkeys(
            (
                Task.ATTEMPTS,
                Task.CHOICE_ATTEMPT,
                Task.QUEUE,
                Task.CAPACITY,
                Task.BASE_MEMORY,
                Task.FALLBACKS,
                Task.CLASSIFIED_ATTEMPT,
                Task.LAST_FAILURE_CLASS,
                Task.LAST_FAILURE,
                Task.LAST_JOB_ID,
                Task.FAILURES_PREFIX,  # failures_<class>
                Task.NEXT_MEMORY,
                Task.MEMORY_ATTEMPT,
                Task.MEMORY_ESCALATIONS,
            ),
            (FLEET,),
        ),
        **dict.fromkeys(
            (
                Task.INTERRUPTIONS,
                Task.REBALANCE_RECOMMENDATIONS,
                Task.LAST_NOTICE_KIND,
                Task.LAST_NOTICE_AT,
                Task.LAST_NOTICE_INSTANCE_ID,
                Task.LAST_NOTICE_JOB_ID,
                Task.LAST_INTERRUPTION_AT,
                Task.LAST_INTERRUPTION_ACTION,
                Task.NOTICE_EVENT_IDS,
                Task.JOB_ID,
                Task.JOB_STATUS,
                Task.JOB_STATUS_REASON,
                Task.JOB_STATUS_VERSION,
                Task.JOB_STATUS_AT,
                Task.JOB_QUEUE,
                Task.JOB_QUEUE_KIND,
                Task.JOB_ATTEMPTS,
                Task.SPOT_ATTEMPTED,
                Task.ONDEMAND_ATTEMPTED,
                Task.FALLBACK_RECORDED_AT,
                Task.CHECKPOINTS_COUNTED_SEQ,
                Task.CHECKPOINT_EMPTY,
                Task.LOST_WORK_SECONDS,
                Task.RESTORE_SECONDS,
                Task.RUN_HEALTH_JOBS,
            ),
            (MONITOR,),
        ),
        **dict.fromkeys((Task.COST_LEDGER, *COST_SUMS.values()), (COSTS,)),
    },
    Kind.WORKFLOW: {
        Workflow.STATUS: (SCHEDULER, MONITOR),
        **dict.fromkeys(
            (
                Workflow.SUCCEEDED,
                Workflow.FAILED,
                Workflow.SKIPPED,
                Workflow.RUNNING,
                Workflow.READY_COUNT,
                Workflow.REDRIVES,
                Workflow.TASK_TOKEN,
                Common.STARTED_AT,
                Common.FINISHED_AT,
                Common.FAILURE_DETAIL,
            ),
            (SCHEDULER,),
        ),
        **dict.fromkeys(
            (
                Common.EXECUTION_ARN,
                Workflow.EXECUTION_STATUS,
                Workflow.EXECUTION_STATUS_VERSION,
                Workflow.EXECUTION_STARTED_AT,
                Workflow.EXECUTION_STOPPED_AT,
                Workflow.EXECUTION_ERROR,
                Workflow.EXECUTION_CAUSE,
            ),
            (MONITOR,),
        ),
        **dict.fromkeys(COST_SUMS.values(), (COSTS,)),
    },
    Kind.EVENT: dict.fromkeys((Event.STATUS, Event.CLAIMED_AT, Event.OUTCOME, EXPIRES_AT), (MONITOR,)),
    Kind.READY: dict.fromkeys((Marker.TASK_ID, Marker.AT), (SCHEDULER,)),
    Kind.DEPS: {Marker.AT: (SCHEDULER,)},
    Kind.JOB: {},
}

# The run tag of a workflow run (``WorkflowItem.run_tag``): part of its task executions' names.
RUN_TAG_FORMAT: Final = "{resubmission}.{redrives}"


# --------------------------------------------------------------------------- typed views (readers)


def _plain(value: Any) -> Any:
    """DynamoDB numbers arrive as Decimal: whole ones become int, the others float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _plain_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item's attributes with its numbers as int/float (``_plain``): the ``raw`` of a typed view."""
    return {key: _plain(value) for key, value in item.items()}


def _int(item: Mapping[str, Any], name: str, default: int = 0) -> int:
    value = item.get(name)
    return default if value is None else int(value)


def _str(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    return None if value is None else str(value)


@dataclass(frozen=True)
class TaskItem:
    """A TASK item as readers see it; ``raw`` keeps every attribute (numbers as int/float)."""

    workflow_id: str
    task_id: str
    state: str  # a TaskState value (a str, so a newer scheduler's state is shown, not dropped)
    remaining_deps: int
    attempts: int
    interruptions: int
    queue: str | None
    capacity: str | None
    job_id: str | None
    execution_arn: str | None
    last_failure_class: str | None
    last_failure: str | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_item(cls, item: Mapping[str, Any], workflow_id: str = "") -> TaskItem:
        from stepspot.state_keys import task_id_from_sk

        raw = _plain_item(item)
        task_id = _str(raw, Task.TASK_ID) or task_id_from_sk(str(raw[SK]))
        return cls(
            workflow_id=_str(raw, Common.WORKFLOW_ID) or workflow_id,
            task_id=task_id,
            state=_str(raw, Task.STATE) or TaskState.PENDING.value,
            remaining_deps=_int(raw, Task.REMAINING_DEPS),
            attempts=_int(raw, Task.ATTEMPTS),
            interruptions=_int(raw, Task.INTERRUPTIONS),
            queue=_str(raw, Task.QUEUE),
            capacity=_str(raw, Task.CAPACITY),
            job_id=_str(raw, Task.JOB_ID),
            execution_arn=_str(raw, Common.EXECUTION_ARN),
            last_failure_class=_str(raw, Task.LAST_FAILURE_CLASS),
            last_failure=_str(raw, Task.LAST_FAILURE),
            raw=raw,
        )

    def failures_of(self, failure_class: str) -> int:
        return _int(self.raw, f"{Task.FAILURES_PREFIX}{failure_class}")


@dataclass(frozen=True)
class WorkflowItem:
    """A workflow's META item as readers see it."""

    workflow_id: str
    status: str  # a WorkflowStatus value, or how the execution ended (monitor)
    name: str | None
    total_tasks: int
    succeeded: int
    failed: int
    skipped: int
    running: int
    ready_count: int
    failure_mode: str
    resubmission: int
    redrives: int
    task_token: str | None
    failure_detail: str | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> WorkflowItem:
        raw = _plain_item(item)
        return cls(
            workflow_id=_str(raw, Common.WORKFLOW_ID) or "",
            status=_str(raw, Workflow.STATUS) or WorkflowStatus.PARSED.value,
            name=_str(raw, Workflow.NAME),
            total_tasks=_int(raw, Workflow.TOTAL_TASKS),
            succeeded=_int(raw, Workflow.SUCCEEDED),
            failed=_int(raw, Workflow.FAILED),
            skipped=_int(raw, Workflow.SKIPPED),
            running=_int(raw, Workflow.RUNNING),
            ready_count=_int(raw, Workflow.READY_COUNT),
            failure_mode=_str(raw, Workflow.FAILURE_MODE) or "fail",
            resubmission=_int(raw, Workflow.RESUBMISSION),
            redrives=_int(raw, Workflow.REDRIVES),
            task_token=_str(raw, Workflow.TASK_TOKEN),
            failure_detail=_str(raw, Common.FAILURE_DETAIL),
            raw=raw,
        )

    @property
    def run_tag(self) -> str:
        """``<resubmission>.<redrives>``: a resubmitted or redriven run gets fresh task executions."""
        return RUN_TAG_FORMAT.format(resubmission=self.resubmission, redrives=self.redrives)


@dataclass(frozen=True)
class JobIndexItem:
    workflow_id: str
    task_id: str

    @classmethod
    def from_item(cls, item: Mapping[str, Any] | None) -> JobIndexItem | None:
        if not item or JobIndex.WORKFLOW_ID not in item or JobIndex.TASK_ID not in item:
            return None
        return cls(str(item[JobIndex.WORKFLOW_ID]), str(item[JobIndex.TASK_ID]))


@dataclass(frozen=True)
class EventItem:
    status: EventStatus
    claimed_at: int
    outcome: str | None

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> EventItem:
        return cls(EventStatus(str(item[Event.STATUS])), _int(item, Event.CLAIMED_AT), _str(item, Event.OUTCOME))
