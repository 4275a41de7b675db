"""The fleet manager Lambda under moto: capacity through the circuit breaker, derived job definitions,
failure classification with idempotent bookkeeping, and the compute environment verbs' input checks."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.validate import validate_parameters
from moto import mock_aws

from stepspot.aws.state_table import StateTable
from stepspot.errors import InvalidEventError
from stepspot.handlers import _plans, fleet_manager
from stepspot.plan import build_plan, initial_task_states, plan_to_json
from stepspot.workflow import parse_workflow

RECLAIM_CAUSE = json.dumps(
    {
        "JobId": "job-1",
        "Status": "FAILED",
        "StatusReason": "Host EC2 (instance i-0123456789abcdef0) terminated.",
        "Attempts": [{"StatusReason": "Host EC2 (instance i-0123456789abcdef0) terminated.", "Container": {}}],
    }
)
EXIT_CAUSE = json.dumps(
    {"JobId": "job-2", "Status": "FAILED", "Attempts": [{"Container": {"ExitCode": 3}, "StatusReason": "x"}]}
)
WORKFLOW = {
    "name": "fleet",
    "tasks": [
        {"id": "single", "container_image": "repo/md:1", "command": ["md", "run"], "retry_attempts": 1},
        {"id": "other", "container_image": "repo/md:1", "command": ["md", "run"]},
        {"id": "third", "container_image": "repo/md:1", "command": ["md", "run"]},
        {"id": "mpi", "container_image": "repo/mpi:2", "command": ["mpirun", "x"], "nodes": 4, "spot_enabled": False},
    ],
}


@pytest.fixture
def fleet(monkeypatch):
    with mock_aws():
        dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName="state",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bucket")
        plan = build_plan(parse_workflow(WORKFLOW).workflow, "wf")
        s3.put_object(Bucket="bucket", Key="workflows/wf/plan.json", Body=plan_to_json(plan))
        StateTable(dynamodb, "state").register_workflow(
            {"workflow_id": "wf", "status": "PARSED", "total_tasks": 4}, initial_task_states(plan), "sha"
        )
        batch = boto3.client("batch", region_name="us-east-1")
        container = {
            "image": "base",
            "command": ["true"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}],
        }
        single = batch.register_job_definition(
            jobDefinitionName="base", type="container", containerProperties=container
        )
        multi = batch.register_job_definition(
            jobDefinitionName="base-mnp",
            type="multinode",
            nodeProperties={
                "numNodes": 2,
                "mainNode": 0,
                "nodeRangeProperties": [{"targetNodes": "0:", "container": container}],
            },
        )
        for name, value in {
            "STEPSPOT_BUCKET": "bucket",
            "STEPSPOT_ENVIRONMENT": "test",
            "STEPSPOT_STATE_TABLE": "state",
            "STEPSPOT_SPOT_QUEUE_ARN": "arn:aws:batch:us-east-1:123456789012:job-queue/spot",
            "STEPSPOT_ONDEMAND_QUEUE_ARN": "arn:aws:batch:us-east-1:123456789012:job-queue/ondemand",
            "STEPSPOT_MNP_QUEUE_ARN": "arn:aws:batch:us-east-1:123456789012:job-queue/mnp",
            "STEPSPOT_SPOT_COMPUTE_ENV": "spot-ce",
            "STEPSPOT_ONDEMAND_COMPUTE_ENV": "od-ce",
            "STEPSPOT_JOB_DEFINITION_ARN": single["jobDefinitionArn"],
            "STEPSPOT_MNP_JOB_DEFINITION_ARN": multi["jobDefinitionArn"],
            "STEPSPOT_POLICY": json.dumps({"breaker": {"failure_threshold": 2, "cooldown_seconds": 3600}}),
        }.items():
            monkeypatch.setenv(name, value)
        fleet_manager._fleet.cache_clear()
        _plans.clear()
        yield batch
        fleet_manager._fleet.cache_clear()


def _call(event):
    return fleet_manager.lambda_handler(event, _Context())


class _Context:
    function_name = "fleet_manager"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:fleet"
    aws_request_id = "req"


def _ids(task_id, attempt=1, on_demand=False):
    return {
        "workflow_id": "wf",
        "task_id": task_id,
        "plan_uri": "s3://bucket/workflows/wf/plan.json",
        "attempt": attempt,
        "on_demand": on_demand,
    }


def test_a_spot_task_goes_to_spot_under_the_agent_with_its_ids(fleet):
    job = _call({"action": "choose_capacity", **_ids("single")})
    assert (job["capacity"], job["queue_name"], job["multi_node"]) == ("SPOT", "spot", False)
    overrides = job["container_overrides"]
    assert overrides["Command"] == ["md", "run"] or overrides["Command"][:3] == ["stepspot-agent", "run", "--"]
    env = {e["Name"]: e["Value"] for e in overrides["Environment"]}
    assert (env["STEPSPOT_WORKFLOW_ID"], env["STEPSPOT_TASK_ID"]) == ("wf", "single")
    assert len(json.dumps(job)) < 4096


def test_every_job_carries_the_cost_allocation_tags(fleet):
    job = _call({"action": "choose_capacity", **_ids("single", attempt=3)})
    assert job["tags"] == {
        "stepspot:workflow": "wf",
        "stepspot:task": "single",
        "stepspot:attempt": "3",
        "stepspot:environment": "test",
    }
    # What RunJob passes on: SubmitJob accepts the tags (and propagateTags) as the model defines them
    model = boto3.client("batch", region_name="us-east-1").meta.service_model.operation_model("SubmitJob")
    validate_parameters(
        {"jobName": "j", "jobQueue": "q", "jobDefinition": "d", "tags": job["tags"], "propagateTags": True},
        model.input_shape,
    )


def test_multi_node_tasks_use_the_mnp_definition_on_the_mnp_queue(fleet):
    job = _call({"action": "choose_capacity", **_ids("mpi")})
    assert (job["capacity"], job["queue_name"], job["multi_node"]) == ("ON_DEMAND", "mnp", True)
    assert job["node_overrides"]["NumNodes"] == 4
    definition = fleet.describe_job_definitions(jobDefinitions=[job["job_definition_arn"]])["jobDefinitions"][0]
    # (moto keeps no nodeProperties, so the image of the derived revision is checked by its name)
    assert definition["type"] == "multinode"
    assert definition["jobDefinitionName"].startswith("base-mnp-")


def test_derived_job_definitions_are_registered_once_per_image(fleet):
    first = _call({"action": "choose_capacity", **_ids("single")})["job_definition_arn"]
    fleet_manager._fleet.cache_clear()  # a cold Lambda must find the existing revision
    second = _call({"action": "choose_capacity", **_ids("other")})["job_definition_arn"]
    assert first == second
    names = {d["jobDefinitionName"] for d in fleet.describe_job_definitions()["jobDefinitions"]}
    assert len([n for n in names if n.startswith("base-") and n != "base-mnp"]) == 1


def test_reclaims_retry_then_open_the_breaker_for_other_tasks(fleet):
    for task_id in ("single", "other"):
        job = _call({"action": "choose_capacity", **_ids(task_id)})
        decision = _call(
            {
                "action": "classify_failure",
                **_ids(task_id),
                "job": job,
                "error": {"Error": "States.TaskFailed", "Cause": RECLAIM_CAUSE},
            }
        )
        assert decision["decision"]["failure_class"] == "spot_reclaim"
        assert decision["decision"]["action"] == "retry" and decision["attempt"] == 2
    # Two Spot failures reached the threshold: a third task is sent On-Demand as a fallback
    job = _call({"action": "choose_capacity", **_ids("third")})
    assert (job["capacity"], job["fallback"], job["reason"]) == ("ON_DEMAND", True, "Spot breaker open")


def test_a_redelivered_classification_counts_once_and_decides_the_same(fleet):
    job = _call({"action": "choose_capacity", **_ids("single")})
    event = {
        "action": "classify_failure",
        **_ids("single"),
        "job": job,
        "error": {"Error": "States.TaskFailed", "Cause": EXIT_CAUSE},
    }
    first, again = _call(event), _call(event)
    assert first == again
    # retry_attempts=1: the second application failure gives up
    job = _call({"action": "choose_capacity", **_ids("single", attempt=2)})
    final = _call({**event, "attempt": 2, "job": job})
    assert final["decision"]["action"] == "give_up"
    assert final["decision"]["reason"] == "app_error: exit code 3; budget of 1 retry used up"


def test_unknown_task_and_malformed_events_are_refused_clearly(fleet):
    with pytest.raises(Exception, match="task 'ghost' is not part of workflow wf"):
        _call({"action": "choose_capacity", **_ids("ghost")})
    with pytest.raises(InvalidEventError, match="classify_failure event needs error"):
        _call({"action": "classify_failure", **_ids("single")})
    with pytest.raises(InvalidEventError, match="modify needs at least one of"):
        _call({"action": "modify", "compute_environment": "spot"})
