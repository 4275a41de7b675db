"""Plan storage at scale: stored bytes per task, and one cold scheduler / attempt-manager event at 1k-100k tasks.

Goals (issue 16, goals 1 and 2):
- the stored plan (header + shards) at most 150 bytes per task for the benchmark DAGs (bench_planner's
  chain, fan-out and random layered), reported as a ratio to the whole-document format of before
  (``plan_to_json``) measured in the same run;
- one ``task_succeeded`` scheduler event and one ``choose_capacity`` attempt-manager event with cold
  handlers (their cached clients and plan caches cleared) take the same time and memory at 1k, 10k and
  100k tasks: within 20% of each other, peak under 150 MB (tracemalloc of the invocation, moto's
  in-process emulation of S3 and DynamoDB included).

The events run under moto against a plan written by the parser's own code (``write_plan``); the state
items the event touches (the META item, the finishing task and its dependents) are written directly
instead of registering 100k task items through moto. The parser's own peak at 100k tasks (registration
with every DynamoDB write) is measured once by ``--parser`` (slow: minutes), whose figures size the
Lambdas (terraform/modules/functions/README.md).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws

from bench import results_file, smoke
from bench.bench_planner import SHAPES
from stepspot.aws.plan_objects import write_plan
from stepspot.aws.s3 import DocumentStore, plan_key
from stepspot.aws.state_table import StateTable
from stepspot.local.resources import create_table
from stepspot.plan import InitialTaskState, Plan, build_plan, plan_to_json
from stepspot.plan_store import MAX_STORED_BYTES_PER_TASK, encode_plan
from stepspot.scheduler import TaskState
from stepspot.state_keys import task_key, workflow_key
from stepspot.workflow import parse_workflow

SIZES = (1_000, 10_000, 100_000)
EVENT_KINDS = ("scheduler", "attempt manager")
# --smoke: one size (after the unmeasured first one), one timed run per event, the fresh-process RSS of one kind
SMOKE_SIZES = (100,)
EVENT_SHAPE = "random-layered"
GOAL_SPREAD = 1.20  # largest / smallest of time and of peak memory across sizes
GOAL_PEAK_MB = 150.0
TIMED_RUNS = 7  # best of: the machine is shared, the event takes tens of milliseconds
BUCKET, TABLE, REGION = "bench-bucket", "bench-state", "us-east-1"


class _Context:
    function_name = "bench"
    memory_limit_in_mb = 512
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:bench"
    aws_request_id = "bench"


def _plan(shape: str, n: int) -> Plan:
    loaded = parse_workflow({"name": f"{shape}-{n}", "tasks": SHAPES[shape](n)})
    return build_plan(loaded.workflow, f"{shape}-{n}", loaded.warnings)


def stored_bytes(sizes: tuple[int, ...] = SIZES) -> list[dict[str, Any]]:
    rows = []
    for shape in SHAPES:
        for n in sizes:
            plan = _plan(shape, n)
            new = encode_plan(plan, plan_key(plan.workflow_id)).stored_bytes
            old = len(plan_to_json(plan))
            rows.append({"shape": shape, "tasks": n, "bytes_per_task": new / n, "old_bytes_per_task": old / n})
    return rows


def _environment(job_definition: str) -> None:
    os.environ.update(
        AWS_DEFAULT_REGION=REGION,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        STEPSPOT_BUCKET=BUCKET,
        STEPSPOT_STATE_TABLE=TABLE,
        STEPSPOT_ENVIRONMENT="bench",
        STEPSPOT_TASK_STATE_MACHINE_ARN=f"arn:aws:states:{REGION}:123456789012:stateMachine:bench-task",
        STEPSPOT_SCHEDULER_FUNCTION_ARN=f"arn:aws:lambda:{REGION}:123456789012:function:bench-scheduler",
        STEPSPOT_SPOT_QUEUE_ARN=f"arn:aws:batch:{REGION}:123456789012:job-queue/spot",
        STEPSPOT_ONDEMAND_QUEUE_ARN=f"arn:aws:batch:{REGION}:123456789012:job-queue/ondemand",
        STEPSPOT_SPOT_COMPUTE_ENV="spot-ce",
        STEPSPOT_ONDEMAND_COMPUTE_ENV="od-ce",
        STEPSPOT_JOB_DEFINITION_ARN=job_definition,
        STEPSPOT_MNP_JOB_DEFINITION_ARN=job_definition,
        POWERTOOLS_METRICS_NAMESPACE="Stepspot",
        POWERTOOLS_SERVICE_NAME="stepspot-bench",
    )


def _tables() -> str:
    boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
    create_table(boto3.client("dynamodb", region_name=REGION), TABLE)
    container = {
        "image": "base",
        "command": ["true"],
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}],
    }
    batch = boto3.client("batch", region_name=REGION)
    return str(
        batch.register_job_definition(jobDefinitionName="base", type="container", containerProperties=container)[
            "jobDefinitionArn"
        ]
    )


def _event_task(plan: Plan) -> str:
    """A task in the middle of the DAG with two dependents: the same work at every size."""
    middle = plan.order[len(plan.order) // 2 :]
    return next(t for t in middle if len(plan.tasks[t].dependents) == 2)


@dataclass(frozen=True)
class _EventWorkflow:
    """What the events need to know of the workflow once its plan is stored (the plan itself is dropped:
    a Lambda instance does not have it in memory, and a garbage collection would scan it)."""

    workflow_id: str
    total: int
    task_id: str
    dependents: list[str]


def _prepare_state(workflow: _EventWorkflow) -> None:
    """The items a task_succeeded touches: META (RUNNING, one running task), the task (RUNNING) and its
    dependents (PENDING, waiting for another parent too: nothing starts)."""
    table = boto3.resource("dynamodb", region_name=REGION).Table(TABLE)
    for item in table.scan()["Items"]:
        table.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
    children = [InitialTaskState(child, TaskState.PENDING, 2) for child in workflow.dependents]
    meta = {
        "workflow_id": workflow.workflow_id,
        "status": "PARSED",
        "total_tasks": workflow.total,
        "succeeded": 0,
        "failed": 0,
        "failure_mode": "fail",
    }
    StateTable(boto3.resource("dynamodb", region_name=REGION), TABLE).register_workflow(
        meta, [InitialTaskState(workflow.task_id, TaskState.PENDING, 0), *children], "bench"
    )
    table.update_item(
        Key=workflow_key(workflow.workflow_id),
        UpdateExpression="SET #s = :running, #r = :one",
        ExpressionAttributeNames={"#s": "status", "#r": "running"},
        ExpressionAttributeValues={":running": "RUNNING", ":one": 1},
    )
    table.update_item(
        Key=task_key(workflow.workflow_id, workflow.task_id),
        UpdateExpression="SET #s = :running",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={":running": "RUNNING"},
    )


def _cold() -> None:
    """What a new Lambda instance would not have: the handlers' clients and the plan caches."""
    from stepspot.handlers import _cache

    _cache.reset_all()


