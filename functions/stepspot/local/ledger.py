"""The cost ledger and run record of a local run, from the emulated Batch jobs.

Times are simulated: real seconds since the run began times the time scale, so a local run's ledger reads
like the AWS run it stands for. Each attempt's instance type and zone are emulated from (seed, task,
attempt) and its Spot price from (seed, type, zone) (``stepspot.cost.local_placement``/``local_spot_price``);
On-Demand prices come from the bundled price table. Checkpoint completion times are the times the agent
wrote each checkpoint's manifest (the local S3 keeps them to the microsecond).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC
from typing import Any

from stepspot import failures
from stepspot.checkpointing.model import SEQUENCE_SK_PREFIX, STATUS_COMPLETE, STATUS_FIELD
from stepspot.cost import (
    ON_DEMAND,
    SPOT,
    AttemptRecord,
    InstancePrices,
    build_ledger,
    default_instance_prices,
    local_placement,
    local_spot_price,
)
from stepspot.plan import Plan
from stepspot.report.model import RunRecord, TaskRecord
from stepspot.scheduler import TaskState
from stepspot.state_items import Task


class SimulatedClock:
    """Maps real epoch seconds of the run onto simulated ones (origin kept, durations scaled)."""

    def __init__(self, origin: float, time_scale: float) -> None:
        self.origin = origin
        self.time_scale = time_scale

    def __call__(self, real: float | None) -> float | None:
        return None if real is None else self.origin + (real - self.origin) * self.time_scale


def _failure_class(job: Any) -> str | None:
    if job.status != "FAILED":
        return None
    return failures.classify("States.TaskFailed", json.dumps(job.describe())).failure_class.value


def attempt_records(
    plan: Plan, jobs: Iterable[Any], clock: SimulatedClock, checkpoints: Mapping[str, list[float]]
) -> list[AttemptRecord]:
    records = []
    spot_seen: set[str] = set()
    for job in sorted(jobs, key=lambda j: j.created_at):
        task = plan.tasks.get(job.task_id)
        if task is None or job.status not in ("SUCCEEDED", "FAILED"):
            continue
        started, stopped = clock(job.started_at), clock(job.stopped_at)
        saved = checkpoints.get(job.task_id, [])
        within = [t for t in saved if started is not None and stopped is not None and started <= t <= stopped]
        if job.spot:
            spot_seen.add(job.task_id)
        records.append(
            AttemptRecord(
                task_id=job.task_id,
                attempt=job.attempt,
                job_id=job.job_id,
                capacity=SPOT if job.spot else ON_DEMAND,
                status=job.status,
                created_at=clock(job.created_at) or 0.0,
                started_at=started,
                stopped_at=stopped,
                vcpus=task.vcpus,
                memory_mib=job.memory_mib or task.memory,  # what this attempt asked (OOM retries ask more)
                nodes=max(1, job.num_nodes),
                gpus=task.gpus,
                fallback=not job.spot and job.task_id in spot_seen,
                reclaimed=bool(job.reclaimed),
                failure_class=_failure_class(job),
                reason=str(job.status_reason or ""),
                last_checkpoint_at=max(within) if within else None,
            )
        )
    return records


def checkpoint_times(
    session: Any, bucket: str, table: str, workflow_id: str, clock: SimulatedClock
) -> dict[str, list[float]]:
    """Simulated completion times of every complete checkpoint of the workflow, per task."""
    from stepspot.checkpointing.model import manifest_key

    items: list[dict[str, Any]] = []
    scan: dict[str, Any] = {}
    while True:  # a scan page holds at most 1 MB
        page = session.resource("dynamodb").Table(table).scan(**scan)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            break
        scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    s3 = session.client("s3")
    found: dict[str, list[float]] = {}
    prefix = f"{workflow_id}#"
    for item in items:
        pk, sk = str(item.get("pk", "")), str(item.get("sk", ""))
        if (
            not pk.startswith(prefix)
            or not sk.startswith(SEQUENCE_SK_PREFIX)
            or item.get(STATUS_FIELD) != STATUS_COMPLETE
        ):
            continue
        task_id = pk[len(prefix) :]
        sequence = int(sk[4:])
        real = _manifest_time(bucket, manifest_key(workflow_id, task_id, sequence), s3)
        if real is None:
            real = float(item.get("created_epoch", 0))
        found.setdefault(task_id, []).append(clock(real) or 0.0)
    return {task: sorted(times) for task, times in found.items()}


def _manifest_time(bucket: str, key: str, s3: Any) -> float | None:
    """The manifest's write time from the in-process S3 backend (microseconds; the API rounds to ms)."""
    try:
        from moto.s3.models import s3_backends

        from stepspot.local.lambdas import ACCOUNT_ID

        fake = s3_backends[ACCOUNT_ID]["global"].buckets[bucket].keys.get(key)
        if fake is not None:
            return float(fake.last_modified.replace(tzinfo=UTC).timestamp())
    except (ImportError, KeyError, AttributeError):
        pass
    try:
        return float(s3.head_object(Bucket=bucket, Key=key)["LastModified"].timestamp())
    except Exception:
        return None


