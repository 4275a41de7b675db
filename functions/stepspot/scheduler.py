"""Dataflow scheduling: a task starts as soon as its own dependencies have finished. Pure logic.

The scheduler reacts to three events of the state machines: ``start`` (the workflow's StartWorkflow
state, holding its ``.waitForTaskToken`` token), ``task_succeeded`` and ``task_failed`` (the end of a
task execution). Every state change goes through a ``SchedulerStore`` whose writes are conditional
(DynamoDB, ``stepspot.aws.scheduler_state``), so a duplicated or reordered delivery changes nothing:

- a dependency is decremented at most once per (run, task, finished parent): a marker item per edge is
  written in the same transaction as the decrement;
- a task moves PENDING/READY -> RUNNING in one conditional transaction that also takes a slot of the
  workflow's ``max_running_tasks``; one that finds no free slot waits as READY and is started when a
  running task ends (a slot is released in the same transaction that records the end). Writes are
  merged where the conditions allow: the write that counts a task's last edge also starts it (a free
  slot) or parks it (none), and a task with no dependents that ends hands its slot to a READY task in
  the write that records its end;
- task executions have deterministic names, so starting one twice starts it once;
- the workflow's token is answered whenever the counters say the workflow is complete; answering a
  token twice is harmless (the second answer is rejected by Step Functions and ignored).

Bounded invocations: a task may have up to 99,999 dependents or descendants
(``workflow_limits.MAX_WORKFLOW_TASKS`` - 1), and a workflow as many roots, far more than one Lambda
invocation can write. One event handles at most ``DEPENDENTS_PER_INVOCATION`` tasks and hands the rest
on as a continuation (``Continuations``: on AWS an asynchronous invocation of the scheduler itself):

- ``resolve_dependents`` (after ``task_succeeded``): the dependents of a task from an ``offset`` on;
- ``skip_descendants`` (after ``task_failed`` in ``continue`` mode): the descendants of the failed task,
  in the deterministic breadth-first order of ``iter_descendants``, from an ``offset`` on (each slice
  walks the plan again up to its end: reading the plan is cheap next to one write per task);
- ``start_remaining`` (after ``start``): the tasks to start initially (``SchedulerStore.initially_ready``,
  in task-id order) after the task id the previous slice ended with.

Slices of one chain run one after the other, so at most one invocation per chain writes at a time, and
each carries the run tag: a continuation of an earlier run (before a redrive) changes nothing. The
workflow cannot complete before the last slice: a dependent not yet resolved, a descendant not yet
skipped or a root not yet started is still PENDING, so the counters do not add up to the total; each
slice heartbeats the workflow's token like a task event.

Failure modes (the plan's ``failure_mode``): ``fail`` (default) fails the workflow as soon as one task
has failed for good and stops the task executions still running; ``continue`` skips only the tasks
downstream of the failed one, lets independent branches finish, and then fails the workflow (its
summary lists what succeeded, failed and was skipped) so alarms still fire.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from enum import StrEnum
from itertools import islice
from typing import Any, Protocol

MAX_EXECUTION_NAME = 80

# Tasks one scheduler invocation handles before it hands the rest to a continuation: dependents
# resolved, descendants skipped (a 2-item transaction each) or initial tasks started/parked. Each costs at
# most: resolve_dependency (a 2-item TransactWriteItems, two for a join's edge but its last, whose write
# also starts the task in a free slot, 3 items, or parks it, 4 items), StartExecution and, when the slot
# went meanwhile, a start (3 items) or park of its own: about 4 calls at 10-25 ms each on AWS
# (transactions; /work/shared/notes/aws-facts.md has no faster figure), <= 100 ms per dependent. 1,000 of
# them take <= 100 s, a third of the scheduler's 300 s timeout (terraform/main.tf
# functions.scheduler.timeout): the rest is margin for TransactionConflict retries with backoff, draining
# READY tasks, a cold start and the plan shard read. A fan-out of 99,999 needs 100 invocations.
DEPENDENTS_PER_INVOCATION = 1000

# Workflows whose last-read counters a warm scheduler keeps (``Scheduler.last_read``)
LAST_READ_KEPT = 64

# The actions of continuation events (handlers/scheduler.py)
RESOLVE_DEPENDENTS = "resolve_dependents"
SKIP_DESCENDANTS = "skip_descendants"
START_REMAINING = "start_remaining"


class TaskState(StrEnum):
    PENDING = "PENDING"
    READY = "READY"  # dependencies done, waiting for a free slot
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


class WorkflowStatus(StrEnum):
    PARSED = "PARSED"  # registered by the parser, not started yet (and again after a redrive reset)
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


FINAL_TASK_STATES = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.SKIPPED})
FINAL_WORKFLOW_STATES = frozenset({WorkflowStatus.SUCCEEDED, WorkflowStatus.FAILED})


class StartOutcome(StrEnum):
    STARTED = "started"  # this call moved the task to RUNNING
    ALREADY_RUNNING = "already_running"  # an earlier delivery did (start the execution again: idempotent)
    NO_SLOT = "no_slot"  # parked as READY
    NOT_STARTABLE = "not_startable"  # finished, skipped, or dependencies left


@dataclass
class WorkflowCounters:
    status: str
    total: int
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    running: int = 0
    ready: int = 0  # tasks parked READY, waiting for a slot
    failure_mode: str = "fail"
    task_token: str | None = None
    first_failure: str | None = None
    run_tag: str = "0.0"  # resubmission.redrive: part of execution names, so a re-run starts new executions

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.skipped

    @property
    def complete(self) -> bool:
        return self.finished >= self.total


class SchedulerStore(Protocol):
    """The scheduler's view of the state table (conditional writes; see the module docstring)."""

    def begin(self, workflow_id: str, task_token: str) -> WorkflowCounters: ...
    def initially_ready(self, workflow_id: str, after: str | None = None, limit: int | None = None) -> list[str]: ...
    def reset_unfinished(self, workflow_id: str, plan: PlanView) -> None: ...
    def counters(self, workflow_id: str) -> WorkflowCounters: ...
    def resolve_dependency(
        self, workflow_id: str, task_id: str, parent_id: str, run_tag: str = "0.0", park: bool = False
    ) -> int: ...
    def resolve_to_start(
        self,
        workflow_id: str,
        task_id: str,
        parent_id: str,
        execution_name: str,
        execution_arn: str,
        max_running: int,
        run_tag: str = "0.0",
    ) -> tuple[int, bool]: ...
    def try_start(
        self,
        workflow_id: str,
        task_id: str,
        execution_name: str,
        execution_arn: str,
        max_running: int,
        from_ready: bool = False,
    ) -> StartOutcome: ...
    def ready_tasks(self, workflow_id: str, limit: int) -> list[str]: ...
    def finish_into(
        self,
        workflow_id: str,
        task_id: str,
        execution_name: str,
        next_id: str,
        next_execution_name: str,
        next_execution_arn: str,
    ) -> bool: ...
    def park(self, workflow_id: str, task_id: str) -> None: ...
    def finish(self, workflow_id: str, task_id: str, state: TaskState, detail: str | None = None) -> bool: ...
    def skip(self, workflow_id: str, task_id: str, cause: str) -> bool: ...
    def complete(self, workflow_id: str, status: WorkflowStatus, detail: str | None = None) -> bool: ...
    def running_executions(self, workflow_id: str) -> list[str]: ...