@contextlib.contextmanager
def _logs_discarded(handler_module: Any) -> Iterator[None]:
    """The handler's log lines written (their cost is part of the event's, as on AWS) but not into the
    benchmark's output."""
    stream_handler = handler_module.logger.logger_handler
    with open(os.devnull, "w", encoding="utf-8") as sink:
        previous = stream_handler.setStream(sink)
        try:
            yield
        finally:
            stream_handler.setStream(previous)


def _invoke(kind: str, workflow: _EventWorkflow, plan_uri: str, traced: bool) -> tuple[float, float]:
    from stepspot.handlers import attempt_manager, scheduler

    if kind == "scheduler":
        _prepare_state(workflow)
        event = {"action": "task_succeeded", "workflow_id": workflow.workflow_id, "task_id": workflow.task_id}
        module: Any = scheduler
    else:
        event = {"action": "choose_capacity", "workflow_id": workflow.workflow_id, "task_id": workflow.task_id}
        module = attempt_manager
    event["plan_uri"] = plan_uri
    _cold()
    if traced:
        tracemalloc.start()
    with _logs_discarded(module):
        start = time.process_time()  # CPU time: the machine is shared, wall time swings with the others' load
        result = module.lambda_handler(event, _Context())
        seconds = time.process_time() - start
    peak = 0.0
    if traced:
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    assert result.get("status") == "RUNNING" or result.get("capacity"), result
    return seconds, peak


