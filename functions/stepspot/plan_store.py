"""The stored plan: a small header at ``plan_uri`` and the tasks in gzip'd shards. Pure (no AWS calls).

Why this shape (docs/plan-format.md): a scheduler or attempt-manager event concerns one task, so what it
reads must not grow with the workflow. The header holds only workflow-level facts (name, failure mode,
estimate, task and shard counts); each task lives in exactly one shard, chosen by a stable hash of its
id (CRC-32), so a reader finds any task by reading the header and one shard of at most about
``TASKS_PER_SHARD`` tasks. Within a shard each task is a positional JSON array; the settings most tasks
share (image, resources, retries, environment...) are interned once per shard as a "profile", and
the per-task cost estimates are not stored but recomputed from the profile's hourly prices (exactly:
encoding checks the recomputed value and keeps the explicit one when float rounding differs). The
encoding is lossless: ``decode_plan(header, shards)`` gives back a ``Plan`` equal to the one encoded
(order, levels and critical path are recomputed by ``dag.analyse`` from the stored edges and runtimes).

Keys: the header at ``workflows/<id>/plan.json``, shards at ``workflows/<id>/plan/<digest>/<n>.json.gz``
and the warnings (any number) at ``.../warnings.json.gz``; ``digest`` is a hash of the plan's content,
so shards of two different plans of one workflow (a resubmission) never mix, and writing the same plan
again writes the same keys with the same bytes (idempotent).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import operator
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from stepspot import dag
from stepspot._gc import gc_paused
from stepspot.errors import FatalError
from stepspot.plan import Plan, PlannedTask

PLAN_FORMAT = "stepspot-plan-shards"
PLAN_FORMAT_VERSION = 2  # 1 was the whole plan as one JSON document (stepspot.plan.plan_to_json)
# Shard size: small enough that one shard parses in about a millisecond and a cold reader's memory does
# not depend on the workflow, large enough that a 100k-task plan is about 200 objects to write.
TASKS_PER_SHARD = 512
MAX_STORED_BYTES_PER_TASK = 150  # issue 16's budget (header + shards); the benchmark DAGs take 15-30
_GZIP_LEVEL = 6  # level 9 saves ~1% more at twice the time

# Profile: the PlannedTask fields many tasks share (interned once per shard). Positional in the record:
_PROFILE_FIELDS = (
    "container_image",
    "vcpus",
    "memory",
    "nodes",
    "gpus",
    "multi_node",
    "use_spot",
    "checkpoint_enabled",
    "checkpoint_interval",
    "retry_attempts",
    "backoff_multiplier",
    "timeout_seconds",
    "queue",
    "shared_filesystem",
    "environment",  # last: the only unhashable field (a dict), frozen to its items for interning
)
_profile_of = operator.attrgetter(*_PROFILE_FIELDS[:-1])
# A task record: [id, index, profile, runtime, level, command, depends_on, dependents, optional...]
# where optional is a dict of the fields that differ from the usual (name, inputs, outputs, estimates).
_ID, _INDEX, _PROFILE, _RUNTIME, _LEVEL, _COMMAND, _DEPENDS_ON, _DEPENDENTS, _OPTIONAL = range(9)


class PlanFormatError(FatalError):
    """Indicates that a stored plan is not one this version of stepspot can read (corrupt, or too new)."""


def shard_count_for(task_count: int) -> int:
    return max(1, -(-task_count // TASKS_PER_SHARD))


def shard_of(task_id: str, shard_count: int) -> int:
    """The shard holding a task: stable across processes and versions (not Python's salted ``hash``)."""
    return zlib.crc32(task_id.encode()) % shard_count


def shard_key(plan_key: str, digest: str, shard: int) -> str:
    """``workflows/<id>/plan.json`` -> ``workflows/<id>/plan/<digest>/<shard>.json.gz``."""
    return f"{_prefix(plan_key, digest)}/{shard:05d}.json.gz"


def warnings_key(plan_key: str, digest: str) -> str:
    return f"{_prefix(plan_key, digest)}/warnings.json.gz"


def _prefix(plan_key: str, digest: str) -> str:
    base = plan_key.removesuffix(".json")
    return f"{base}/{digest}"


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=_GZIP_LEVEL, mtime=0)  # mtime=0: the same plan, the same bytes


# ---------------------------------------------------------------------------------------------------
# Encoding


@dataclass(frozen=True)
class EncodedPlan:
    """What the parser writes: ``objects`` (shards, warnings) first, then ``header`` at the plan key."""

    header: bytes
    objects: dict[str, bytes]  # key -> body, keys derived from the plan key
    digest: str  # sha-256 of the uncompressed content: the plan's identity (idempotent registration)

    @property
    def stored_bytes(self) -> int:
        return len(self.header) + sum(len(body) for body in self.objects.values())


