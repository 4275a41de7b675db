"""The cost ledger on AWS (moto): the monitor prices a finished job where it ran and sums it per task and
per workflow; the workflow's end emits the sums as metrics; Spot prices are looked up once per hour."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import boto3
import pytest
from botocore.stub import Stubber
from monitoring_world import ONDEMAND_QUEUE_ARN, SPOT_CE, SPOT_QUEUE_ARN, World, build_world, emf_metrics
from monitoring_world import metric_total as total
from moto import mock_aws
from test_workflow_monitor import ONE_HOUR_ATTEMPT, job_event, load_event

from stepspot.aws.cost_sources import CostSources, spot_price_at
from stepspot.aws.cost_store import ledger_from_item, totals_from_item
from stepspot.cost import default_instance_prices
from stepspot.estimate import default_prices
from stepspot.handlers import workflow_monitor
from stepspot.local.lambdas import FakeContext, function_arn

CONTEXT = FakeContext("workflow_monitor", function_arn("workflow_monitor"))  # inject_lambda_context reads it

WF = "md-2026-11-21"  # the workflow of the execution status change events
MOTO_SPOT_PRICE = 0.00001  # what moto answers for every type and zone


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    with mock_aws(config={"batch": {"use_docker": False}}):
        built = build_world()
        monkeypatch.setenv("STEPSPOT_STATE_TABLE", "stepspot-test-state")
        monkeypatch.setenv("STEPSPOT_CHECKPOINT_TABLE", "stepspot-test-checkpoints")
        monkeypatch.setenv("STEPSPOT_ENVIRONMENT", "test")
        monkeypatch.setenv("STEPSPOT_SPOT_QUEUE_ARN", SPOT_QUEUE_ARN)
        monkeypatch.setenv("STEPSPOT_ONDEMAND_QUEUE_ARN", ONDEMAND_QUEUE_ARN)
        workflow_monitor.runtime.cache_clear()
        yield built
        workflow_monitor.runtime.cache_clear()


def _on(container_instance: str, attempt: dict) -> list[dict]:
    return [{**attempt, "container": {"containerInstanceArn": container_instance, "exitCode": 0}}]


def test_a_finished_job_is_priced_where_it_ran_and_summed_once(world: World, capsys):
    world.add_workflow(WF, name="md")
    world.add_task(WF, "production")
    _, container_instance = world.add_instance(SPOT_CE, "c7i.2xlarge")
    event = job_event("SUCCEEDED", event_id="c-1", workflow_id=WF, attempts=_on(container_instance, ONE_HOUR_ATTEMPT))
    result = workflow_monitor.lambda_handler(event, CONTEXT)
    assert result["cost_recorded"] is True
    # 8 vCPU / 16 GiB on c7i.2xlarge (8 / 16 GiB): share 1, one hour at moto's Spot price
    [entry] = ledger_from_item(world.task(WF, "production"))
    assert (entry.instance_type, entry.capacity, entry.share) == ("c7i.2xlarge", "SPOT", 1.0)
    assert entry.availability_zone.startswith("us-east-1")
    assert entry.cost_usd == pytest.approx(MOTO_SPOT_PRICE)
    assert entry.on_demand_equivalent_usd == pytest.approx(0.357)
    # The same job's event delivered again under another id adds nothing
    again = job_event("SUCCEEDED", event_id="c-2", workflow_id=WF, attempts=_on(container_instance, ONE_HOUR_ATTEMPT))
    assert workflow_monitor.lambda_handler(again, CONTEXT)["cost_recorded"] is False
    for item in (world.task(WF, "production"), world.workflow(WF)):
        sums = totals_from_item(item)
        assert sums.attempts == 1
        assert sums.total_usd == pytest.approx(MOTO_SPOT_PRICE)
        assert sums.savings_usd == pytest.approx(0.357 - MOTO_SPOT_PRICE)
    # And the workflow's end reports its cost, savings and lost work as metrics
    capsys.readouterr()
    workflow_monitor.lambda_handler(load_event("sfn-execution-status-change-succeeded.json", id="s-1"), CONTEXT)
    found = emf_metrics(capsys.readouterr().out)
    assert total(found, "WorkflowCostUSD") == pytest.approx(MOTO_SPOT_PRICE, abs=1e-6)
    assert total(found, "WorkflowSpotSavingsUSD") == pytest.approx(0.357, abs=1e-4)
    assert total(found, "WorkflowLostToReclaimsUSD") == 0


def test_a_reclaimed_attempt_loses_the_work_after_its_last_checkpoint(world: World):
    world.add_workflow("wf-1")
    world.add_task("wf-1", "production")
    _, container_instance = world.add_instance(SPOT_CE, "c7i.2xlarge")
    started, stopped = ONE_HOUR_ATTEMPT["startedAt"] // 1000, ONE_HOUR_ATTEMPT["stoppedAt"] // 1000
    world.checkpoints.put_item(
        Item={"pk": "wf-1#production", "sk": "SEQ#000000000001", "status": "COMPLETE", "created_epoch": started + 2700}
    )
    attempt = {**ONE_HOUR_ATTEMPT, "statusReason": "Host EC2 (instance i-0abc) terminated."}
    event = job_event(
        "FAILED",
        event_id="r-1",
        attempts=_on(container_instance, attempt),
        reason="Host EC2 (instance i-0abc) terminated.",
    )
    workflow_monitor.lambda_handler(event, CONTEXT)
    [entry] = ledger_from_item(world.task("wf-1", "production"))
    assert entry.reclaimed and entry.failure_class == "spot_reclaim"
    assert entry.lost_seconds == pytest.approx(stopped - (started + 2700))  # 15 minutes after the checkpoint
    assert entry.lost_usd == pytest.approx(entry.cost_usd / 4)


def test_a_job_on_an_instance_ecs_no_longer_knows_is_left_out_with_a_reason(world: World):
    world.add_task("wf-1", "production")
    gone = "arn:aws:ecs:us-east-1:123456789012:container-instance/no-such-cluster/0123"
    result = workflow_monitor.lambda_handler(
        job_event("SUCCEEDED", event_id="g-1", attempts=_on(gone, ONE_HOUR_ATTEMPT)), CONTEXT
    )
    assert result["outcome"] == "applied"
    assert "no longer knows" in result["cost_skipped"]
    assert "cost_ledger" not in world.task("wf-1", "production") or not world.task("wf-1", "production")["cost_ledger"]


def test_an_instance_type_the_tables_lack_is_described_by_ec2_and_priced_from_the_fitted_rates(world: World):
    # c3.2xlarge is in neither the instance table nor the price table: EC2 DescribeInstanceTypes says 8 vCPUs
    # and 15 GiB, and the per-vCPU/per-GiB On-Demand rates of data/prices.json price it
    world.add_workflow("wf-1")
    world.add_task("wf-1", "production")
    _, container_instance = world.add_instance(SPOT_CE, "c3.2xlarge")
    event = job_event("SUCCEEDED", event_id="t-1", attempts=_on(container_instance, ONE_HOUR_ATTEMPT))
    assert workflow_monitor.lambda_handler(event, CONTEXT)["cost_recorded"] is True
    [entry] = ledger_from_item(world.task("wf-1", "production"))
    hourly = default_prices().on_demand.hourly(8, 15 * 1024, 0, 1)  # 8 x per-vCPU + 15 x per-GiB
    assert (entry.instance_type, entry.share) == ("c3.2xlarge", 1.0)  # 8 vCPUs / 16 GiB on 8 / 15 GiB
    assert entry.on_demand_hourly_usd == pytest.approx(hourly) and hourly > 0.3
    assert entry.on_demand_equivalent_usd == pytest.approx(hourly)  # one hour, the whole instance


def test_spot_prices_are_the_ones_in_effect_then_and_cached_per_hour():
    ec2 = boto3.client("ec2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    at = dt.datetime(2026, 11, 2, 10, 30, tzinfo=dt.UTC)
    history = [
        {
            "AvailabilityZone": "us-east-1b",
            "InstanceType": "c7i.xlarge",
            "SpotPrice": "0.0700",
            "Timestamp": at - dt.timedelta(hours=5),
        },
        {
            "AvailabilityZone": "us-east-1b",
            "InstanceType": "c7i.xlarge",
            "SpotPrice": "0.0650",
            "Timestamp": at - dt.timedelta(hours=1),
        },
        {
            "AvailabilityZone": "us-east-1b",
            "InstanceType": "c7i.xlarge",
            "SpotPrice": "0.0900",
            "Timestamp": at + dt.timedelta(minutes=5),
        },
    ]
    assert spot_price_at(history, at) == 0.065
    with Stubber(ec2) as stub:
        expected = {
            "InstanceTypes": ["c7i.xlarge"],
            "AvailabilityZone": "us-east-1b",
            "ProductDescriptions": ["Linux/UNIX"],
            "StartTime": at,
            "EndTime": at,
        }
        stub.add_response("describe_spot_price_history", {"SpotPriceHistory": history}, expected)
        sources = CostSources(None, ec2, default_instance_prices(), default_prices())
        assert sources.spot_price("c7i.xlarge", "us-east-1b", at.timestamp()) == 0.065
        # the same hour: from the cache (the stubber would fail on a second call)
        assert sources.spot_price("c7i.xlarge", "us-east-1b", at.timestamp() + 600) == 0.065
        stub.assert_no_pending_responses()


def test_a_job_that_never_started_is_in_the_ledger_at_no_cost(world: World):
    # Given a Spot job cancelled while RUNNABLE for lack of capacity (no attempt, no instance)
    world.add_workflow("wf-1")
    world.add_task("wf-1", "production")
    reason = "Canceled by JobStateTimeLimit action due to reason: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY"
    event = job_event("FAILED", event_id="n-1", attempts=[], reason=reason)
    for field in ("startedAt", "stoppedAt"):
        event["detail"].pop(field, None)
    event["detail"]["container"].pop("containerInstanceArn", None)
    result = workflow_monitor.lambda_handler(event, CONTEXT)
    # Then the attempt is recorded (the report's timeline shows its queue wait) and costs nothing
    assert result["cost_recorded"] is True and result["cost_usd"] == 0
    [entry] = ledger_from_item(world.task("wf-1", "production"))
    assert (entry.instance_type, entry.started_at, entry.failure_class) == ("", None, "capacity")
    assert totals_from_item(world.workflow("wf-1")).attempts == 1


def test_a_workflow_without_a_ledger_reports_no_cost_figures(world: World, capsys):
    world.add_workflow(WF, name="md")
    workflow_monitor.lambda_handler(load_event("sfn-execution-status-change-succeeded.json", id="s-2"), CONTEXT)
    found = emf_metrics(capsys.readouterr().out)
    assert total(found, "WorkflowsSucceeded") == 1
    assert not [m for m in found if m[0].startswith("Workflow") and m[0].endswith("USD")]
