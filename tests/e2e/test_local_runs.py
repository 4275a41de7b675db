"""Local mode, end to end: happy path, Spot reclaims, breaker, capacity shortage, application failures,
continue mode, duplicated scheduler events, and a large fan-out."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from local_helpers import MD_EXAMPLE, sleep_task

from stepspot import scheduler as scheduling
from stepspot.build_info import deployment_version
from stepspot.errors import ConfigurationError
from stepspot.local.events import ROUTES
from stepspot.local.faults import Faults
from stepspot.local.lambdas import LocalLambda

pytestmark = pytest.mark.slow

DIAMOND = [
    sleep_task("a"),
    sleep_task("b", depends_on=["a"]),
    sleep_task("c", depends_on=["a"]),
    sleep_task("d", depends_on=["b", "c"]),
    sleep_task("e"),
]


def _by_task(summary):
    return {row["task_id"]: row for row in summary.per_task}


def test_happy_path_runs_the_molecular_dynamics_sample(run_local):
    # Given the sample workflow and no injected faults
    summary = run_local(MD_EXAMPLE, time_scale=1800)
    # Then every task succeeded once, the multi-node replica ran On-Demand, Spot tasks on Spot
    assert summary.status == "SUCCEEDED", summary.cause
    assert summary.tasks == {"total": 5, "succeeded": 5, "failed": 0, "skipped": 0, "not_run": 0}
    rows = _by_task(summary)
    assert all(row["attempts"] == 1 for row in rows.values())
    assert rows["production-replica"]["capacity"] == "ON_DEMAND"
    assert rows["production-run"]["capacity"] == "SPOT"
    # and the analysis read both trajectories, staged as declared inputs into its private directory
    (written,) = Path(summary.run_dir).glob("tasks/*/attempt-*/work/results/summary.json")
    results = json.loads(written.read_text())
    assert [run["steps"] for run in results["runs"]] == [900, 600]
    # and the orchestration stayed small: 5 transitions per task (PaceSubmission included) + 2 for the
    # workflow, tiny payloads
    assert summary.transitions["total"] == 5 * 5 + 2
    assert summary.largest_state_payload_bytes < 16_384
    assert summary.estimated_cost["spot_usd"] < summary.estimated_cost["on_demand_usd"]
    # and each task's success was counted once (one EMF emission, whatever its dimension sets)
    assert (summary.metrics.get("TasksSucceeded"), summary.metrics.get("WorkflowsSucceeded")) == (5, 1)


def test_spot_reclaim_resumes_from_the_checkpoint(run_local):
    import stepspot.agent  # noqa: F401  # the task runner is part of stepspot: missing, this test fails

    # Given production-run's first Spot attempt is reclaimed mid-run
    summary = run_local(MD_EXAMPLE, time_scale=1800, faults=Faults(reclaim_tasks=frozenset({"production-run"}), seed=1))
    assert summary.status == "SUCCEEDED", summary.cause
    assert summary.interruptions >= 1
    # And the agent outlived the program after the notice, so the attempt failed as a reclaim, not an app error
    assert summary.metrics.get("SpotReclaimFailures", 0) >= 1
    assert summary.metrics.get("ApplicationFailures", 0) == 0
    # And the interruption handler recorded each notice on the task (none of its calls failed)
    assert summary.events["handler_failures"] == {}
    assert summary.metrics.get("SpotInterruptions", 0) == summary.interruptions >= 1
    # Then a later attempt restored the checkpoint written on the notice and resumed past step 0
    assert summary.checkpoints["saved"] >= 1 and summary.checkpoints["restored"] >= 1
    logs = "\n".join(p.read_text() for p in Path(summary.run_dir).glob("tasks/*/attempt-*/output.log"))
    assert "md.py: resuming at step" in logs
    assert "resuming at step 0 " not in logs
    # And it was the task runner bundle of this build under a python3 outside the project's venv (as on AWS)
    runners = [line for line in logs.splitlines() if f"task runner {deployment_version()} on Python" in line]
    assert runners and all(str(Path(sys.executable).parent) not in line for line in runners)


def test_every_monitor_event_is_delivered_and_each_metric_counted_once(run_local, write_workflow):
    # Given a fan-out/fan-in of 50 tasks
    leaves = [sleep_task(f"leaf-{i}", depends_on=["root"]) for i in range(48)]
    path = write_workflow(
        [sleep_task("root"), *leaves, sleep_task("join", depends_on=[t["id"] for t in leaves])], "fan"
    )
    summary = run_local(path)
    assert summary.status == "SUCCEEDED", summary.cause
    # Then every event the run published for the workflow monitor reached it before the run ended
    events = summary.events
    for_monitor = sum(n for kind, n in events["published"].items() if "workflow_monitor" in ROUTES[kind])
    assert events["delivered"].get("workflow_monitor") == for_monitor
    assert (events["handler_failures"], events.get("undelivered", {})) == ({}, {})
    # And the metrics are the run's real counts: each emission counted once, the workflow's end included
    succeeded_jobs = summary.attempts  # no failure was injected: every attempt succeeded
    assert summary.tasks["succeeded"] == succeeded_jobs == 50
    metrics = summary.metrics
    assert (metrics.get("TasksSucceeded"), metrics.get("TasksFailed", 0)) == (50, 0)
    assert (metrics.get("WorkflowsRegistered"), metrics.get("TasksPlanned")) == (1, 50)
    assert (metrics.get("WorkflowsSucceeded"), metrics.get("WorkflowsFailed", 0)) == (1, 0)


def test_a_reclaim_notice_reaches_the_interruption_handler(run_local, write_workflow):
    # Given a Spot task whose first attempt the seed reclaims
    path = write_workflow([sleep_task("hit", 1.0, estimated_runtime=3600)], "notice")
    summary = run_local(path, faults=Faults(reclaim_tasks=frozenset({"hit"}), seed=3))
    assert summary.status == "SUCCEEDED", summary.cause
    assert summary.interruptions >= 1
    # Then the interruption handler found the task on the emulated instance (Batch -> ECS container
    # instance -> its tasks -> the job -> the task) for every notice, and counted each once
    assert summary.events["handler_failures"] == {}
    assert summary.events["outcomes"]["interruption_handler"] == {"recorded": summary.interruptions}
    assert summary.metrics.get("SpotInterruptions") == summary.interruptions


def test_a_task_runner_that_cannot_be_built_is_refused_before_anything_runs(
    run_local, write_workflow, tmp_path, monkeypatch
):
    # Given a checkout whose task runner bundle cannot be built (its agent package does not import)
    from stepspot.local import runner

    broken = tmp_path / "build_agent_bundle.py"
    broken.write_text("import sys\nsys.exit(\"ModuleNotFoundError: No module named 'stepspot.agent'\")\n")
    monkeypatch.setattr(runner, "BUILD_SCRIPT", broken)
    path = write_workflow([sleep_task("a", checkpoint_enabled=True)], "no-runner")
    # Then the run is refused with the reason and the fix, and nothing was started or written
    with pytest.raises(ConfigurationError, match=r"No module named 'stepspot.agent'\): run `make build`"):
        run_local(path)
    assert not (tmp_path / ".stepspot" / "runs").exists()


def test_repeated_reclaims_open_the_breaker_and_finish_on_demand(run_local, write_workflow):
    # Given four parallel Spot tasks whose every Spot attempt is reclaimed
    tasks = [sleep_task(f"t{i}", 3.0, estimated_runtime=3600) for i in range(4)]
    path = write_workflow(tasks, "reclaims")
    faults = Faults(reclaim_tasks=frozenset(t["id"] for t in tasks), seed=2)
    policy = {"breaker": {"failure_threshold": 3, "window_seconds": 86_400, "cooldown_seconds": 86_400}}
    summary = run_local(path, faults=faults, policy=policy, time_scale=3600)
    # Then the workflow still succeeds, every task finished On-Demand, and the breaker sent some there
    assert summary.status == "SUCCEEDED", summary.cause
    assert summary.interruptions >= 3
    assert {row["capacity"] for row in summary.per_task} == {"ON_DEMAND"}
    assert summary.fallbacks_to_on_demand >= 4
    assert summary.metrics.get("SpotReclaimFailures", 0) >= 3
    # and the story says why a task went to On-Demand once the breaker had opened
    assert any(line.endswith("started on On-Demand: Spot breaker open") for line in summary.story), summary.story


def test_capacity_shortage_moves_tasks_to_on_demand(run_local, write_workflow):
    path = write_workflow([sleep_task("x"), sleep_task("y", depends_on=["x"])], "capacity")
    summary = run_local(path, faults=Faults(capacity_shortage=True), time_scale=3600)
    assert summary.status == "SUCCEEDED", summary.cause
    assert summary.capacity_failures >= 2
    assert {row["capacity"] for row in summary.per_task} == {"ON_DEMAND"}
    assert summary.metrics.get("CapacityFailures", 0) >= 2


def test_application_failure_is_retried_with_backoff_then_fails_the_workflow(run_local, write_workflow):
    # Given a task that always exits non-zero, with two retries
    path = write_workflow(
        [sleep_task("ok"), sleep_task("bad", retry_attempts=2), sleep_task("after", depends_on=["bad"])], "appfail"
    )
    summary = run_local(path, faults=Faults(failing_tasks=frozenset({"bad"})), time_scale=3600)
    # Then it ran three times, backed off between attempts, and the workflow failed naming it
    assert summary.status == "FAILED"
    assert summary.error == "WorkflowTasksFailed"
    assert "task bad failed: app_error: exit code 3; budget of 2 retries used up" in (summary.cause or "")
    rows = _by_task(summary)
    assert rows["bad"]["attempts"] == 3
    assert rows["after"]["state"] == "PENDING" and rows["after"]["attempts"] == 0
    assert summary.app_failures == 3


def test_continue_mode_lets_independent_branches_finish(run_local, write_workflow):
    path = write_workflow(DIAMOND, "continue", failure_mode="continue", max_retry_attempts=0)
    summary = run_local(path, faults=Faults(failing_tasks=frozenset({"b"})))
    assert summary.status == "FAILED"
    assert summary.tasks == {"total": 5, "succeeded": 3, "failed": 1, "skipped": 1, "not_run": 0}
    rows = _by_task(summary)
    assert (rows["c"]["state"], rows["e"]["state"], rows["d"]["state"]) == ("SUCCEEDED", "SUCCEEDED", "SKIPPED")


def _scheduler_events(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every event the run's scheduler function is invoked with (its continuations among them), as the
    engine sends them to the function's process."""
    events: list[dict[str, Any]] = []
    original = LocalLambda.call

    def recorded(self: LocalLambda, key: str, event: dict[str, Any]) -> Any:
        if key == "scheduler":
            events.append(dict(event))
        return original(self, key, event)

    monkeypatch.setattr(LocalLambda, "call", recorded)
    return events