def _hourly(estimate: float, hours: float) -> float:
    return estimate / hours if hours else 0.0


def encode_plan(plan: Plan, plan_key: str) -> EncodedPlan:
    with gc_paused():  # hundreds of thousands of small lists: collections would scan the whole plan
        return _encode_plan(plan, plan_key)


def _encode_plan(plan: Plan, plan_key: str) -> EncodedPlan:
    shard_count = shard_count_for(len(plan.tasks))
    shards: list[list[list[Any]]] = [[] for _ in range(shard_count)]
    profiles: list[dict[tuple[Any, ...], tuple[int, float, float]]] = [{} for _ in range(shard_count)]
    for index, task in enumerate(plan.tasks.values()):
        shard = shard_of(task.id, shard_count)
        hours = task.estimated_runtime_seconds / 3600
        environment = task.environment
        profile = (*_profile_of(task), tuple(environment.items()) if environment else ())
        # Hourly prices are a function of the profile: the first task of a profile sets them, and a task
        # whose estimate hourly * hours does not give back exactly (float rounding) keeps its own.
        if profile not in profiles[shard]:
            od = _hourly(task.estimated_on_demand_usd, hours)
            profiles[shard][profile] = (len(profiles[shard]), od, _hourly(task.estimated_spot_usd, hours))
        interned, od_hourly, spot_hourly = profiles[shard][profile]
        optional: dict[str, Any] = {}
        if task.name != task.id:
            optional["name"] = task.name
        if task.inputs:
            optional["inputs"] = task.inputs
        if task.outputs:
            optional["outputs"] = task.outputs
        if od_hourly * hours != task.estimated_on_demand_usd or spot_hourly * hours != task.estimated_spot_usd:
            optional["usd"] = [task.estimated_on_demand_usd, task.estimated_spot_usd]
        record: list[Any] = [
            task.id,
            index,
            interned,
            task.estimated_runtime_seconds,
            task.level,
            task.command,
            task.depends_on,
            task.dependents,
        ]
        if optional:
            record.append(optional)
        shards[shard].append(record)

    digest = hashlib.sha256()
    raw_shards = []
    for shard, records in enumerate(shards):
        table = [[*_profile_json(key), od, spot] for key, (_, od, spot) in profiles[shard].items()]
        body = _dumps({"profiles": table, "tasks": records})
        digest.update(body)
        raw_shards.append(body)
    raw_warnings = _dumps(plan.warnings) if plan.warnings else None
    if raw_warnings is not None:
        digest.update(raw_warnings)
    fields = {
        "format": PLAN_FORMAT,
        "schema_version": PLAN_FORMAT_VERSION,
        "workflow_id": plan.workflow_id,
        "name": plan.name,
        "description": plan.description,
        "failure_mode": plan.failure_mode,
        "spot_strategy": plan.spot_strategy,
        "task_count": len(plan.tasks),
        "shard_count": shard_count,
        "tasks_per_shard": TASKS_PER_SHARD,
        "warning_count": len(plan.warnings),
        "estimate": plan.estimate,
        "plan_schema_version": plan.schema_version,
    }
    digest.update(_dumps(fields))
    hexdigest = digest.hexdigest()
    header = _dumps({**fields, "digest": hexdigest[:16]})
    objects = {shard_key(plan_key, hexdigest[:16], n): _gzip(body) for n, body in enumerate(raw_shards)}
    if raw_warnings is not None:
        objects[warnings_key(plan_key, hexdigest[:16])] = _gzip(raw_warnings)
    return EncodedPlan(header=header, objects=objects, digest=hexdigest)


def _profile_json(key: tuple[Any, ...]) -> list[Any]:
    return [*key[:-1], dict(key[-1])]


# ---------------------------------------------------------------------------------------------------
# Decoding


@dataclass(frozen=True)
class PlanHeader:
    workflow_id: str
    name: str
    description: str
    failure_mode: str
    spot_strategy: str
    task_count: int
    shard_count: int
    warning_count: int
    estimate: dict[str, Any]
    digest: str
    plan_schema_version: int

    def shard_key(self, plan_key: str, shard: int) -> str:
        return shard_key(plan_key, self.digest, shard)

    def warnings_key(self, plan_key: str) -> str:
        return warnings_key(plan_key, self.digest)


def is_sharded(data: Mapping[str, Any]) -> bool:
    return data.get("format") == PLAN_FORMAT


