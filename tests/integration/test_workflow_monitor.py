"""The workflow monitor under moto: Batch Job State Change and Step Functions Execution Status Change."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from monitoring_world import ONDEMAND_QUEUE_ARN, SPOT_QUEUE_ARN, World, build_world, emf_metrics, load_event
from monitoring_world import metric_total as total
from moto import mock_aws

from stepspot.handlers import workflow_monitor
from stepspot.local.lambdas import FakeContext, function_arn
from stepspot.state_items import Task

CONTEXT = FakeContext("workflow_monitor", function_arn("workflow_monitor"))  # inject_lambda_context reads it

RECLAIM = "batch-job-state-change-failed-spot-reclaim.json"
SUCCEEDED = "batch-job-state-change-succeeded-ecs-properties.json"
RUNNABLE = "batch-job-state-change-runnable.json"
SFN_FAILED = "sfn-execution-status-change-failed.json"
SFN_SUCCEEDED = "sfn-execution-status-change-succeeded.json"
SFN_RUNNING = "sfn-execution-status-change-running.json"


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with mock_aws(config={"batch": {"use_docker": False}}):
        built = build_world()
        monkeypatch.setenv("STEPSPOT_STATE_TABLE", "stepspot-test-state")
        monkeypatch.setenv("STEPSPOT_CHECKPOINT_TABLE", "stepspot-test-checkpoints")
        monkeypatch.setenv("STEPSPOT_ENVIRONMENT", "test")
        monkeypatch.setenv("STEPSPOT_SPOT_QUEUE_ARN", SPOT_QUEUE_ARN)
        monkeypatch.setenv("STEPSPOT_ONDEMAND_QUEUE_ARN", ONDEMAND_QUEUE_ARN)
        monkeypatch.setenv("STEPSPOT_SNS_TOPIC_ARN", built.topic_arn)
        workflow_monitor.runtime.cache_clear()
        yield built
        workflow_monitor.runtime.cache_clear()


def job_event(
    status: str,
    *,
    event_id: str,
    job_id: str = "job-1",
    queue: str = SPOT_QUEUE_ARN,
    created_at: int = 1763730420000,
    attempts: list[dict[str, Any]] | None = None,
    workflow_id: str = "wf-1",
    task_id: str = "production",
    reason: str | None = None,
) -> dict[str, Any]:
    event = load_event(RECLAIM, id=event_id)
    detail = event["detail"]
    detail.update(jobId=job_id, jobQueue=queue, status=status, createdAt=created_at)
    detail["attempts"] = attempts if attempts is not None else []
    detail["statusReason"] = reason
    detail["container"]["environment"] = [
        {"name": "STEPSPOT_WORKFLOW_ID", "value": workflow_id},
        {"name": "STEPSPOT_TASK_ID", "value": task_id},
    ]
    return event


ONE_HOUR_ATTEMPT = {
    "startedAt": 1763730600000,
    "stoppedAt": 1763734200000,
    "statusReason": "Essential container in task exited",
}


def test_succeeded_spot_job_updates_the_task_and_counts_success_checkpoints_and_savings(
    world: World, capsys: pytest.CaptureFixture[str]
):
    # Given a task with two completed checkpoints (and one still uploading)
    world.add_task("wf-1", "production")
    world.add_checkpoint("wf-1", "production", 1)
    world.add_checkpoint("wf-1", "production", 2)
    world.add_checkpoint("wf-1", "production", 3, status="PENDING")

    # When its Spot job (8 vCPU, 16 GiB, one hour) succeeds
    event = job_event("SUCCEEDED", event_id="e-1", attempts=[ONE_HOUR_ATTEMPT])
    result = workflow_monitor.lambda_handler(event, CONTEXT)

    # Then the task item holds the job status
    assert result["outcome"] == "applied"
    item = world.task("wf-1", "production")
    assert (item["job_id"], item["job_status"], item["job_queue"], item["job_queue_kind"]) == (
        "job-1",
        "SUCCEEDED",
        "stepspot-test-spot",
        "SPOT",
    )
    assert item["checkpoints_counted_seq"] == 2
    # And the metrics count the success, the two completed checkpoints and the saving
    found = emf_metrics(capsys.readouterr().out)
    assert total(found, "TasksSucceeded") == 1
    assert total(found, "TasksSucceeded", environment="test", job_queue="stepspot-test-spot") == 1
    assert total(found, "TasksFailed") == 0
    assert total(found, "CheckpointsSaved") == 2
    from stepspot.estimate import default_prices, task_cost

    cost = task_cost(3600, 8, 16384, 0, 1, use_spot=True, prices=default_prices())
    assert total(found, "EstimatedSpotSavingsUSD") == pytest.approx(cost.on_demand_usd - cost.planned_usd, abs=1e-3)
    assert result["estimated_spot_savings_usd"] > 0


def test_older_status_never_overwrites_a_newer_one(world: World):
    # Given a task whose job already succeeded
    world.add_task("wf-1", "production")
    workflow_monitor.lambda_handler(job_event("SUCCEEDED", event_id="e-2", attempts=[ONE_HOUR_ATTEMPT]), CONTEXT)

    # When the job's RUNNING event arrives late
    result = workflow_monitor.lambda_handler(job_event("RUNNING", event_id="e-1"), CONTEXT)

    # Then it is ignored as stale (and, not being a finished state, counts nothing)
    assert result["outcome"] == "stale"
    assert "checkpoints_saved" not in result
    assert world.task("wf-1", "production")["job_status"] == "SUCCEEDED"


def test_batch_retry_of_the_same_job_moves_forward(world: World):
    # Given a job RUNNING in its first attempt
    world.add_task("wf-1", "production")
    workflow_monitor.lambda_handler(job_event("RUNNING", event_id="e-1"), CONTEXT)

    # When Batch retries it (RUNNABLE again, one finished attempt)
    attempt = {**ONE_HOUR_ATTEMPT, "statusReason": "Host EC2 (instance i-1234567890abcdef0) terminated."}
    result = workflow_monitor.lambda_handler(job_event("RUNNABLE", event_id="e-2", attempts=[attempt]), CONTEXT)

    # Then the newer RUNNABLE is applied
    assert result["outcome"] == "applied"
    item = world.task("wf-1", "production")
    assert (item["job_status"], item["job_attempts"]) == ("RUNNABLE", 1)


def test_a_job_status_event_writes_status_and_queue_flag_in_one_call(world: World):
    # Given a task, and the monitor's calls to DynamoDB recorded
    world.add_task("wf-1", "production")
    calls: list[str] = []
    client = workflow_monitor.runtime().store._table.meta.client
    client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))

    # When a job moves to RUNNING, then a late RUNNABLE arrives
    assert workflow_monitor.lambda_handler(job_event("RUNNING", event_id="e-1"), CONTEXT)["outcome"] == "applied"
    applied, calls[:] = list(calls), []
    assert workflow_monitor.lambda_handler(job_event("RUNNABLE", event_id="e-0"), CONTEXT)["outcome"] == "stale"

    # Then each is its status and queue flag in one update (the conditional status update, then the flag
    # alone, when stale): no dedup claim (the version condition makes a redelivery harmless) and no read
    # of the task it has just written
    assert applied == ["UpdateItem"]
    assert calls == ["UpdateItem", "UpdateItem"]
    assert world.task("wf-1", "production")[Task.SPOT_ATTEMPTED] is True


def test_a_job_without_checkpoints_costs_no_checkpoint_table_query(world: World):
    # Given a task whose job runs with checkpointing off (fleet sets STEPSPOT_CHECKPOINT_ENABLED on every job)
    world.add_task("wf-1", "production")
    calls: list[str] = []
    checkpoints = workflow_monitor.runtime().store._checkpoints
    checkpoints.meta.client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    event = job_event("SUCCEEDED", event_id="e-1", attempts=[ONE_HOUR_ATTEMPT])
    event["detail"]["container"]["environment"].append({"name": "STEPSPOT_CHECKPOINT_ENABLED", "value": "false"})

    # When its job succeeds
    result = workflow_monitor.lambda_handler(event, CONTEXT)

    # Then it is counted, without asking the checkpoint table for checkpoints or a run record it cannot have
    assert result["outcome"] == "applied" and result["checkpoints_saved"] == 0
    assert [c for c in calls if c == "Query"] == []


def test_a_redelivered_running_event_changes_nothing(world: World, capsys: pytest.CaptureFixture[str]):
    # Given a task whose job's RUNNING event was handled
    world.add_task("wf-1", "production")
    event = job_event("RUNNING", event_id="e-1")
    assert workflow_monitor.lambda_handler(event, CONTEXT)["outcome"] == "applied"
    before = world.task("wf-1", "production")
    capsys.readouterr()

    # When EventBridge delivers it again
    again = workflow_monitor.lambda_handler(event, CONTEXT)

    # Then the version condition refuses it: the item is as it was and nothing is counted
    assert again["outcome"] == "stale"
    assert world.task("wf-1", "production") == before
    assert emf_metrics(capsys.readouterr().out) == []


def test_fallback_to_on_demand_is_counted_once(world: World, capsys: pytest.CaptureFixture[str]):
    # Given a task whose Spot job was reclaimed
    world.add_task("wf-1", "production")
    reclaimed = {**ONE_HOUR_ATTEMPT, "statusReason": "Host EC2 (instance i-1234567890abcdef0) terminated."}
    first = workflow_monitor.lambda_handler(
        job_event("FAILED", event_id="e-1", attempts=[reclaimed], reason=reclaimed["statusReason"]), CONTEXT
    )
    assert first["spot_reclaimed_instance"] == "i-1234567890abcdef0"

    # When the task's next job runs and succeeds on the On-Demand queue
    later = 1763734300000
    workflow_monitor.lambda_handler(
        job_event("RUNNING", event_id="e-2", job_id="job-2", queue=ONDEMAND_QUEUE_ARN, created_at=later), CONTEXT
    )
    done = workflow_monitor.lambda_handler(
        job_event(
            "SUCCEEDED",
            event_id="e-3",
            job_id="job-2",
            queue=ONDEMAND_QUEUE_ARN,
            created_at=later,
            attempts=[ONE_HOUR_ATTEMPT],
        ),
        CONTEXT,
    )

    # Then one fallback, one failure and one success are counted, and On-Demand saves nothing
    found = emf_metrics(capsys.readouterr().out)
    assert total(found, "FallbacksToOnDemand") == 1
    assert total(found, "TasksFailed") == 1
    assert total(found, "TasksSucceeded") == 1
    assert "estimated_spot_savings_usd" not in done
    item = world.task("wf-1", "production")
    assert (item["job_id"], item["job_queue_kind"]) == ("job-2", "ON_DEMAND")
    assert item["fallback_recorded_at"] == "2026-11-21T14:07:12Z"


GPU_SPOT_QUEUE_ARN = "arn:aws:batch:eu-west-1:123456789012:job-queue/stepspot-test-gpu-spot"
GPU_ONDEMAND_QUEUE_ARN = "arn:aws:batch:eu-west-1:123456789012:job-queue/stepspot-test-gpu-ondemand"


def test_a_gpu_task_moving_from_gpu_spot_to_gpu_on_demand_is_a_fallback(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    # Given a deployment with the GPU pair (Terraform gpu_enabled sets both variables)
    monkeypatch.setenv("STEPSPOT_GPU_SPOT_QUEUE_ARN", GPU_SPOT_QUEUE_ARN)
    monkeypatch.setenv("STEPSPOT_GPU_ONDEMAND_QUEUE_ARN", GPU_ONDEMAND_QUEUE_ARN)
    workflow_monitor.runtime.cache_clear()
    world.add_task("wf-1", "train")
    reclaimed = {**ONE_HOUR_ATTEMPT, "statusReason": "Host EC2 (instance i-1234567890abcdef0) terminated."}

    # When its GPU Spot job is reclaimed and its next job succeeds on the GPU On-Demand queue
    first = workflow_monitor.lambda_handler(
        job_event(
            "FAILED",
            event_id="e-1",
            queue=GPU_SPOT_QUEUE_ARN,
            task_id="train",
            attempts=[reclaimed],
            reason=reclaimed["statusReason"],
        ),
        CONTEXT,
    )
    done = workflow_monitor.lambda_handler(
        job_event(
            "SUCCEEDED",
            event_id="e-2",
            job_id="job-2",
            queue=GPU_ONDEMAND_QUEUE_ARN,
            task_id="train",
            created_at=1763734300000,
            attempts=[ONE_HOUR_ATTEMPT],
        ),
        CONTEXT,
    )

    # Then the attempts count as Spot and On-Demand, and the move is one fallback
    assert (first["queue_kind"], done["queue_kind"]) == ("SPOT", "ON_DEMAND")
    assert done["fallback_to_on_demand"] is True
    assert total(emf_metrics(capsys.readouterr().out), "FallbacksToOnDemand") == 1


def test_late_spot_event_still_marks_the_fallback(world: World, capsys: pytest.CaptureFixture[str]):
    # Given a task whose On-Demand job (created later) was seen first
    world.add_task("wf-1", "production")
    later = 1763734300000
    workflow_monitor.lambda_handler(
        job_event("RUNNING", event_id="e-2", job_id="job-2", queue=ONDEMAND_QUEUE_ARN, created_at=later), CONTEXT
    )

    # When the earlier Spot job's FAILED event arrives late
    result = workflow_monitor.lambda_handler(job_event("FAILED", event_id="e-1", attempts=[ONE_HOUR_ATTEMPT]), CONTEXT)

    # Then its status does not overwrite the newer job's, but the fallback and the failure are counted
    assert (result["outcome"], result["fallback_to_on_demand"]) == ("stale", True)
    assert world.task("wf-1", "production")["job_id"] == "job-2"
    found = emf_metrics(capsys.readouterr().out)
    assert total(found, "FallbacksToOnDemand") == 1
    assert total(found, "TasksFailed") == 1


def test_job_of_an_unregistered_task_is_reported_as_unknown(world: World):
    # Given a job whose environment names a task the state table does not hold
    # When its event arrives
    result = workflow_monitor.lambda_handler(job_event("RUNNING", event_id="e-1", workflow_id="gone"), CONTEXT)

    # Then nothing is created for it
    assert result["outcome"] == "unknown_task"
    assert world.state.get_item(Key={"pk": "WF#gone", "sk": "TASK#production"}).get("Item") is None


def test_duplicate_delivery_counts_nothing_twice(world: World, capsys: pytest.CaptureFixture[str]):
    # Given a processed SUCCEEDED event
    world.add_task("wf-1", "production")
    event = job_event("SUCCEEDED", event_id="e-1", attempts=[ONE_HOUR_ATTEMPT])
    workflow_monitor.lambda_handler(event, CONTEXT)
    capsys.readouterr()

    # When it is delivered again
    result = workflow_monitor.lambda_handler(event, CONTEXT)

    # Then nothing more is counted
    assert result == {"outcome": "duplicate", "event_id": "e-1"}
    assert emf_metrics(capsys.readouterr().out) == []


def test_job_of_another_system_is_ignored(world: World):
    # Given the documented sample event of a job that is not a stepspot task (no environment, no index)
    # When it arrives
    result = workflow_monitor.lambda_handler(load_event(RUNNABLE), CONTEXT)

    # Then it is ignored and nothing is written (a non-terminal status needs no dedup marker)
    assert result["outcome"] == "not_stepspot_job"
    assert world.state.scan()["Items"] == []


def test_job_found_through_the_job_index(world: World):
    # Given the newer event shape (ecsProperties) without stepspot's environment but with the JOB# index
    event = load_event(SUCCEEDED)
    event["detail"]["ecsProperties"]["taskProperties"][0]["containers"][0]["environment"] = []
    world.add_task("wf-9", "equilibrate")
    world.index_job("7419bcec-23b4-4a65-981b-857c5a9040a5", "wf-9", "equilibrate")

    # When it arrives
    result = workflow_monitor.lambda_handler(event, CONTEXT)

    # Then the indexed task gets the status and the 2 vCPU / 2 GiB job is priced as Spot
    assert (result["outcome"], result["workflow_id"], result["task_id"]) == ("applied", "wf-9", "equilibrate")
    assert world.task("wf-9", "equilibrate")["job_status"] == "SUCCEEDED"
    assert result["queue_kind"] == "OTHER"  # "stepspot-dev-spot" is not this deployment's queue


def workflow_input(workflow_id: str) -> str:
    return json.dumps({"workflow_id": workflow_id, "definition_uri": f"s3://b/workflows/{workflow_id}/definition.json"})


def test_workflow_failure_updates_meta_and_notifies_with_the_failed_task_and_class(
    world: World, capsys: pytest.CaptureFixture[str]
):
    # Given a registered workflow with one failed task, classified by the task state machine
    world.add_workflow("md-2026-11-21", name="molecular-dynamics", total_tasks=5, succeeded=3, failed=1)
    world.add_task(
        "md-2026-11-21",
        "analysis",
        state="FAILED",
        attempts=3,
        last_failure_class="app_error",
        job_status="FAILED",
        job_status_reason="Essential container in task exited",
    )
    world.add_task("md-2026-11-21", "production", state="SUCCEEDED")

    # When the workflow execution fails
    result = workflow_monitor.lambda_handler(load_event(SFN_FAILED), CONTEXT)

    # Then META holds the status and the error
    assert result["outcome"] == "applied"
    meta = world.workflow("md-2026-11-21")
    assert meta is not None
    assert (meta["status"], meta["execution_status"], meta["execution_error"]) == (
        "FAILED",
        "FAILED",
        "TaskFailed",
    )
    # And the alert names the workflow, the failed task, its class of failure and the console
    [notice] = world.notices()
    assert notice["subject"] == "stepspot [test] workflow molecular-dynamics FAILED: task analysis (app_error)"
    message = notice["message"]
    assert "Workflow molecular-dynamics (md-2026-11-21) failed in environment test." in message
    assert "  - analysis: class app_error, attempts 3, last reason: Essential container in task exited" in message
    assert "Tasks:     3 succeeded, 1 failed of 5" in message
    assert "Cause:     Task analysis failed after 3 attempts (app_error: exit code 1)." in message
    assert (
        "Console:   https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/v2/executions/details/"
        "arn:aws:states:us-east-1:123456789012:execution:stepspot-dev-workflow:md-2026-11-21"
    ) in message
    assert notice["attributes"]["failure_class"] == "app_error"
    assert total(emf_metrics(capsys.readouterr().out), "WorkflowsFailed") == 1


def test_workflow_completion_is_notified_and_a_late_running_event_is_stale(world: World):
    # Given a registered workflow
    world.add_workflow("md-2026-11-21", name="molecular-dynamics", total_tasks=5, succeeded=5, failed=0)

    # When it succeeds, and then its RUNNING event arrives late
    done = workflow_monitor.lambda_handler(load_event(SFN_SUCCEEDED), CONTEXT)
    late = load_event(
        SFN_RUNNING,
        detail={
            "executionArn": load_event(SFN_SUCCEEDED)["detail"]["executionArn"],
            "name": "md-2026-11-21",
            "startDate": 1763730000000,
            "input": workflow_input("md-2026-11-21"),
        },
    )
    stale = workflow_monitor.lambda_handler(late, CONTEXT)

    # Then the completion notice went out and the status stays SUCCEEDED
    assert done["outcome"] == "applied"
    assert stale["outcome"] == "stale"
    meta = world.workflow("md-2026-11-21")
    assert meta is not None and meta["status"] == "SUCCEEDED"
    [notice] = world.notices()
    assert notice["subject"] == "stepspot [test] workflow molecular-dynamics succeeded"
    assert "Duration:  5h 40m 55s" in notice["message"]


def test_failure_of_an_unregistered_workflow_is_still_notified(world: World):
    # Given no META item (the workflow failed while being parsed)
    # When its execution fails
    result = workflow_monitor.lambda_handler(load_event(SFN_FAILED), CONTEXT)

    # Then the operators still hear about it
    assert result["outcome"] == "unregistered"
    [notice] = world.notices()
    assert notice["subject"] == "stepspot [test] workflow md-2026-11-21 FAILED"
    assert "the workflow was not registered" in notice["message"]


def test_failed_task_execution_is_notified(world: World):
    # Given a task state-machine execution (its input names the workflow and the task)
    event = load_event(
        SFN_FAILED,
        detail={
            "input": json.dumps({"workflow_id": "md-2026-11-21", "task_id": "analysis"}),
            "error": "States.Runtime",
            "cause": "An error occurred while executing the state 'ChooseCapacity'.",
        },
    )

    # When it fails
    result = workflow_monitor.lambda_handler(event, CONTEXT)

    # Then a task notice names it
    assert (result["outcome"], result["kind"], result["task_id"]) == ("notified", "task", "analysis")
    [notice] = world.notices()
    assert notice["subject"] == "stepspot [test] task analysis of workflow md-2026-11-21 FAILED"
    assert "Error:     States.Runtime" in notice["message"]


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        ({"detail-type": "Batch Job State Change", "source": "aws.batch"}, "id: Field required"),
        (load_event(RUNNABLE, detail={"status": "EXPLODED"}), "detail.status: Input should be 'SUBMITTED'"),
        (
            load_event(SFN_FAILED, detail={"executionArn": "nope"}),
            "detail.executionArn: String should match pattern",
        ),
        ("just text", "got a str instead of a JSON object"),
    ],
)
def test_malformed_event_is_rejected_with_a_clear_message(world: World, event: Any, problem: str):
    result = workflow_monitor.lambda_handler(event, CONTEXT)
    assert result["outcome"] == "rejected"
    assert problem in result["reason"]
    assert result["reason"].endswith("Check the EventBridge rule that targets the workflow monitor.")
    assert world.state.scan()["Items"] == []


TASK_EXECUTION_ARN = "arn:aws:states:us-east-1:123456789012:execution:stepspot-test-task:analysis-md-1"


def _task_execution_event(status: str, event_id: str) -> dict[str, Any]:
    return load_event(
        SFN_FAILED,
        id=event_id,
        detail={
            "executionArn": TASK_EXECUTION_ARN,
            "status": status,
            "input": json.dumps(
                {"workflow_id": "md-2026-11-21", "task_id": "analysis", "plan_uri": "s3://b/workflows/md/plan.json"}
            ),
            "error": "SchedulerCallbackFailed",
            "cause": "Lambda.ServiceException",
        },
    )


@pytest.mark.parametrize("status", ["FAILED", "TIMED_OUT", "ABORTED"])
def test_a_task_execution_that_ended_without_telling_the_scheduler_is_reported_once(
    world: World, monkeypatch: pytest.MonkeyPatch, status: str
):
    # Given the scheduler still counts the task as running in that execution
    world.add_workflow("md-2026-11-21", status="RUNNING")
    world.add_task("md-2026-11-21", "analysis", state="RUNNING", execution_arn=TASK_EXECUTION_ARN)
    monkeypatch.setenv("STEPSPOT_SCHEDULER_FUNCTION_ARN", "arn:aws:lambda:us-east-1:123456789012:function:scheduler")
    reports = _accept_scheduler_invocations()
    # When the execution ends abnormally (and the event is delivered twice)
    first = workflow_monitor.lambda_handler(_task_execution_event(status, "e-1"), CONTEXT)
    workflow_monitor.lambda_handler(_task_execution_event(status, "e-1"), CONTEXT)
    # Then the scheduler hears of it once, as a failure of that execution of the task
    assert first["reported_to_scheduler"] is True
    [report] = reports
    assert report["action"] == "task_failed" and report["task_id"] == "analysis"
    assert report["execution_arn"] == TASK_EXECUTION_ARN and report["plan_uri"].startswith("s3://")
    assert status in report["reason"]


def _accept_scheduler_invocations() -> list[dict[str, Any]]:
    """Lambda accepts the monitor's asynchronous invocations of the scheduler (HTTP 202) before they
    reach moto, which cannot run a function: the real client makes the call, so the IAM evaluation sees
    it. Returns the events sent."""
    sent: list[dict[str, Any]] = []

    def accept(params: dict[str, Any], **_: Any) -> Any:
        sent.append(json.loads(params["body"]))
        return AWSResponse("https://lambda.local/invoke", 202, HTTPHeaders(), None), {
            "StatusCode": 202,
            "ResponseMetadata": {"HTTPStatusCode": 202, "RetryAttempts": 0},
        }

    invoker = workflow_monitor.runtime().report_to_scheduler
    assert invoker is not None
    invoker.__self__.client.meta.events.register("before-call.lambda.Invoke", accept)  # type: ignore[attr-defined]
    return sent


def test_a_task_the_scheduler_already_finished_is_not_reported(world: World, monkeypatch: pytest.MonkeyPatch):
    world.add_workflow("md-2026-11-21", status="FAILED")
    world.add_task("md-2026-11-21", "analysis", state="FAILED", execution_arn=TASK_EXECUTION_ARN)
    monkeypatch.setenv("STEPSPOT_SCHEDULER_FUNCTION_ARN", "arn:aws:lambda:us-east-1:123456789012:function:scheduler")
    reports: list[dict[str, Any]] = []
    monkeypatch.setattr(workflow_monitor.SchedulerInvoker, "send", lambda _self, event: reports.append(event))
    result = workflow_monitor.lambda_handler(_task_execution_event("FAILED", "e-2"), CONTEXT)
    assert result["reported_to_scheduler"] is False and reports == []


def test_the_scheduler_ignores_a_report_about_an_execution_that_is_no_longer_the_tasks():
    from stepspot.handlers.scheduler import SchedulerEvent, _still_running
    from stepspot.state_items import TaskItem

    class State:
        def task(self, workflow_id: str, task_id: str) -> TaskItem:
            return TaskItem.from_item(
                {"sk": f"TASK#{task_id}", "state": "RUNNING", "execution_arn": TASK_EXECUTION_ARN}
            )

    def report(arn: str) -> SchedulerEvent:
        return SchedulerEvent(
            action="task_failed", workflow_id="wf", plan_uri="s3://b/p", task_id="t", execution_arn=arn
        )

    assert _still_running(State(), report(TASK_EXECUTION_ARN))  # type: ignore[arg-type]
    assert not _still_running(State(), report(TASK_EXECUTION_ARN + "-older-run"))  # type: ignore[arg-type]


def test_reclaimed_job_reports_its_lost_work_and_the_next_one_its_restore_once(
    world: World, capsys: pytest.CaptureFixture[str]
):
    from decimal import Decimal

    # Given a task whose runner recorded its attempt: started 100 s and last saved 30 s before the reclaim
    world.add_task("wf-1", "production")
    stopped_ms = ONE_HOUR_ATTEMPT["stoppedAt"]
    world.checkpoints.put_item(
        Item={
            "pk": "wf-1#production",
            "sk": "RUN#job-1",
            "program_started_epoch": Decimal(stopped_ms / 1000 - 100),
            "last_saved_epoch": Decimal(stopped_ms / 1000 - 30),
            "checkpoint_empty": True,
        }
    )
    reclaimed = {**ONE_HOUR_ATTEMPT, "statusReason": "Host EC2 (instance i-0123456789abcdef0) terminated."}
    # When its Spot job fails on the reclaim (and the event is delivered again under another id)
    result = workflow_monitor.lambda_handler(job_event("FAILED", event_id="e-1", attempts=[reclaimed]), CONTEXT)
    again = workflow_monitor.lambda_handler(job_event("FAILED", event_id="e-1b", attempts=[reclaimed]), CONTEXT)
    # Then the lost work is the 30 s since the last checkpoint, recorded once on the task item
    assert result["lost_work_seconds"] == 30.0
    assert "lost_work_seconds" not in again
    item = world.task("wf-1", "production")
    assert [float(x) for x in item["lost_work_seconds"]] == [30.0]
    assert item["checkpoint_empty"] is True
    # When the next job restored checkpoint 2 in 4.5 s and succeeded
    world.checkpoints.put_item(
        Item={
            "pk": "wf-1#production",
            "sk": "RUN#job-2",
            "program_started_epoch": Decimal(stopped_ms / 1000),
            "restored_sequence": 2,
            "restore_seconds": Decimal("4.5"),
        }
    )
    workflow_monitor.lambda_handler(
        job_event("SUCCEEDED", event_id="e-2", job_id="job-2", attempts=[ONE_HOUR_ATTEMPT]), CONTEXT
    )
    item = world.task("wf-1", "production")
    assert [float(x) for x in item["restore_seconds"]] == [4.5]
    assert [float(x) for x in item["lost_work_seconds"]] == [30.0]  # a success loses nothing
    # And the metrics carry both, once
    found = emf_metrics(capsys.readouterr().out)
    assert total(found, "LostWorkSeconds") == 30.0
    assert total(found, "RestoreSeconds") == 4.5