def cold_events(sizes: tuple[int, ...] = SIZES, timed_runs: int = TIMED_RUNS) -> list[dict[str, Any]]:
    rows = []
    # The first size pays the process's one-time costs (imports, botocore's service models): run it
    # once unmeasured, so each size measures what a new Lambda instance does on the plan.
    for index, n in enumerate((sizes[0], *sizes)):
        plan = _plan(EVENT_SHAPE, n)
        task_id = _event_task(plan)
        workflow = _EventWorkflow(plan.workflow_id, len(plan.tasks), task_id, plan.tasks[task_id].dependents)
        encoded = encode_plan(plan, plan_key(plan.workflow_id))
        del plan
        with mock_aws(config={"batch": {"use_docker": False}}):
            _environment(_tables())
            documents = DocumentStore(boto3.client("s3", region_name=REGION), BUCKET)
            plan_uri = write_plan(documents, plan_key(workflow.workflow_id), encoded)
            del encoded
            gc.collect()
            for kind in EVENT_KINDS:
                seconds = min(_invoke(kind, workflow, plan_uri, traced=False)[0] for _ in range(timed_runs))
                _, peak = _invoke(kind, workflow, plan_uri, traced=True)
                if index:
                    rows.append({"event": kind, "tasks": n, "seconds": seconds, "peak_mib": peak})
        _cold()
    return rows


def _rss_child(objects_file: str, kind: str) -> None:
    """In a fresh process that never held the plan: write the stored objects to moto, run one cold event
    and print the process's peak RSS (interpreter, libraries, moto and the event: what a Lambda needs)."""
    import pickle

    workflow, objects, header_key, header = pickle.loads(Path(objects_file).read_bytes())
    with mock_aws(config={"batch": {"use_docker": False}}):
        _environment(_tables())
        s3 = boto3.client("s3", region_name=REGION)
        for key, body in objects.items():
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        s3.put_object(Bucket=BUCKET, Key=header_key, Body=header)
        _prepare_state(workflow)  # the task's item (the attempt manager records its choice there)
        before = _peak_rss_mib()
        _invoke(kind, workflow, f"s3://{BUCKET}/{header_key}", traced=False)
    print(before, _peak_rss_mib())


