"""`stepspot local --aws-faults`: the orchestration survives what AWS does under load (DynamoDB
transaction conflicts and throttling, Lambda throttles and lost responses, SubmitJob and StartExecution
throttling, duplicated and delayed EventBridge events) with every task run exactly once."""

from __future__ import annotations

from local_helpers import MD_EXAMPLE, sleep_task

from stepspot.local.faults import Faults

FAULT_KINDS = {
    "dynamodb.transaction",
    "dynamodb.throttle",
    "lambda",
    "batch.submit_job",
    "sfn.start_execution",
    "events.duplicate",
    "events.delay",
}


def _assert_exactly_once(summary, total: int) -> dict:
    assert summary.status == "SUCCEEDED", summary.cause
    assert summary.tasks == {"total": total, "succeeded": total, "failed": 0, "skipped": 0, "not_run": 0}
    # Each task ran one Batch job and one task execution: no lost or doubled completion
    assert {row["task_id"]: row["attempts"] for row in summary.per_task} == {
        row["task_id"]: 1 for row in summary.per_task
    }
    assert summary.transitions["task_executions"] == total
    report = summary.events["aws_faults"]
    assert report["counters"] == {
        "total": total,
        "succeeded": total,
        "failed": 0,
        "skipped": 0,
        "running": 0,
        "ready": 0,
    }
    assert report["task_executions_running"] == 0
    # Every EventBridge delivery was handled in the end (a handler's retryable error is redelivered)
    assert (summary.events["handler_failures"], summary.events.get("undelivered", {})) == ({}, {})
    return report


def test_molecular_dynamics_example_succeeds_under_aws_faults(run_local):
    summary = run_local(MD_EXAMPLE, time_scale=1800, faults=Faults(seed=11), aws_fault_rate=0.1)
    report = _assert_exactly_once(summary, 5)
    assert sum(report["injected"].values()) > 0


def test_a_200_task_fan_out_fan_in_succeeds_under_aws_faults(run_local, write_workflow):
    # root -> 99 tasks -> join -> 98 tasks -> final: two wide fan-outs and two joins
    first = [sleep_task(f"a{i}", depends_on=["root"]) for i in range(99)]
    second = [sleep_task(f"b{i}", depends_on=["join"]) for i in range(98)]
    tasks = [
        sleep_task("root"),
        *first,
        sleep_task("join", depends_on=[t["id"] for t in first]),
        *second,
        sleep_task("final", depends_on=[t["id"] for t in second]),
    ]
    path = write_workflow(tasks, "faulty")
    summary = run_local(path, faults=Faults(seed=5), aws_fault_rate=0.1, max_parallel_jobs=16, timeout_seconds=600)
    report = _assert_exactly_once(summary, 200)
    assert set(report["injected"]) >= FAULT_KINDS, report["injected"]