def decode_header(data: Mapping[str, Any], where: str) -> PlanHeader:
    if not is_sharded(data):
        raise PlanFormatError(f"{where} is not a stepspot plan header (no format {PLAN_FORMAT!r})")
    version = data.get("schema_version")
    if version != PLAN_FORMAT_VERSION:
        raise PlanFormatError(
            f"{where} is plan format version {version}, this stepspot reads version {PLAN_FORMAT_VERSION}: "
            "deploy the stepspot version that wrote it, or submit the workflow again"
        )
    try:
        return PlanHeader(
            workflow_id=str(data["workflow_id"]),
            name=str(data["name"]),
            description=str(data["description"]),
            failure_mode=str(data["failure_mode"]),
            spot_strategy=str(data["spot_strategy"]),
            task_count=int(data["task_count"]),
            shard_count=int(data["shard_count"]),
            warning_count=int(data["warning_count"]),
            estimate=dict(data["estimate"]),
            digest=str(data["digest"]),
            plan_schema_version=int(data["plan_schema_version"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanFormatError(f"{where} is a damaged plan header ({exc!r}): submit the workflow again") from None


class Shard:
    """One decoded shard: its records by task id; ``PlannedTask`` objects are built on demand."""

    __slots__ = ("_profiles", "_records")

    def __init__(self, body: bytes, where: str) -> None:
        try:
            data = json.loads(gzip.decompress(body))
            self._profiles: list[list[Any]] = data["profiles"]
            self._records: dict[str, list[Any]] = {record[_ID]: record for record in data["tasks"]}
        except (OSError, EOFError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise PlanFormatError(f"{where} is a damaged plan shard ({exc!r}): submit the workflow again") from None

    def __contains__(self, task_id: str) -> bool:
        return task_id in self._records

    def __len__(self) -> int:
        return len(self._records)

    def ids(self) -> Iterator[str]:
        return iter(self._records)

    def dependents(self, task_id: str) -> list[str]:
        return list(self._records[task_id][_DEPENDENTS])

    def depends_on(self, task_id: str) -> list[str]:
        return list(self._records[task_id][_DEPENDS_ON])

    def index(self, task_id: str) -> int:
        return int(self._records[task_id][_INDEX])

    def task(self, task_id: str) -> PlannedTask:
        record = self._records[task_id]
        profile = self._profiles[record[_PROFILE]]
        fields = dict(zip(_PROFILE_FIELDS, profile, strict=False))
        od_hourly, spot_hourly = profile[len(_PROFILE_FIELDS)], profile[len(_PROFILE_FIELDS) + 1]
        optional: dict[str, Any] = record[_OPTIONAL] if len(record) > _OPTIONAL else {}
        hours = record[_RUNTIME] / 3600
        od_usd, spot_usd = optional.get("usd") or (od_hourly * hours, spot_hourly * hours)
        return PlannedTask(
            id=task_id,
            name=optional.get("name", task_id),
            command=list(record[_COMMAND]),
            estimated_runtime_seconds=record[_RUNTIME],
            depends_on=list(record[_DEPENDS_ON]),
            dependents=list(record[_DEPENDENTS]),
            level=record[_LEVEL],
            estimated_on_demand_usd=od_usd,
            estimated_spot_usd=spot_usd,
            inputs=list(optional.get("inputs", [])),
            outputs=list(optional.get("outputs", [])),
            **{**fields, "environment": dict(fields["environment"])},
        )


def decode_plan(header: PlanHeader, shards: Iterable[Shard], warnings: list[dict[str, str]] | None = None) -> Plan:
    """The whole ``Plan`` back from its header and every shard (the CLI report and tests; never a Lambda's
    per-event path). Task order is the definition's; order, levels and critical path are recomputed."""
    indexed: list[tuple[int, PlannedTask]] = []
    for shard in shards:
        indexed.extend((shard.index(task_id), shard.task(task_id)) for task_id in shard.ids())
    if len(indexed) != header.task_count:
        raise PlanFormatError(
            f"plan {header.workflow_id} has {len(indexed)} tasks in its shards, not {header.task_count}: "
            "submit the workflow again"
        )
    indexed.sort(key=lambda pair: pair[0])
    tasks = {task.id: task for _, task in indexed}
    topology = dag.analyse(
        {t.id: t.depends_on for t in tasks.values()}, {t.id: float(t.estimated_runtime_seconds) for t in tasks.values()}
    )
    return Plan(
        workflow_id=header.workflow_id,
        name=header.name,
        description=header.description,
        failure_mode=header.failure_mode,  # type: ignore[arg-type]  # written from a Plan
        spot_strategy=header.spot_strategy,
        order=topology.order,
        levels=topology.levels,
        critical_path=topology.critical_path,
        tasks=tasks,
        estimate=header.estimate,
        warnings=warnings or [],
        schema_version=header.plan_schema_version,
    )


def decode_warnings(body: bytes) -> list[dict[str, str]]:
    return list(json.loads(gzip.decompress(body)))