def test_continue_mode_skips_more_descendants_than_a_slice_and_starts_more_roots_than_one(
    run_local, write_workflow, monkeypatch
):
    # Given slices of 4, seven roots (one fails, with 10 descendants), every scheduler event twice
    monkeypatch.setattr(scheduling, "DEPENDENTS_PER_INVOCATION", 4)  # the Lambdas' processes inherit it
    events = _scheduler_events(monkeypatch)
    children = [sleep_task(f"child-{i}", depends_on=["bad"]) for i in range(9)]
    solos = [sleep_task(f"solo-{i}") for i in range(6)]
    join = sleep_task("join", depends_on=[t["id"] for t in children])
    path = write_workflow(
        [sleep_task("bad"), *children, join, *solos], "wide-continue", failure_mode="continue", max_retry_attempts=0
    )
    summary = run_local(path, faults=Faults(failing_tasks=frozenset({"bad"})), duplicate_scheduler_events=True)
    # Then the continuations started the other roots and skipped every descendant, and the workflow
    # failed only after the last skip
    assert summary.status == "FAILED"
    assert summary.tasks == {"total": 17, "succeeded": 6, "failed": 1, "skipped": 10, "not_run": 0}
    skipped_from = {e["offset"] for e in events if e["action"] == scheduling.SKIP_DESCENDANTS}
    started_after = {e["after"] for e in events if e["action"] == scheduling.START_REMAINING}
    assert sorted(skipped_from) == [4, 8] and "solo-2" in started_after
    assert "task bad failed: app_error: exit code 3" in (summary.cause or "")
    assert summary.attempts == 7  # each root ran once


