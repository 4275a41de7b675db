"""The interruption handler under moto: ECS + Batch + DynamoDB + SNS, with AWS's sample EC2 notices."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from monitoring_world import SPOT_CE, World, build_world, emf_metrics, load_event, metric_total
from moto import mock_aws

from stepspot.errors import ConfigurationError
from stepspot.handlers import interruption_handler
from stepspot.local.lambdas import FakeContext, function_arn

CONTEXT = FakeContext("interruption_handler", function_arn("interruption_handler"))  # inject_lambda_context reads it

WARNING = "ec2-spot-instance-interruption-warning.json"
REBALANCE = "ec2-instance-rebalance-recommendation.json"


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with mock_aws(config={"batch": {"use_docker": False}}):
        built = build_world()
        monkeypatch.setenv("STEPSPOT_STATE_TABLE", "stepspot-test-state")
        monkeypatch.setenv("STEPSPOT_SPOT_COMPUTE_ENV", f"{SPOT_CE}, stepspot-test-ondemand")
        monkeypatch.setenv("STEPSPOT_ENVIRONMENT", "test")
        monkeypatch.setenv("STEPSPOT_SNS_TOPIC_ARN", built.topic_arn)
        interruption_handler.runtime.cache_clear()
        yield built
        interruption_handler.runtime.cache_clear()


def warning_for(instance_id: str, event_id: str = "5a1c6f3e-0000-4000-8000-000000000001") -> dict[str, Any]:
    return load_event(
        WARNING,
        id=event_id,
        resources=[f"arn:aws:ec2:us-east-1:123456789012:instance/{instance_id}"],
        detail={"instance-id": instance_id},
    )


def test_warning_is_recorded_on_exactly_the_tasks_of_that_instance(world: World, capsys: pytest.CaptureFixture[str]):
    # Given two Spot instances, each running one stepspot job, and the job index written at submission
    hit_instance, hit_container = world.add_instance(instance_type="c5.2xlarge")
    _, other_container = world.add_instance(instance_type="m5.2xlarge")
    world.add_task("wf-1", "equilibrate")
    world.add_task("wf-1", "production")
    world.index_job("job-hit", "wf-1", "production")
    world.index_job("job-other", "wf-1", "equilibrate")
    world.start_job_task(hit_container, "job-hit")
    world.start_job_task(other_container, "job-other")

    # When the interruption warning for the first instance arrives
    result = interruption_handler.lambda_handler(warning_for(hit_instance), CONTEXT)

    # Then only the task on that instance carries the notice
    assert result["outcome"] == "recorded"
    assert [(t["workflow_id"], t["task_id"], t["job_id"]) for t in result["tasks"]] == [
        ("wf-1", "production", "job-hit")
    ]
    hit = world.task("wf-1", "production")
    assert hit["interruptions"] == 1
    assert hit["last_notice_kind"] == "spot_interruption_warning"
    assert hit["last_interruption_at"] == "2026-11-21T14:05:03Z"
    assert hit["last_interruption_action"] == "terminate"
    assert hit["last_notice_instance_id"] == hit_instance
    assert "interruptions" not in world.task("wf-1", "equilibrate")
    # And SpotInterruptions is counted in total and per instance type and zone
    found = emf_metrics(capsys.readouterr().out)
    assert metric_total(found, "SpotInterruptions") == 1
    assert (
        metric_total(
            found,
            "SpotInterruptions",
            environment="test",
            instance_type="c5.2xlarge",
            availability_zone="us-east-1b",
        )
        == 1
    )
    # And the operators get one notice naming the instance and the task
    [notice] = world.notices()
    assert notice["subject"] == (f"stepspot [test] Spot interruption: {hit_instance} (c5.2xlarge, us-east-1b), 1 task")
    assert "production of workflow wf-1 (Batch job job-hit)" in notice["message"]
    assert notice["attributes"]["instance_id"] == hit_instance


def test_redelivered_event_changes_nothing(world: World, capsys: pytest.CaptureFixture[str]):
    # Given a warning already processed
    instance, container = world.add_instance()
    world.add_task("wf-1", "production")
    world.index_job("job-1", "wf-1", "production")
    world.start_job_task(container, "job-1")
    event = warning_for(instance)
    assert interruption_handler.lambda_handler(event, CONTEXT)["outcome"] == "recorded"
    world.notices()
    capsys.readouterr()

    # When EventBridge delivers the same event again
    result = interruption_handler.lambda_handler(event, CONTEXT)

    # Then nothing is counted, recorded or sent twice
    assert result == {"outcome": "duplicate", "event_id": event["id"], "instance_id": instance}
    assert world.task("wf-1", "production")["interruptions"] == 1
    assert metric_total(emf_metrics(capsys.readouterr().out), "SpotInterruptions") == 0
    assert world.notices() == []


def test_job_without_index_item_is_found_through_its_batch_environment(world: World):
    # Given a job submitted without a JOB# index item, carrying stepspot's environment
    world.batch.create_job_queue(
        jobQueueName="q",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": SPOT_CE}],
    )
    world.batch.register_job_definition(
        jobDefinitionName="jd",
        type="container",
        containerProperties={"image": "md", "vcpus": 2, "memory": 512},
    )
    job_id = world.batch.submit_job(
        jobName="production",
        jobQueue="q",
        jobDefinition="jd",
        containerOverrides={
            "environment": [
                {"name": "STEPSPOT_WORKFLOW_ID", "value": "wf-2"},
                {"name": "STEPSPOT_TASK_ID", "value": "analysis"},
            ]
        },
    )["jobId"]
    world.add_task("wf-2", "analysis")
    instance, container = world.add_instance()
    world.start_job_task(container, job_id)

    # When its instance gets the warning
    result = interruption_handler.lambda_handler(warning_for(instance), CONTEXT)

    # Then the task named by the job's environment gets the notice
    assert result["outcome"] == "recorded"
    assert world.task("wf-2", "analysis")["interruptions"] == 1


def test_instance_of_our_cluster_without_our_jobs_is_a_normal_outcome(
    world: World, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
):
    # Given an idle Spot instance in stepspot's compute environment
    instance, _ = world.add_instance(instance_type="m5.2xlarge")

    # When it gets the warning
    result = interruption_handler.lambda_handler(warning_for(instance), CONTEXT)

    # Then it is logged and counted (the fleet was interrupted) but nobody is notified
    assert result["outcome"] == "no_stepspot_jobs"
    assert result["instance_type"] == "m5.2xlarge"
    assert "Instance runs none of stepspot's jobs" in caplog.text
    assert metric_total(emf_metrics(capsys.readouterr().out), "SpotInterruptions") == 1
    assert world.notices() == []


def test_unknown_instance_is_logged_and_not_counted(
    world: World, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
):
    # Given an instance that belongs to no stepspot compute environment
    # When its warning arrives (the EventBridge rule sees every Spot instance of the account)
    result = interruption_handler.lambda_handler(warning_for("i-0abcdef1234567890"), CONTEXT)

    # Then the outcome says so and no metric or notice is produced
    assert result["outcome"] == "not_stepspot_instance"
    assert "Instance is in none of stepspot's Spot compute environments" in caplog.text
    assert metric_total(emf_metrics(capsys.readouterr().out), "SpotInterruptions") == 0
    assert world.notices() == []


def test_rebalance_recommendation_is_recorded_without_counting_an_interruption(
    world: World, capsys: pytest.CaptureFixture[str]
):
    # Given a task running on a Spot instance
    instance, container = world.add_instance()
    world.add_task("wf-1", "production")
    world.index_job("job-1", "wf-1", "production")
    world.start_job_task(container, "job-1")
    event = load_event(REBALANCE, detail={"instance-id": instance})

    # When a rebalance recommendation arrives
    result = interruption_handler.lambda_handler(event, CONTEXT)

    # Then the notice is on the task, in its own counter and metric, and no alert is sent
    assert result["outcome"] == "recorded"
    item = world.task("wf-1", "production")
    assert item["rebalance_recommendations"] == 1
    assert item["last_notice_kind"] == "rebalance_recommendation"
    assert "interruptions" not in item
    found = emf_metrics(capsys.readouterr().out)
    assert metric_total(found, "RebalanceRecommendations") == 1
    assert metric_total(found, "SpotInterruptions") == 0
    assert world.notices() == []


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        ({"hello": "world"}, "detail-type None is not one this handler takes"),
        (load_event(WARNING, id=""), "id: String should have at least 1 character"),
        (load_event(WARNING, detail={"instance-id": "not-an-instance"}), "String should match pattern"),
        (
            load_event(WARNING, **{"detail-type": "EC2 Instance State-change Notification"}),
            "detail-type 'EC2 Instance State-change Notification' is not one this handler takes",
        ),
        (load_event(WARNING, source="aws.batch"), "source: Input should be 'aws.ec2'"),
        (["not", "an", "object"], "got a list instead of a JSON object"),
    ],
)
def test_malformed_event_is_rejected_with_a_clear_log_line(
    world: World, caplog: pytest.LogCaptureFixture, event: Any, problem: str
):
    # When an event that is not a documented EC2 notice arrives
    result = interruption_handler.lambda_handler(event, CONTEXT)

    # Then the handler returns normally (no retry loop), says what is wrong, and writes nothing
    assert result["outcome"] == "rejected"
    assert (
        "expected an EventBridge 'EC2 Spot Instance Interruption Warning' event from aws.ec2 or "
        "'EC2 Instance Rebalance Recommendation' event from aws.ec2 (" in result["reason"]
    )
    assert problem in result["reason"]
    assert "Check the EventBridge rule that targets the interruption handler." in result["reason"]
    [record] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert record.getMessage() == result["reason"]
    assert world.state.scan()["Items"] == []


def test_failure_releases_the_claim_so_the_retry_is_processed(world: World, monkeypatch: pytest.MonkeyPatch):
    # Given a task on an instance and an ECS call that fails once (throttled)
    instance, container = world.add_instance()
    world.add_task("wf-1", "production")
    world.index_job("job-1", "wf-1", "production")
    world.start_job_task(container, "job-1")
    rt = interruption_handler.runtime()
    original = rt.ecs.batch_job_ids
    calls = {"n": 0}

    def flaky(cluster: str, container_instance: str) -> list[str]:
        calls["n"] += 1
        if calls["n"] == 1:
            from stepspot.errors import AwsThrottledError

            raise AwsThrottledError("ecs:ListTasks was throttled or failed briefly (ThrottlingException); retry later.")
        return original(cluster, container_instance)

    monkeypatch.setattr(rt.ecs, "batch_job_ids", flaky)
    event = warning_for(instance)

    # When the first invocation fails and EventBridge retries
    with pytest.raises(Exception, match="throttled"):
        interruption_handler.lambda_handler(event, CONTEXT)
    result = interruption_handler.lambda_handler(event, CONTEXT)

    # Then the retry does the work once
    assert result["outcome"] == "recorded"
    assert world.task("wf-1", "production")["interruptions"] == 1


def test_missing_compute_environment_is_a_configuration_error(world: World, monkeypatch: pytest.MonkeyPatch):
    # Given the function configured with a compute environment that does not exist
    monkeypatch.setenv("STEPSPOT_SPOT_COMPUTE_ENV", "no-such-ce")
    interruption_handler.runtime.cache_clear()

    # When a notice arrives, Then the error names the variable and the fix
    with pytest.raises(
        ConfigurationError,
        match="Spot compute environment\\(s\\) no-such-ce named by STEPSPOT_SPOT_COMPUTE_ENV",
    ):
        interruption_handler.lambda_handler(warning_for("i-0abcdef1234567890"), CONTEXT)


def test_missing_environment_variable_fails_at_cold_start(monkeypatch: pytest.MonkeyPatch):
    # Given a function without its state table variable
    monkeypatch.delenv("STEPSPOT_STATE_TABLE", raising=False)
    monkeypatch.setenv("STEPSPOT_SPOT_COMPUTE_ENV", SPOT_CE)
    monkeypatch.setenv("STEPSPOT_ENVIRONMENT", "test")
    interruption_handler.runtime.cache_clear()

    # Then the first invocation says which variable is missing
    with pytest.raises(
        ConfigurationError,
        match="InterruptionSettings: STEPSPOT_STATE_TABLE is not set: set it in the function's environment",
    ):
        interruption_handler.lambda_handler(warning_for("i-0abcdef1234567890"), CONTEXT)
    interruption_handler.runtime.cache_clear()
