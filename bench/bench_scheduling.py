"""Scheduling benchmarks of the orchestration (local engine: real state machines, handlers, jobs).

1. Makespan against the critical path on uneven DAGs: two chains A1=1,A2=10 / B1=10,B2=1 (a stage
   barrier needs 1.82x) and a random layered DAG. Goal: makespan <= 1.10 x critical path.
2. State transitions per task on the happy path (goal <= 5) and workflow history size.
3. Largest state payload for a 10,000-task workflow (goal < 16 KB): the real parser, scheduler and
   attempt manager Lambdas run on the 10,000-task plan under moto, and every payload that enters a state
   (execution inputs, task results, a failed attempt with a real Batch job description) is measured.
4. Local mode overhead per task: a chain of no-op tasks (latency) and a fan-out (throughput).

    python -m bench scheduling          (make bench runs every benchmark)
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import smoke
from stepspot.local.engine import LocalEngine, LocalOptions
from stepspot.local.summary import RunSummary
from stepspot.workflow import load_workflow_file

PY = Path(sys.executable).name
UNIT = 2.0  # seconds of real work per duration unit (local orchestration adds about 0.1 s per dependency hop)
GOAL_RATIO, GOAL_TRANSITIONS, GOAL_PAYLOAD = 1.10, 5.0, 16_384
# (duration unit, chain, fan-out, side of the square payload workflow); --smoke: tests/integration/test_bench_smoke.py
SIZES, SMOKE_SIZES = (UNIT, 20, 200, 100), (0.01, 3, 4, 10)


def _task(task_id: str, seconds: float, deps: list[str] | None = None) -> dict[str, Any]:
    code = f"import time; time.sleep({seconds})" if seconds else "pass"
    return {
        "id": task_id,
        "container_image": "bench:1",
        "command": [PY, "-c", code],
        "depends_on": deps or [],
        "estimated_runtime": max(1, int(seconds * 3600)),
        "checkpoint_enabled": False,
    }


def _run(tasks: list[dict[str, Any]], name: str, workdir: Path, **options: Any) -> RunSummary:
    path = workdir / f"{name}.json"
    path.write_text(json.dumps({"name": name, "tasks": tasks}))
    engine = LocalEngine(LocalOptions(workdir=workdir / ".stepspot", time_scale=3600, **options))
    summary = engine.run(load_workflow_file(path), path)
    if summary.status != "SUCCEEDED":
        raise RuntimeError(f"{name} failed: {summary.cause}")
    return summary


def _makespan(workdir: Path, unit: float = UNIT) -> list[tuple[str, float, float, float]]:
    rows = []
    chains = [
        _task("A1", 1 * unit),
        _task("A2", 10 * unit, ["A1"]),
        _task("B1", 10 * unit),
        _task("B2", 1 * unit, ["B1"]),
    ]
    rng = random.Random(7)
    layered: list[dict[str, Any]] = []
    previous: list[str] = []
    for layer in range(4):
        current = []
        for i in range(4):
            task_id = f"L{layer}-{i}"
            deps = rng.sample(previous, k=min(2, len(previous))) if previous else []
            layered.append(_task(task_id, round(rng.uniform(0.5, 4.0) * unit / 2, 2), deps))
            current.append(task_id)
        previous = current
    for name, tasks in (("two-chains", chains), ("random-layered", layered)):
        summary = _run(tasks, name, workdir)
        cp = summary.critical_path["measured_seconds"]
        rows.append((name, summary.makespan_seconds, cp, summary.makespan_seconds / cp))
        if name == "two-chains":
            barrier = max(1, 10) * unit + max(10, 1) * unit  # each stage waits for its slowest task
            rows.append(("  stage barrier (A1|B1 then A2|B2)", barrier, cp, barrier / cp))
    return rows


def _payload_10k(side: int = 100) -> dict[str, Any]:
    """Every payload a state sees, for a 10,000-task layered workflow, from the real handlers."""
    import boto3
    from moto import mock_aws

    from stepspot.local.contained import contained
    from stepspot.local.lambdas import LocalLambda
    from stepspot.local.resources import LocalResources, create

    rng = random.Random(3)
    tasks, previous = [], []
    for layer in range(side):
        current = []
        for i in range(side):
            task_id = f"t{layer:03d}-{i:03d}"
            deps = rng.sample(previous, k=3) if previous else []
            tasks.append(
                {
                    "id": task_id,
                    "container_image": f"repo/app:{i % 7}",
                    "command": ["app", task_id],
                    "depends_on": deps,
                    "environment": {"STAGE": str(layer)},
                }
            )
            current.append(task_id)
        previous = current
    resources = LocalResources()
    env = {
        "STEPSPOT_BUCKET": resources.bucket,
        "STEPSPOT_STATE_TABLE": resources.state_table,
        "STEPSPOT_CHECKPOINT_TABLE": resources.checkpoint_table,
        "STEPSPOT_TASK_STATE_MACHINE_ARN": resources.state_machine_arn("task"),
        "STEPSPOT_SCHEDULER_FUNCTION_ARN": resources.function_arns["scheduler"],
        "STEPSPOT_SPOT_QUEUE_ARN": resources.queue_arn(resources.spot_queue),
        "STEPSPOT_ONDEMAND_QUEUE_ARN": resources.queue_arn(resources.ondemand_queue),
        "STEPSPOT_SPOT_COMPUTE_ENV": "spot",
        "STEPSPOT_ONDEMAND_COMPUTE_ENV": "od",
        "STEPSPOT_ENVIRONMENT": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }
    import os

    sizes: dict[str, int] = {}
    # As a local run contains its Lambdas (local.contained): their settings in the environment, their log
    # lines in the run's lambdas.log (not this benchmark's output), handler caches fresh; all undone after.
    with (
        tempfile.TemporaryDirectory() as scratch,
        contained(env, Path(scratch) / "lambdas.log") as router,
        mock_aws(),
    ):
        session = boto3.session.Session(region_name="us-east-1")
        from stepspot import asl

        definitions = asl.render({f"{k}_arn": v for k, v in resources.function_arns.items()})
        job_definitions = create(session, resources, definitions)
        os.environ["STEPSPOT_JOB_DEFINITION_ARN"] = job_definitions["job"]
        os.environ["STEPSPOT_MNP_JOB_DEFINITION_ARN"] = job_definitions["mnp"]
        lambdas = LocalLambda(resources.function_arns, router)
        s3 = session.client("s3")
        s3.put_object(Bucket=resources.bucket, Key="in/big.json", Body=json.dumps({"name": "big", "tasks": tasks}))
        execution_input = {"definition_uri": f"s3://{resources.bucket}/in/big.json", "workflow_id": "big"}
        sizes["workflow execution input"] = len(json.dumps(execution_input))
        started = time.perf_counter()
        parsed = lambdas.call("workflow_parser", execution_input)
        sizes["ParseWorkflow result (before ResultSelector)"] = len(json.dumps(parsed))
        state = {"workflow_id": parsed["workflow_id"], "plan_uri": parsed["plan_uri"]}
        start_event = {"action": "start", **state, "task_token": "x" * 600}
        sizes["StartWorkflow payload"] = len(json.dumps(start_event))
        result = lambdas.call("scheduler", start_event)
        sizes["workflow state after StartWorkflow"] = len(json.dumps({**state, "result": result}))
        sfn = session.client("stepfunctions")
        listed = sfn.list_executions(stateMachineArn=resources.state_machine_arn("task"), maxResults=1000)
        arns = [e["executionArn"] for e in listed["executions"]]
        inputs = [sfn.describe_execution(executionArn=a)["input"] for a in arns[:50]]
        sizes["task execution input (largest)"] = max(len(i) for i in inputs)
        task_state = json.loads(inputs[0])
        job = lambdas.call("attempt_manager", {"action": "choose_capacity", **task_state})
        with_job = {**task_state, "job": job}
        sizes["task state after ChooseCapacity"] = len(json.dumps(with_job))
        cause = json.dumps(
            {
                "JobId": "9f1b2c3d-0000-4000-8000-000000000000",
                "JobName": job["job_name"],
                "JobQueue": job["queue_arn"],
                "Status": "FAILED",
                "StatusReason": "Host EC2 (instance i-0123456789abcdef0) terminated.",
                "Attempts": [
                    {
                        "Container": {
                            "ContainerInstanceArn": "arn:aws:ecs:us-east-1:123456789012:container-instance/x/"
                            + "0" * 32,
                            "LogStreamName": "stepspot/default/" + "0" * 32,
                            "NetworkInterfaces": [],
                        },
                        "StartedAt": 1700000000000,
                        "StoppedAt": 1700003600000,
                        "StatusReason": "Host EC2 (instance i-0123456789abcdef0) terminated.",
                    }
                ],
                "Container": {
                    **{k[0].upper() + k[1:]: v for k, v in job["container_overrides"].items()},
                    "Image": "repo/app:1",
                    "Vcpus": 1,
                    "Memory": 2048,
                    "JobRoleArn": "arn:aws:iam::123456789012:role/job",
                    "LogStreamName": "stepspot/default/" + "0" * 32,
                },
                "JobDefinition": job["job_definition_arn"],
                "CreatedAt": 1700000000000,
                "StartedAt": 1700000000000,
                "StoppedAt": 1700003600000,
                "Tags": {"workflow": "big"},
                "PlatformCapabilities": ["EC2"],
            }
        )
        failed_state = {**with_job, "error": {"Error": "States.TaskFailed", "Cause": cause}}
        sizes["task state entering ClassifyFailure (real job description)"] = len(json.dumps(failed_state))
        decision = lambdas.call(
            "attempt_manager",
            {"action": "classify_failure", **task_state, "job": job, "error": failed_state["error"]},
        )
        sizes["task state after ClassifyFailure"] = len(json.dumps(decision))
        elapsed = time.perf_counter() - started
    return {"sizes": sizes, "tasks": len(tasks), "seconds": elapsed}


def main(argv: list[str]) -> int:
    unit, chain_length, fan_out, side = SMOKE_SIZES if smoke(argv) else SIZES
    failed = 0
    with tempfile.TemporaryDirectory(prefix="stepspot-bench-") as tmp:
        workdir = Path(tmp)
        print("makespan vs measured critical path (real seconds):")
        for name, makespan, cp, ratio in _makespan(workdir, unit):
            print(f"  {name:38s} makespan {makespan:6.2f} s  critical path {cp:6.2f} s  ratio {ratio:5.3f}")
            if not name.startswith(" ") and ratio > GOAL_RATIO:
                failed = 1
        print(f"  goal: <= {GOAL_RATIO}")

        chain = _run([_task(f"c{i}", 0, [f"c{i - 1}"] if i else []) for i in range(chain_length)], "chain", workdir)
        fan_tasks = [_task("root", 0)] + [_task(f"f{i}", 0, ["root"]) for i in range(fan_out)]
        fan = _run(fan_tasks, "fan", workdir, max_parallel_jobs=16)
        print("transitions per task (happy path):")
        for label, summary in ((f"chain of {chain_length}", chain), (f"fan-out of {fan_out}", fan)):
            t = summary.transitions
            print(
                f"  {label:16s} {t['per_task']:.3f} per task (task executions {t['task_executions']}, "
                f"workflow execution {t['workflow_execution']} transitions / {t['workflow_history_events']} events)"
            )
        if fan.transitions["per_task"] > GOAL_TRANSITIONS + 0.02:
            failed = 1
        print(f"  goal: <= {GOAL_TRANSITIONS} (5 per task, SubmitJob pacing included, + 2 per workflow)")
        print("local mode overhead per task:")
        per_task = chain.makespan_seconds / chain_length * 1000
        print(f"  chain of {chain_length} no-op tasks   {per_task:7.0f} ms per task (sequential latency)")
        print(
            f"  fan-out of {fan_out + 1} no-op tasks {fan.makespan_seconds / (fan_out + 1) * 1000:6.0f} ms per task "
            f"({(fan_out + 1) / fan.makespan_seconds:.1f} tasks/s)"
        )

    audit = _payload_10k(side)
    largest = max(audit["sizes"].values())
    print(f"largest state payloads for {audit['tasks']:,} tasks (real handlers, {audit['seconds']:.1f} s):")
    for name, size in sorted(audit["sizes"].items(), key=lambda kv: -kv[1]):
        print(f"  {size:7,d} B  {name}")
    print(f"  largest {largest:,} B; goal < {GOAL_PAYLOAD:,} B; Step Functions limit 262,144 B")
    if largest >= GOAL_PAYLOAD:
        failed = 1
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