def test_duplicated_scheduler_events_change_nothing(run_local, write_workflow):
    path = write_workflow(DIAMOND, "duplicates")
    summary = run_local(path, duplicate_scheduler_events=True)
    assert summary.status == "SUCCEEDED", summary.cause
    assert summary.attempts == 5  # each task ran exactly once
    assert summary.transitions["task_executions"] == 5


def test_a_fan_out_wider_than_a_scheduler_slice_is_finished_by_continuations(run_local, write_workflow, monkeypatch):
    # Given slices of 8 dependents and a root with 30 (the local Lambda serves the scheduler's
    # asynchronous self-invocations as Lambda does), every scheduler event delivered twice
    monkeypatch.setattr(scheduling, "DEPENDENTS_PER_INVOCATION", 8)  # the Lambdas' processes inherit it
    events = _scheduler_events(monkeypatch)
    leaves = [sleep_task(f"leaf-{i}", depends_on=["root"]) for i in range(30)]
    path = write_workflow(
        [sleep_task("root"), *leaves, sleep_task("join", depends_on=[t["id"] for t in leaves])], "wide"
    )
    summary = run_local(path, duplicate_scheduler_events=True)
    # Then the continuations resolved the rest: every task ran once, the join last
    assert summary.status == "SUCCEEDED", summary.cause
    assert sorted({e["offset"] for e in events if e["action"] == scheduling.RESOLVE_DEPENDENTS}) == [8, 16, 24]
    assert summary.attempts == 32 and summary.tasks["succeeded"] == 32