class Orchestrator(Protocol):
    """Step Functions as the scheduler uses it."""

    def execution_arn(self, execution_name: str) -> str: ...
    def start_task(self, execution_name: str, payload: Mapping[str, Any]) -> str: ...
    def stop_task(self, execution_arn: str, cause: str) -> None: ...
    def workflow_succeeded(self, task_token: str, output: Mapping[str, Any]) -> None: ...
    def workflow_failed(self, task_token: str, error: str, cause: str) -> None: ...
    def workflow_heartbeat(self, task_token: str) -> None: ...


class Continuations(Protocol):
    """Where the rest of a fan-out goes: ``send`` must deliver ``event`` to the scheduler again, later and
    at least once (on AWS an asynchronous self-invocation: Lambda retries it, then its on-failure
    destination alerts; duplicates are harmless, see ``Scheduler.resolve_dependents``)."""

    def send(self, event: Mapping[str, Any]) -> None: ...


class PlanView(Protocol):
    """What the scheduler reads of a plan: workflow-level fields and one task at a time (an in-memory
    ``stepspot.plan.Plan``, or ``stepspot.handlers._plans.ShardedPlan`` reading one shard per task)."""

    @property
    def workflow_id(self) -> str: ...
    @property
    def failure_mode(self) -> str: ...

    def has_task(self, task_id: str) -> bool: ...
    def dependents(self, task_id: str) -> Sequence[str]: ...
    def remaining_dependencies(self, task_ids: Iterable[str], done: AbstractSet[str]) -> Mapping[str, int]: ...