def _peak_rss_mib() -> float:
    """VmHWM of this process: unlike getrusage's ru_maxrss it does not inherit the forking parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status: peak RSS needs Linux")


def cold_event_rss(n: int = SIZES[-1], kinds: tuple[str, ...] = EVENT_KINDS) -> dict[str, tuple[float, float]]:
    import pickle
    import subprocess
    import tempfile

    plan = _plan(EVENT_SHAPE, n)
    task_id = _event_task(plan)
    workflow = _EventWorkflow(plan.workflow_id, len(plan.tasks), task_id, plan.tasks[task_id].dependents)
    key = plan_key(plan.workflow_id)
    encoded = encode_plan(plan, key)
    rss = {}
    with tempfile.NamedTemporaryFile(suffix=".pickle") as handle:
        handle.write(pickle.dumps((workflow, encoded.objects, key, encoded.header)))
        handle.flush()
        for kind in kinds:
            code = f"from bench.bench_plan_reads import _rss_child; _rss_child({handle.name!r}, {kind!r})"
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            before, after = out.strip().splitlines()[-1].split()
            rss[kind] = (float(before), float(after))
    return rss


def parser_peak(n: int = 100_000) -> dict[str, Any]:
    """The parser Lambda registering an n-task random layered DAG (definition_uri), every write included."""
    from stepspot.handlers import workflow_parser

    document = json.dumps({"name": f"parser-{n}", "tasks": SHAPES[EVENT_SHAPE](n)}).encode()
    with mock_aws():
        _environment(_tables())
        boto3.client("s3", region_name=REGION).put_object(
            Bucket=BUCKET, Key="workflows/p/definition.json", Body=document
        )
        workflow_parser._adapters.cache_clear()
        event = {"definition_uri": f"s3://{BUCKET}/workflows/p/definition.json", "workflow_id": "p"}
        del document
        tracemalloc.start()
        with _logs_discarded(workflow_parser):
            start = time.perf_counter()
            result = workflow_parser.lambda_handler(event, _Context())
            seconds = time.perf_counter() - start
        retained, peak = (value / 2**20 for value in tracemalloc.get_traced_memory())
        tracemalloc.stop()
        assert result["registered"] and result["task_count"] == n
    return {
        "tasks": n,
        "seconds": seconds,
        "peak_mib": peak,
        "retained_mib": retained,  # still allocated after the call: moto's copies of the items and objects
        "max_rss_mib": _peak_rss_mib(),
    }


def main(argv: list[str]) -> int:
    failed = False
    print("Stored plan (header + shards) against the whole-document format of before, same run:")
    print(f"{'shape':<16}{'tasks':>9}{'B/task':>9}{'before':>9}{'ratio':>8}")
    quick = smoke(argv)
    sizes_measured = SMOKE_SIZES if quick else SIZES
    sizes = stored_bytes(sizes_measured)
    for r in sizes:
        ratio = r["bytes_per_task"] / r["old_bytes_per_task"]
        print(
            f"{r['shape']:<16}{r['tasks']:>9,}{r['bytes_per_task']:>9.1f}{r['old_bytes_per_task']:>9.1f}{ratio:>8.3f}"
        )
    worst = max(r["bytes_per_task"] for r in sizes)
    failed |= worst > MAX_STORED_BYTES_PER_TASK
    verdict = "meets" if worst <= MAX_STORED_BYTES_PER_TASK else "MISSES"
    print(f"largest: {worst:.1f} B/task ({verdict} the {MAX_STORED_BYTES_PER_TASK} B/task goal)")

    timed_runs = 1 if quick else TIMED_RUNS
    print(f"\nOne cold event ({EVENT_SHAPE} DAG, a task with 2 dependents; time: best of {timed_runs}):")
    print(f"{'event':<15}{'tasks':>9}{'CPU s':>10}{'peak MiB':>10}")
    events = cold_events(sizes_measured, timed_runs)
    for r in events:
        print(f"{r['event']:<15}{r['tasks']:>9,}{r['seconds']:>10.3f}{r['peak_mib']:>10.1f}")
    for kind in EVENT_KINDS:
        rows = [r for r in events if r["event"] == kind]
        for metric in ("seconds", "peak_mib"):
            values = [r[metric] for r in rows]
            spread = max(values) / min(values)
            ok = spread <= GOAL_SPREAD and (metric != "peak_mib" or max(values) < GOAL_PEAK_MB)
            failed |= not ok
            print(f"{kind} {metric}: largest/smallest {spread:.2f} ({'meets' if ok else 'MISSES'} the goal)")
    rss = cold_event_rss(sizes_measured[-1], EVENT_KINDS[:1] if quick else EVENT_KINDS)
    for kind, (before, after) in rss.items():
        print(
            f"{kind}: a fresh process (moto included) peaks at {before:.0f} MiB RSS before one cold event "
            f"at {sizes_measured[-1]:,} tasks, {after:.0f} MiB after it"
        )
    result: dict[str, Any] = {"stored": sizes, "events": events, "rss_mib": rss}
    if "--parser" in argv:
        parser = parser_peak()
        result["parser"] = parser
        print(
            f"\nparser Lambda, {parser['tasks']:,} tasks: {parser['seconds']:.1f} s, peak {parser['peak_mib']:.0f} MiB "
            f"(tracemalloc; {parser['retained_mib']:.0f} MiB of it still held after the call: moto's copies of the "
            f"items and objects), process max RSS {parser['max_rss_mib']:.0f} MiB"
        )
    results_file("plan_reads.json").write_text(json.dumps(result, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