@pytest.mark.longest
def test_thousand_task_fan_out(run_local, write_workflow):
    # Given one root, 1,000 independent tasks and a join
    leaves = [sleep_task(f"leaf-{i}", depends_on=["root"]) for i in range(1000)]
    path = write_workflow(
        [sleep_task("root"), *leaves, sleep_task("join", depends_on=[t["id"] for t in leaves])], "fanout"
    )
    summary = run_local(path, max_parallel_jobs=16, timeout_seconds=600)
    # Then all ran, state stayed small and the workflow history did not grow with the tasks
    assert summary.status == "SUCCEEDED", summary.cause
    assert summary.tasks["succeeded"] == 1002
    assert summary.transitions["workflow_execution"] == 2
    assert summary.transitions["per_task"] <= 5.01
    assert summary.largest_state_payload_bytes < 16_384


def test_a_task_execution_stopped_from_outside_fails_its_task_through_the_monitor(run_local, write_workflow):
    # Given a running task whose execution an operator stops (ABORTED: its callback to the scheduler is lost)
    import threading
    import time

    import boto3
    from botocore.exceptions import EndpointConnectionError

    from stepspot.local import moto_patches
    from stepspot.local.lambdas import REGION

    stopped: list[str] = []

    def stop_the_task_execution() -> None:
        deadline = time.monotonic() + 120
        while not moto_patches.is_patched() and time.monotonic() < deadline:
            time.sleep(0.05)  # the run's emulator (in-process) is not up yet
        sfn = boto3.client("stepfunctions", region_name=REGION)
        while not stopped and time.monotonic() < deadline:
            try:
                machines = [m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]]
            except EndpointConnectionError:  # patched, but the mock not started yet
                time.sleep(0.05)
                continue
            for machine in (m for m in machines if m.endswith("-task")):
                for execution in sfn.list_executions(stateMachineArn=machine, statusFilter="RUNNING")["executions"]:
                    sfn.stop_execution(executionArn=execution["executionArn"], error="Operator", cause="stopped")
                    stopped.append(execution["name"])
            time.sleep(0.2)

    operator = threading.Thread(target=stop_the_task_execution, daemon=True)
    operator.start()
    path = write_workflow([sleep_task("long", 30.0), sleep_task("after", depends_on=["long"])], "lost")
    summary = run_local(path, time_scale=60)
    operator.join(5)
    # Then Step Functions' ABORTED event reached the monitor, which failed the task at the scheduler
    assert stopped, "the task execution was never seen running"
    assert summary.status == "FAILED"
    assert "task long failed" in (summary.cause or "")
    assert "its task execution ended ABORTED without reporting to the scheduler" in (summary.cause or "")
    assert _by_task(summary)["after"]["state"] == "PENDING"


def test_every_function_logs_with_its_own_lambda_context(run_local, write_workflow):
    # Given a fan-out: the scheduler, the attempt manager and the workflow monitor run at the same time
    leaves = [sleep_task(f"leaf-{i}", depends_on=["root"]) for i in range(24)]
    summary = run_local(write_workflow([sleep_task("root"), *leaves], "contexts"))
    assert summary.status == "SUCCEEDED", summary.cause
    # Then each log line carries the context of the function that wrote it, as each function's own
    # execution environment gives it on AWS (one process for all of them mixed their Powertools keys)
    lines = (Path(summary.run_dir) / "lambdas.log").read_text().splitlines()
    functions = set()
    for line in lines:
        tag, document = line.split(" ", 1)
        function = tag.strip("[]")
        functions.add(function)
        assert json.loads(document)["function_name"] == function, line
    assert {"scheduler", "workflow_monitor"} <= functions