def local_run_record(
    *,
    plan: Plan,
    jobs: Iterable[Any],
    states: Mapping[str, Mapping[str, Any]],
    status: str,
    seed: int,
    region: str,
    clock: SimulatedClock,
    checkpoints: Mapping[str, list[float]],
    prices: InstancePrices | None = None,
) -> RunRecord:
    prices = prices or default_instance_prices()
    records = attempt_records(plan, jobs, clock, checkpoints)

    def placement_of(record: AttemptRecord) -> Any:
        return local_placement(
            seed,
            record.task_id,
            record.attempt,
            record.vcpus,
            record.memory_mib,
            prices,
            region,
            gpus=record.gpus,
            capacity=record.capacity,
            nodes=record.nodes,
        )

    ledger = build_ledger(
        records,
        placement_of,
        prices,
        lambda instance_type, zone, _at: local_spot_price(seed, prices.instance(instance_type), zone),
    )
    tasks = [
        TaskRecord(
            task_id=task_id,
            depends_on=tuple(plan.tasks[task_id].depends_on),
            state=str(states.get(task_id, {}).get(Task.STATE, TaskState.PENDING)),
            failure_class=str(states.get(task_id, {}).get(Task.LAST_FAILURE_CLASS) or "") or None,
            reason=str(states.get(task_id, {}).get(Task.LAST_FAILURE) or ""),
        )
        for task_id in plan.order
    ]
    return RunRecord(
        workflow_id=plan.workflow_id,
        name=plan.name,
        status=status,
        environment="local",
        region=region,
        currency=prices.currency,
        price_source=f"{prices.source} ({prices.retrieved}); Spot prices emulated from the seed {seed}",
        tasks=tasks,
        ledger=ledger,
        checkpoints=dict(checkpoints),
        notes=[f"local run: instance types, zones and Spot prices emulated from seed {seed}"],
    )


def local_run_record_of(
    session: Any,
    resources: Any,
    plan: Plan,
    jobs: list[Any],
    states: Mapping[str, Mapping[str, Any]],
    status: str,
    batch: Any,
    time_scale: float,
) -> RunRecord:
    """The run record of a finished local run (what ``local.summary`` calls)."""
    from stepspot.local.lambdas import REGION

    origin = min((job.created_at for job in jobs), default=0.0)
    clock = SimulatedClock(origin, time_scale)
    checkpoints = checkpoint_times(session, resources.bucket, resources.checkpoint_table, plan.workflow_id, clock)
    return local_run_record(
        plan=plan,
        jobs=jobs,
        states=states,
        status=status,
        seed=batch.faults.seed,
        region=REGION,
        clock=clock,
        checkpoints=checkpoints,
    )