# ---------------------------------------------------------------------------------------------------
# Pure helpers


@dataclass(frozen=True)
class DependentsSlice:
    """The dependents one invocation resolves, and where the next invocation starts (None: the last)."""

    task_ids: Sequence[str]
    next_offset: int | None


def dependents_slice(dependents: Sequence[str], offset: int, size: int) -> DependentsSlice:
    """``dependents[offset:offset + size]`` and the offset after it, if any dependents are left."""
    if offset < 0 or size < 1:
        raise ValueError(f"a slice of dependents needs offset >= 0 and size >= 1 (got {offset} and {size})")
    end = offset + size
    return DependentsSlice(dependents[offset:end], end if end < len(dependents) else None)


def descendants_slice(
    dependents_of: Callable[[str], Iterable[str]], task_id: str, offset: int, size: int
) -> DependentsSlice:
    """The descendants of ``task_id`` at ``offset:offset + size`` of ``iter_descendants``' order, and the
    offset after them if any are left. The walk stops one past the slice: a slice costs its offset."""
    if offset < 0 or size < 1:
        raise ValueError(f"a slice of descendants needs offset >= 0 and size >= 1 (got {offset} and {size})")
    walked = list(islice(iter_descendants(dependents_of, task_id), offset, offset + size + 1))
    end = offset + size
    return DependentsSlice(walked[:size], end if len(walked) > size else None)


def continuation_event(
    workflow_id: str,
    task_id: str,
    plan_uri: str,
    offset: int,
    run_tag: str,
    action: str = RESOLVE_DEPENDENTS,
    reason: str | None = None,
) -> dict[str, Any]:
    """The scheduler event that resolves ``task_id``'s dependents (or, ``SKIP_DESCENDANTS``, skips its
    descendants because of ``reason``) from ``offset`` on. ``run_tag`` keeps a continuation of an
    earlier run (before a redrive recounted the dependencies) from changing the new run."""
    event: dict[str, Any] = {
        "action": action,
        "workflow_id": workflow_id,
        "task_id": task_id,
        "plan_uri": plan_uri,
        "offset": offset,
        "run_tag": run_tag,
    }
    if reason is not None:
        event["reason"] = reason
    return event


def start_continuation_event(workflow_id: str, plan_uri: str, after: str, run_tag: str) -> dict[str, Any]:
    """The scheduler event that starts the initially ready tasks whose ids sort after ``after``."""
    return {
        "action": START_REMAINING,
        "workflow_id": workflow_id,
        "plan_uri": plan_uri,
        "after": after,
        "run_tag": run_tag,
    }


def execution_name(workflow_id: str, task_id: str, run_tag: str = "0.0") -> str:
    """Deterministic, unique (per workflow, task and run) and at most 80 characters of ``[A-Za-z0-9_-]``.

    The hash keeps two workflows with the same task id apart, and a resubmitted or redriven run apart
    from the earlier one (``run_tag``); the readable prefix helps in the console.
    """
    digest = hashlib.sha256(f"{workflow_id}\x1f{task_id}\x1f{run_tag}".encode()).hexdigest()[:16]
    head = f"{task_id[:36]}-{workflow_id[:24]}".strip("-")
    return f"{head}-{digest}"[:MAX_EXECUTION_NAME]


def iter_descendants(dependents_of: Callable[[str], Iterable[str]], task_id: str) -> Iterator[str]:
    """Every task downstream of ``task_id``, breadth first in order of discovery, each once: the same
    order for the same plan (dependents come in plan order), which lets a continuation resume at an
    offset. Lazy: a task's dependents are read only once the walk needs them, so a slice of a wide
    fan-out reads the failed task's own plan shard, not the shards of all its dependents."""
    seen: set[str] = set()
    expand: deque[str] = deque([task_id])
    while expand:
        for child in dependents_of(expand.popleft()):
            if child not in seen:
                seen.add(child)
                yield child
                expand.append(child)


