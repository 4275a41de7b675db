"""Plan reading of the scheduling Lambdas: one task's slice of the plan, never the whole plan.

``load_plan`` reads the small header (cached per URI) and returns a ``ShardedPlan`` whose lookups load
only the shard holding the task asked for. Stored plans are immutable per URI (the shard keys name the
plan's content digest), so headers and shards are cached across warm invocations in small LRUs whose
size does not depend on the workflow: memory of a cold event is the same at 1k and 100k tasks
(``make bench``, bench/bench_plan_reads.py). Plans of format 1 (one JSON document) are read whole.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from typing import Any

from stepspot.aws.plan_objects import read_plan_document, read_shard
from stepspot.aws.s3 import DocumentStore
from stepspot.errors import FatalError, UnknownTaskError
from stepspot.handlers._cache import register
from stepspot.plan import Plan, PlannedTask
from stepspot.plan_store import PlanFormatError, PlanHeader, Shard, shard_of

_HEADERS = 8  # plans a warm Lambda keeps the header of
_SHARDS = 16  # shards (about TASKS_PER_SHARD tasks each) a warm Lambda keeps
_headers: OrderedDict[str, PlanHeader | Plan] = OrderedDict()
_shards: OrderedDict[tuple[str, int], Shard] = OrderedDict()


class PlanUnreadableError(FatalError):
    """Indicates that a plan in S3 is not a plan this version of stepspot can read."""


class ShardedPlan:
    """A stored plan seen one task at a time (``stepspot.scheduler.PlanView`` and the attempt manager's
    ``task``). Made per invocation: the shards it used stay with it for that invocation (a
    ``failure_mode: continue`` walk downstream reads each shard once), and in the shared LRU after."""

    def __init__(self, documents: DocumentStore, plan_uri: str, header: PlanHeader) -> None:
        self._documents = documents
        self.plan_uri = plan_uri
        self.header = header
        self._used: dict[int, Shard] = {}

    @property
    def workflow_id(self) -> str:
        return self.header.workflow_id

    @property
    def failure_mode(self) -> str:
        return self.header.failure_mode

    @property
    def task_count(self) -> int:
        return self.header.task_count

    def _shard(self, index: int, keep: bool = True) -> Shard:
        shard = self._used.get(index)
        if shard is None:
            shard = _cached_shard(self._documents, self.plan_uri, self.header, index)
            if keep:
                self._used[index] = shard
        return shard

    def _shard_of(self, task_id: str) -> Shard:
        return self._shard(shard_of(task_id, self.header.shard_count))

    def has_task(self, task_id: str) -> bool:
        return task_id in self._shard_of(task_id)

    def task(self, task_id: str) -> PlannedTask:
        shard = self._shard_of(task_id)
        if task_id not in shard:
            raise UnknownTaskError(f"task {task_id!r} is not part of workflow {self.workflow_id}", task_id=task_id)
        return shard.task(task_id)

    def dependents(self, task_id: str) -> list[str]:
        return self._shard_of(task_id).dependents(task_id)

    def remaining_dependencies(self, task_ids: Iterable[str], done: AbstractSet[str]) -> dict[str, int]:
        """Redrive: for each task, its dependencies not in ``done``; shard by shard, none kept after."""
        by_shard: defaultdict[int, list[str]] = defaultdict(list)
        for task_id in task_ids:
            by_shard[shard_of(task_id, self.header.shard_count)].append(task_id)
        remaining: dict[str, int] = {}
        for index, ids in by_shard.items():
            shard = self._shard(index, keep=False)
            for task_id in ids:
                if task_id in shard:
                    remaining[task_id] = sum(1 for d in shard.depends_on(task_id) if d not in done)
        return remaining

    def task_ids(self) -> Iterator[str]:
        """Every task id, shard by shard (reads every shard: not for a per-event path)."""
        for index in range(self.header.shard_count):
            yield from self._shard(index, keep=False).ids()


def load_plan(documents: DocumentStore, plan_uri: str) -> ShardedPlan | Plan:
    """The plan at ``plan_uri``: a ``ShardedPlan`` (format 2), or the whole ``Plan`` (format 1)."""
    document = _headers.get(plan_uri)
    if document is None:
        try:
            document = read_plan_document(documents, plan_uri)
        except PlanFormatError as exc:
            raise PlanUnreadableError(str(exc)) from exc
        _remember(_headers, plan_uri, document, _HEADERS)
    else:
        _headers.move_to_end(plan_uri)
    if isinstance(document, Plan):
        return document
    return ShardedPlan(documents, plan_uri, document)


def _cached_shard(documents: DocumentStore, plan_uri: str, header: PlanHeader, index: int) -> Shard:
    key = (plan_uri, index)
    shard = _shards.get(key)
    if shard is not None:
        _shards.move_to_end(key)
        return shard
    try:
        shard = read_shard(documents, plan_uri, header, index)
    except PlanFormatError as exc:
        raise PlanUnreadableError(str(exc)) from exc
    _remember(_shards, key, shard, _SHARDS)
    return shard


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any, size: int) -> None:
    cache[key] = value
    while len(cache) > size:
        cache.popitem(last=False)


def clear() -> None:
    _headers.clear()
    _shards.clear()


register(clear)