def task_input(workflow_id: str, task_id: str, plan_uri: str) -> dict[str, Any]:
    """The input of a task execution: ids and a URI, nothing that grows with the workflow."""
    return {
        "workflow_id": workflow_id,
        "task_id": task_id,
        "plan_uri": plan_uri,
        "attempt": 1,
        "on_demand": False,
    }


def summary(counters: WorkflowCounters, workflow_id: str) -> dict[str, Any]:
    return {
        "workflow_id": workflow_id,
        "status": counters.status,
        "total_tasks": counters.total,
        "succeeded": counters.succeeded,
        "failed": counters.failed,
        "skipped": counters.skipped,
    }


# ---------------------------------------------------------------------------------------------------
# The scheduler


@dataclass
class Scheduler:
    store: SchedulerStore
    orchestrator: Orchestrator
    max_running: int
    # None: every slice in this call (in-process callers with no time limit); the Lambda always sets it.
    continuations: Continuations | None = None
    slice_size: int | None = None  # None: DEPENDENTS_PER_INVOCATION (read when used: tests may lower it)
    started: list[str] = field(default_factory=list)  # task ids this invocation started (for the response)
    continued_at: int | str | None = None  # where this invocation's continuation starts (offset or task id)
    # workflow id -> its counters as this warm container last read them (the Lambda keeps one map across
    # invocations): a guess whether READY tasks wait and of the run tag, never a decision's basis
    last_read: MutableMapping[str, WorkflowCounters] = field(default_factory=dict)

    def start(self, plan: PlanView, plan_uri: str, task_token: str) -> dict[str, Any]:
        """StartWorkflow: remember the token and start the tasks with no unfinished dependency (the
        roots, or more when a resubmission marked tasks as already done), a slice at a time."""
        previous = self.store.counters(plan.workflow_id)
        if previous.status in FINAL_WORKFLOW_STATES and previous.task_token not in (None, task_token):
            # A new token on a finished workflow: StartWorkflow was redriven (RedriveExecution). Run the
            # tasks that did not succeed again; a duplicate of the original start has the old token.
            self.store.reset_unfinished(plan.workflow_id, plan)
        counters = self.store.begin(plan.workflow_id, task_token)
        if counters.status in FINAL_WORKFLOW_STATES:
            # A redelivered start after the end: answer the (new) token with the known outcome.
            self._answer(plan.workflow_id, counters)
            return self._response(plan.workflow_id, counters)
        return self._settle(plan, self._start_initial(plan, plan_uri, None, counters))

    def start_remaining(self, plan: PlanView, plan_uri: str, after: str, run_tag: str) -> dict[str, Any]:
        """A continuation of ``start``: start (or park) the initially ready tasks whose ids sort after
        ``after``. Idempotent: a task already started is RUNNING (its execution is started again by
        name, which is harmless) and one already parked is READY (no longer a candidate: left to the
        drain), so a duplicate starts or parks each task at most once; it may run ahead of the chain,
        each of its invocations bounded too. A continuation of an earlier run or of a workflow no
        longer running changes nothing."""
        counters = self._in_run(plan, run_tag, lambda c: self._start_initial(plan, plan_uri, after, c))
        return self._settle(plan, counters)

    def task_succeeded(self, plan: PlanView, plan_uri: str, task_id: str) -> dict[str, Any]:
        workflow_id = plan.workflow_id
        self._known(plan, task_id)
        if not self._hand_slot_to_ready_task(plan, plan_uri, task_id):
            self.store.finish(workflow_id, task_id, TaskState.SUCCEEDED)
        counters = self.store.counters(workflow_id)  # read after our own finish: the basis of every decision
        if counters.status == WorkflowStatus.RUNNING:
            counters = self._resolve_dependents(plan, plan_uri, task_id, 0, counters)
        return self._settle(plan, counters)

    def resolve_dependents(
        self, plan: PlanView, plan_uri: str, task_id: str, offset: int, run_tag: str
    ) -> dict[str, Any]:
        """A continuation of ``task_succeeded``: resolve ``task_id``'s dependents from ``offset`` on.

        Idempotent: a duplicate finds every edge of its slice counted already (per-edge markers) and
        its ready tasks started or parked (conditional starts); it hands on the same next slice, which
        is just as harmless. A continuation of an earlier run (the workflow was redriven since: its
        dependencies were recounted) or of a workflow no longer running changes nothing."""
        self._known(plan, task_id)
        counters = self._in_run(plan, run_tag, lambda c: self._resolve_dependents(plan, plan_uri, task_id, offset, c))
        return self._settle(plan, counters)

    def task_failed(self, plan: PlanView, plan_uri: str, task_id: str, cause: str) -> dict[str, Any]:
        workflow_id = plan.workflow_id
        self._known(plan, task_id)
        self.store.finish(workflow_id, task_id, TaskState.FAILED, detail=cause)
        reason = f"task {task_id} failed: {cause}"
        if plan.failure_mode == "continue":
            counters = self._skip_descendants(plan, plan_uri, task_id, 0, reason, self.store.counters(workflow_id))
            return self._settle(plan, counters, failure=reason)
        if self.store.complete(workflow_id, WorkflowStatus.FAILED, detail=reason):
            for arn in self.store.running_executions(workflow_id):
                self.orchestrator.stop_task(arn, cause=f"workflow failed: {reason}"[:256])
        return self._settle(plan, self.store.counters(workflow_id), failure=reason)

    def skip_descendants(
        self, plan: PlanView, plan_uri: str, task_id: str, offset: int, run_tag: str, reason: str
    ) -> dict[str, Any]:
        """A continuation of ``task_failed`` in ``continue`` mode: skip ``task_id``'s descendants from
        ``offset`` on (``iter_descendants`` order). Idempotent: a skip is conditional on the task still
        being PENDING/READY, so a duplicate counts nothing twice and hands on the same next slice. A
        continuation of an earlier run (a redrive made the skipped tasks PENDING again) or of a workflow
        no longer running changes nothing."""
        self._known(plan, task_id)
        counters = self._in_run(
            plan, run_tag, lambda c: self._skip_descendants(plan, plan_uri, task_id, offset, reason, c)
        )
        return self._settle(plan, counters, failure=reason)

    # -- internals -------------------------------------------------------------------------------

    def _in_run(
        self, plan: PlanView, run_tag: str, step: Callable[[WorkflowCounters], WorkflowCounters]
    ) -> WorkflowCounters:
        """Run a continuation's ``step`` only for the run it belongs to and only while the workflow runs
        (one of an earlier run, before a redrive, or of a finished workflow changes nothing)."""
        counters = self.store.counters(plan.workflow_id)
        if counters.status == WorkflowStatus.RUNNING and counters.run_tag == run_tag:
            counters = step(counters)
        return counters

    def _slice_size(self) -> int:
        return self.slice_size or DEPENDENTS_PER_INVOCATION  # read when used: tests lower the constant

    def _hand_on(self, event: dict[str, Any], where: int | str) -> bool:
        """Send the rest of a chain to a continuation (False: none, the caller goes on in this call).
        Called after this slice's writes: a failure before retries this event, whose slice is harmless to
        redo, and the next slice starts only once this one is done (one writer per chain at a time)."""
        if self.continuations is None:
            return False
        self.continuations.send(event)
        self.continued_at = where
        return True

    def _start_initial(
        self, plan: PlanView, plan_uri: str, after: str | None, counters: WorkflowCounters
    ) -> WorkflowCounters:
        """Start or park one slice of the initially ready tasks after ``after`` (all of them without
        ``continuations``), hand the rest on, then start READY tasks while slots are free."""
        size = self._slice_size()
        while True:
            found = self.store.initially_ready(plan.workflow_id, after=after, limit=size + 1)
            part = found[:size]
            self._launch(plan, plan_uri, part, counters.run_tag, free_slots=self.max_running - counters.running)
            # Read again after parking: a task that ended meanwhile may have found no READY task to drain.
            counters = self._drain(plan, plan_uri, self.store.counters(plan.workflow_id), 0)
            if len(found) <= size or counters.status != WorkflowStatus.RUNNING:
                return counters
            after = part[-1]
            event = start_continuation_event(plan.workflow_id, plan_uri, after, counters.run_tag)
            if self._hand_on(event, after):
                return counters

    def _skip_descendants(
        self, plan: PlanView, plan_uri: str, task_id: str, offset: int, reason: str, counters: WorkflowCounters
    ) -> WorkflowCounters:
        """Skip one slice of ``task_id``'s descendants (all of them without ``continuations``), hand the
        rest on, then start READY tasks into the slot the failed task released."""
        size = self._slice_size()
        cause = f"upstream task {task_id} failed"
        while True:
            part = descendants_slice(plan.dependents, task_id, offset, size)
            for downstream in part.task_ids:
                self.store.skip(plan.workflow_id, downstream, cause=cause)
            counters = self._drain(plan, plan_uri, self.store.counters(plan.workflow_id), 0)
            if part.next_offset is None or counters.status != WorkflowStatus.RUNNING:
                return counters
            offset = part.next_offset
            event = continuation_event(
                plan.workflow_id, task_id, plan_uri, offset, counters.run_tag, action=SKIP_DESCENDANTS, reason=reason
            )
            if self._hand_on(event, offset):
                return counters

    def _resolve_dependents(
        self, plan: PlanView, plan_uri: str, task_id: str, offset: int, counters: WorkflowCounters
    ) -> WorkflowCounters:
        """Resolve one slice of the dependents (all of them without ``continuations``), start or park
        those now ready, hand the rest on, then start READY tasks while slots are free."""
        dependents = plan.dependents(task_id)
        size = self._slice_size()
        while True:
            part = dependents_slice(dependents, offset, size)
            # Each dependent starts as soon as its last dependency is counted, not after the whole slice:
            # on a wide fan-out the first ones run while the rest are still being resolved.
            free, started = self.max_running - counters.running, 0
            for child in part.task_ids:
                started += self._count_parent(plan, plan_uri, child, task_id, counters.run_tag, free - started)
            # Read again after parking: a task that ended meanwhile may have found no READY task to drain.
            # (No dependent in the slice, nothing parked: the counters read after our own write hold.)
            if part.task_ids:
                counters = self.store.counters(plan.workflow_id)
            counters = self._drain(plan, plan_uri, counters, 0)
            if part.next_offset is None or counters.status != WorkflowStatus.RUNNING:
                break
            offset = part.next_offset
            if self._hand_on(continuation_event(plan.workflow_id, task_id, plan_uri, offset, counters.run_tag), offset):
                break
            counters = self.store.counters(plan.workflow_id)
        return counters

    def _count_parent(
        self, plan: PlanView, plan_uri: str, task_id: str, parent_id: str, run_tag: str, free_slots: int
    ) -> int:
        """Count ``parent_id``'s end for ``task_id``; the write of its last edge also starts the task in a
        free slot, or parks it when none is left (one call). Returns 1 if this call started it."""
        workflow_id = plan.workflow_id
        if free_slots <= 0:
            self.store.resolve_dependency(workflow_id, task_id, parent_id, run_tag, park=True)
            return 0
        name = execution_name(workflow_id, task_id, run_tag)
        arn = self.orchestrator.execution_arn(name)
        left, started = self.store.resolve_to_start(
            workflow_id, task_id, parent_id, name, arn, self.max_running, run_tag
        )
        if started:
            self.orchestrator.start_task(name, task_input(workflow_id, task_id, plan_uri))
            self.started.append(task_id)
            return 1
        # Nothing left but not started here (the slot went meanwhile, or an earlier delivery counted it)
        return self._launch(plan, plan_uri, [task_id], run_tag, free_slots=free_slots) if left == 0 else 0

    @staticmethod
    def _known(plan: PlanView, task_id: str) -> None:
        if not plan.has_task(task_id):
            from stepspot.errors import UnknownTaskError

            raise UnknownTaskError(f"task {task_id!r} is not part of workflow {plan.workflow_id}", task_id=task_id)

    def _launch(
        self,
        plan: PlanView,
        plan_uri: str,
        task_ids: Iterable[str],
        run_tag: str,
        from_ready: bool = False,
        free_slots: int | None = None,
    ) -> int:
        """Start each task that can take a slot; returns how many this call started. Once ``free_slots``
        (as last read) are used up, newly ready tasks are parked READY directly."""
        started = 0
        for task_id in task_ids:
            if not from_ready and free_slots is not None and started >= free_slots:
                self.store.park(plan.workflow_id, task_id)
                continue
            name = execution_name(plan.workflow_id, task_id, run_tag)
            arn = self.orchestrator.execution_arn(name)
            outcome = self.store.try_start(plan.workflow_id, task_id, name, arn, self.max_running, from_ready)
            if outcome in (StartOutcome.STARTED, StartOutcome.ALREADY_RUNNING):
                self.orchestrator.start_task(name, task_input(plan.workflow_id, task_id, plan_uri))
                if outcome is StartOutcome.STARTED:
                    self.started.append(task_id)
                    started += 1
        return started

    def _drain(
        self, plan: PlanView, plan_uri: str, counters: WorkflowCounters, launched_since_read: int
    ) -> WorkflowCounters:
        """Start READY tasks while slots are free (each start re-checks its slot atomically)."""
        while counters.status == WorkflowStatus.RUNNING:
            free = self.max_running - counters.running - launched_since_read
            if free <= 0 or counters.ready <= 0:
                break
            ready = self.store.ready_tasks(plan.workflow_id, limit=free)
            if not ready or not self._launch(plan, plan_uri, ready, counters.run_tag, from_ready=True):
                break  # nothing waits, or others took the slots: their invocations drain the rest
            counters, launched_since_read = self.store.counters(plan.workflow_id), 0
        return counters

    def _hand_slot_to_ready_task(self, plan: PlanView, plan_uri: str, task_id: str) -> bool:
        """A task with no dependents that ends while tasks wait READY (as this container last read the
        counters) gives its slot to one of them in the write that finishes it, then starts its execution:
        one write and no read of the counters in between, where a finish and a drain take two of each. The
        guess of the run tag (in the execution names) is checked by that write: the task that ends must
        be RUNNING as the execution so named. False: nothing was written (no READY task, or any condition
        false: the ready task taken, the run redriven, a redelivery); the caller finishes as before."""
        workflow_id = plan.workflow_id
        seen = self.last_read.get(workflow_id)
        if seen is None or seen.ready <= 0 or seen.status != WorkflowStatus.RUNNING or plan.dependents(task_id):
            return False
        waiting = self.store.ready_tasks(workflow_id, limit=1)
        if not waiting:
            return False
        next_id = waiting[0]
        name = execution_name(workflow_id, next_id, seen.run_tag)
        own_name = execution_name(workflow_id, task_id, seen.run_tag)
        if not self.store.finish_into(
            workflow_id, task_id, own_name, next_id, name, self.orchestrator.execution_arn(name)
        ):
            return False
        self.orchestrator.start_task(name, task_input(workflow_id, next_id, plan_uri))
        self.started.append(next_id)
        return True

    def _settle(self, plan: PlanView, counters: WorkflowCounters, failure: str | None = None) -> dict[str, Any]:
        if len(self.last_read) >= LAST_READ_KEPT:  # a long-lived container's earlier workflows
            self.last_read.clear()
        self.last_read[plan.workflow_id] = counters
        if counters.complete and counters.status == WorkflowStatus.RUNNING:
            status = WorkflowStatus.SUCCEEDED if counters.failed == 0 else WorkflowStatus.FAILED
            self.store.complete(plan.workflow_id, status, detail=failure)
            counters = self.store.counters(plan.workflow_id)
        if counters.status in FINAL_WORKFLOW_STATES:
            self._answer(plan.workflow_id, counters)
        elif counters.task_token:
            # StartWorkflow's HeartbeatSeconds: every task event proves the callback chain still works.
            self.orchestrator.workflow_heartbeat(counters.task_token)
        return self._response(plan.workflow_id, counters)

    def _answer(self, workflow_id: str, counters: WorkflowCounters) -> None:
        if not counters.task_token:
            return
        if counters.status == WorkflowStatus.SUCCEEDED:
            self.orchestrator.workflow_succeeded(counters.task_token, summary(counters, workflow_id))
        else:
            cause = json.dumps({**summary(counters, workflow_id), "reason": counters.first_failure or "a task failed"})
            self.orchestrator.workflow_failed(counters.task_token, "WorkflowTasksFailed", cause)

    def _response(self, workflow_id: str, counters: WorkflowCounters) -> dict[str, Any]:
        return {**summary(counters, workflow_id), "started": len(self.started)}
