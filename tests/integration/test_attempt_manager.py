"""The attempt manager Lambda under moto: capacity through the circuit breaker, derived job definitions,
failure classification with idempotent bookkeeping, and the compute environment verbs' input checks."""

from __future__ import annotations

import json
import re
from collections import Counter

import boto3
import pytest
from botocore.validate import validate_parameters
from moto import mock_aws

from stepspot.aws.plan_objects import write_plan
from stepspot.aws.s3 import DocumentStore
from stepspot.aws.state_table import StateTable
from stepspot.build_info import deployment_version
from stepspot.errors import ConfigurationError, InvalidEventError
from stepspot.fleet import runner_invocation, runner_program
from stepspot.handlers import _cache, attempt_manager
from stepspot.local.resources import create_table
from stepspot.plan import build_plan, initial_task_states, plan_to_json
from stepspot.plan_store import encode_plan
from stepspot.settings import load_settings
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
    "global_config": {"shared_filesystem": True},
    "tasks": [
        {"id": "single", "container_image": "repo/md:1", "command": ["md", "run"], "retry_attempts": 1},
        {"id": "other", "container_image": "repo/md:1", "command": ["md", "run"]},
        {"id": "third", "container_image": "repo/md:1", "command": ["md", "run"]},
        {"id": "mpi", "container_image": "repo/mpi:2", "command": ["mpirun", "x"], "nodes": 4, "spot_enabled": False},
        {"id": "gpu", "container_image": "repo/train:1", "command": ["train"], "gpus": 1, "vcpus": 4, "memory": 8192},
        {"id": "pinned", "container_image": "repo/md:1", "command": ["md", "run"], "queue": "on-demand"},
    ],
}
OOM_CAUSE = json.dumps(
    {
        "JobId": "job-3",
        "Status": "FAILED",
        "StatusReason": "Essential container in task exited",
        "Attempts": [
            {
                "Container": {"ExitCode": 137, "Reason": "OutOfMemoryError: Container killed due to memory usage"},
                "StatusReason": "Essential container in task exited",
            }
        ],
    }
)
GPU_SPOT = "arn:aws:batch:us-east-1:123456789012:job-queue/gpu-spot"
GPU_ONDEMAND = "arn:aws:batch:us-east-1:123456789012:job-queue/gpu-ondemand"


@pytest.fixture
def fleet(monkeypatch):
    with mock_aws():
        dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
        create_table(dynamodb, "state")
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bucket")
        plan = build_plan(parse_workflow(WORKFLOW).workflow, "wf")
        write_plan(DocumentStore(s3, "bucket"), "workflows/wf/plan.json", encode_plan(plan, "workflows/wf/plan.json"))
        StateTable(dynamodb, "state").register_workflow(
            {"workflow_id": "wf", "status": "PARSED", "total_tasks": len(WORKFLOW["tasks"])},
            initial_task_states(plan),
            "sha",
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
            "STEPSPOT_GPU_SPOT_QUEUE_ARN": GPU_SPOT,
            "STEPSPOT_GPU_ONDEMAND_QUEUE_ARN": GPU_ONDEMAND,
            "STEPSPOT_INSTANCE_TYPES": json.dumps({"spot": ["m5.xlarge"], "on-demand": ["m5.xlarge", "c5.large"]}),
        }.items():
            monkeypatch.setenv(name, value)
        _cache.reset_all()  # settings, clients and plans of the previous test
        yield batch
        _cache.reset_all()


def _call(event):
    return attempt_manager.lambda_handler(event, _Context())


class _Context:
    function_name = "attempt_manager"
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
    assert overrides["Command"] == ["md", "run"] or runner_program(overrides["Command"]) == ["md", "run"]
    env = {e["Name"]: e["Value"] for e in overrides["Environment"]}
    assert (env["STEPSPOT_WORKFLOW_ID"], env["STEPSPOT_TASK_ID"]) == ("wf", "single")
    # The task runner refuses a bundle that is not the build of these Lambdas.
    assert env["STEPSPOT_VERSION"] == deployment_version()
    assert len(json.dumps(job)) < 4096


def test_a_plan_written_before_the_sharded_format_is_still_read(fleet):
    # A workflow running across an upgrade keeps the whole-document plan (format 1) it was registered with.
    plan = build_plan(parse_workflow(WORKFLOW).workflow, "wf")
    boto3.client("s3").put_object(Bucket="bucket", Key="workflows/old/plan.json", Body=plan_to_json(plan))
    event = {**_ids("single"), "plan_uri": "s3://bucket/workflows/old/plan.json"}
    job = _call({"action": "choose_capacity", **event})
    assert (job["capacity"], job["queue_name"]) == ("SPOT", "spot")


def test_a_cold_choice_reads_the_header_and_one_shard_only(fleet):
    gets = []
    # Clients copy their session's event hooks when created: register, then let the attempt manager start cold.
    events, hook = boto3._get_default_session().events, "before-parameter-build.s3.GetObject"
    events.register(hook, lambda params, **_: gets.append(params["Key"]), unique_id="count-plan-reads")
    attempt_manager.runtime.cache_clear()
    try:
        _call({"action": "choose_capacity", **_ids("single")})
    finally:
        events.unregister(hook, unique_id="count-plan-reads")
    assert gets[0] == "workflows/wf/plan.json"
    assert len(gets) == 2 and gets[1].startswith("workflows/wf/plan/") and gets[1].endswith(".json.gz")


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
    _cache.reset_all()  # a cold Lambda must find the existing revision
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


def test_a_gpu_task_goes_to_the_gpu_spot_queue_and_falls_back_to_the_gpu_on_demand_queue(fleet):
    job = _call({"action": "choose_capacity", **_ids("gpu")})
    assert (job["capacity"], job["queue_arn"]) == ("SPOT", GPU_SPOT)
    assert {"Type": "GPU", "Value": "1"} in job["container_overrides"]["ResourceRequirements"]
    job = _call({"action": "choose_capacity", **_ids("gpu", attempt=2, on_demand=True)})
    assert (job["capacity"], job["queue_arn"]) == ("ON_DEMAND", GPU_ONDEMAND)


def test_a_gpu_task_in_a_deployment_without_gpu_queues_fails_with_a_sentence(fleet, monkeypatch):
    monkeypatch.delenv("STEPSPOT_GPU_SPOT_QUEUE_ARN")
    _cache.reset_all()
    with pytest.raises(Exception, match="task 'gpu' needs queue 'gpu-spot', which this deployment does not have"):
        _call({"action": "choose_capacity", **_ids("gpu")})


def _environment(job):
    return {e["Name"]: e["Value"] for e in job["container_overrides"]["Environment"]}


def test_jobs_find_the_shared_file_system_where_the_deployment_mounts_it(fleet, monkeypatch):
    assert _environment(_call({"action": "choose_capacity", **_ids("single")}))["STEPSPOT_SHARED_DIR"] == "/mnt/efs"
    monkeypatch.setenv("STEPSPOT_SHARED_MOUNT_PATH", "/shared/data")  # Terraform's shared_mount_path
    _cache.reset_all()
    job = _call({"action": "choose_capacity", **_ids("other")})
    assert _environment(job)["STEPSPOT_SHARED_DIR"] == "/shared/data"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"spot": ["m5.xlarge"], "gpu_spot": ["g5.xlarge"]}', "unknown queue(s) gpu_spot; expected spot, on-demand"),
        ("[1, 2]", "not a JSON object of queue name -> instance types"),
        ("{not json", "not a JSON object of queue name -> instance types"),
    ],
)
def test_instance_types_under_unknown_queue_names_fail_at_cold_start(fleet, monkeypatch, value, message):
    monkeypatch.setenv("STEPSPOT_INSTANCE_TYPES", value)
    with pytest.raises(
        ConfigurationError, match=r"STEPSPOT_INSTANCE_TYPES is invalid \(Value error, " + re.escape(message)
    ):
        load_settings(attempt_manager.AttemptManagerSettings)


def test_a_relative_shared_mount_path_fails_at_cold_start(fleet, monkeypatch):
    monkeypatch.setenv("STEPSPOT_SHARED_MOUNT_PATH", "mnt/efs")
    with pytest.raises(ConfigurationError, match="STEPSPOT_SHARED_MOUNT_PATH is invalid"):
        load_settings(attempt_manager.AttemptManagerSettings)


def test_a_task_pinned_to_the_on_demand_queue_never_uses_spot(fleet):
    job = _call({"action": "choose_capacity", **_ids("pinned")})
    assert (job["capacity"], job["queue_name"]) == ("ON_DEMAND", "ondemand")
    assert job["reason"] == "pinned to queue 'on-demand' (tasks[].queue)"


def test_multi_node_commands_give_the_nodes_their_roles(fleet):
    job = _call({"action": "choose_capacity", **_ids("mpi")})
    command = job["node_overrides"]["NodePropertyOverrides"][0]["ContainerOverrides"]["Command"]
    assert runner_invocation(command) == ("mpi", ["mpirun", "x"])  # the bundle's `mpi` action around the launcher


def test_an_out_of_memory_attempt_is_retried_with_more_memory_up_to_the_ceiling(fleet, monkeypatch):
    job = _call({"action": "choose_capacity", **_ids("other")})
    assert job["memory"] == 1024
    event = {"action": "classify_failure", **_ids("other"), "job": job, "error": {"Error": "States.TaskFailed"}}
    decided = _call({**event, "error": {"Error": "States.TaskFailed", "Cause": OOM_CAUSE}})
    assert decided["decision"]["action"] == "retry"
    assert decided["decision"]["reason"].endswith(", with 1536 MiB (was 1024 MiB)")
    job = _call({"action": "choose_capacity", **_ids("other", attempt=2)})
    assert job["memory"] == 1536
    assert {"Type": "MEMORY", "Value": "1536"} in job["container_overrides"]["ResourceRequirements"]
    # A ceiling of 1536 MiB (policy): the next out-of-memory attempt cannot grow, the task gives up
    monkeypatch.setenv("STEPSPOT_POLICY", json.dumps({"out_of_memory": {"ceiling_mib": 1536}}))
    _cache.reset_all()
    final = _call({**event, "attempt": 2, "job": job, "error": {"Error": "States.TaskFailed", "Cause": OOM_CAUSE}})
    assert final["decision"]["action"] == "give_up"
    assert final["decision"]["reason"].startswith("app_error: out of memory with 1536 MiB, the most the task's queue")
    item = (
        boto3.resource("dynamodb", region_name="us-east-1")
        .Table("state")
        .get_item(Key={"pk": "WF#wf", "sk": "TASK#other"})["Item"]
    )
    assert (item["base_memory"], item["memory_escalations"]) == (1024, [[2, 1536]])


def test_the_queue_ceiling_bounds_the_memory_of_a_retry(fleet):
    # on-demand lists c5.large too, but the largest type of each queue the task may use is m5.xlarge
    job = _call({"action": "choose_capacity", **_ids("third")})
    big = {**job, "memory": 12000}
    decided = _call(
        {
            "action": "classify_failure",
            **_ids("third"),
            "job": big,
            "error": {"Error": "States.TaskFailed", "Cause": OOM_CAUSE},
        }
    )
    assert decided["decision"]["reason"].endswith(", with 15860 MiB (was 12000 MiB)")


def _batch_calls(client) -> list[str]:
    calls: list[str] = []
    client.meta.events.register("before-call.batch", lambda model, **_: calls.append(model.name))
    return calls


def _active(client, prefix: str) -> list[dict]:
    found = client.describe_job_definitions(status="ACTIVE")["jobDefinitions"]
    return [d for d in found if d["jobDefinitionName"].startswith(prefix)]


def test_a_terraform_change_to_the_base_definition_reaches_images_already_seen(fleet):
    from stepspot.aws.batch import Batch

    batch = Batch(fleet)
    base = fleet.describe_job_definitions(jobDefinitionName="base")["jobDefinitions"][0]
    before = batch.definition_for_image(base["jobDefinitionArn"], "repo/md:1")
    # When Terraform changes the base (a new revision with another retry strategy)
    changed = fleet.register_job_definition(
        jobDefinitionName="base",
        type="container",
        containerProperties=base["containerProperties"],
        retryStrategy={"attempts": 3},
    )
    after = batch.definition_for_image(changed["jobDefinitionArn"], "repo/md:1")
    # Then the image runs under a new derived definition that carries the change
    assert after != before
    derived = fleet.describe_job_definitions(jobDefinitions=[after])["jobDefinitions"][0]
    assert derived["retryStrategy"]["attempts"] == 3
    assert derived["containerProperties"]["image"] == "repo/md:1"


def test_concurrent_cold_starts_settle_on_one_revision(fleet, monkeypatch):
    from stepspot.aws.batch import Batch

    base_arn = fleet.describe_job_definitions(jobDefinitionName="base")["jobDefinitions"][0]["jobDefinitionArn"]
    first, second = Batch(fleet), Batch(fleet)
    # Given the second cold start listed the name before the first registered it
    real = second._active_revisions
    stale = [True]

    def listing(name):
        if stale.pop() if stale else False:
            return []
        return real(name)

    monkeypatch.setattr(second, "_active_revisions", listing)
    arn_one = first.definition_for_image(base_arn, "repo/race:1")
    arn_two = second.definition_for_image(base_arn, "repo/race:1")
    # Then both use the same revision and the duplicate was withdrawn
    assert arn_one == arn_two
    derived = [d for d in _active(fleet, "base-") if d.get("containerProperties", {}).get("image") == "repo/race:1"]
    assert [d["jobDefinitionArn"] for d in derived] == [arn_one]


def test_a_cold_attempt_manager_reuses_the_cached_arn_without_calling_batch(fleet):
    first = _call({"action": "choose_capacity", **_ids("single")})["job_definition_arn"]
    _cache.reset_all()  # a new cold start
    manager = attempt_manager.runtime()
    calls = _batch_calls(manager.batch._batch)
    second = _call({"action": "choose_capacity", **_ids("other")})["job_definition_arn"]
    assert second == first
    assert calls == []


def test_cleanup_deregisters_derived_definitions_and_keeps_the_bases(fleet):
    from stepspot.aws.batch import Batch

    _call({"action": "choose_capacity", **_ids("single")})
    _call({"action": "choose_capacity", **_ids("mpi")})
    removed = Batch(fleet).deregister_derived("base")
    assert len(removed) == 2
    assert sorted(d["jobDefinitionName"] for d in _active(fleet, "base")) == ["base", "base-mnp"]


def test_submissions_are_paced_account_wide_at_the_policy_rate(fleet):
    from collections import Counter

    from stepspot.aws.submit_pacing import SubmitPacer

    dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
    now = [1_800_000_000.0]
    pacer = SubmitPacer(dynamodb, "state", rate_per_second=25, clock=lambda: now[0])
    # A fan-out of 100 released at the same instant, by any number of attempt manager instances
    delays = [pacer.reserve() for _ in range(100)]
    per_second = Counter(delays)
    assert max(per_second.values()) <= 25 and sorted(per_second) == [0, 1, 2, 3]
    # Once the bucket has drained, the next submission goes at once
    now[0] += 60
    assert pacer.reserve() == 0


def test_a_burst_takes_one_write_per_submission_and_two_instances_never_share_a_slot(fleet):
    from stepspot.aws.submit_pacing import SubmitPacer

    dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
    now = [1_800_000_000.0]
    writes: list[str] = []
    dynamodb.meta.client.meta.events.register(
        "before-call.dynamodb.UpdateItem", lambda params, **_: writes.append(params["body"]), unique_id="count"
    )
    first, second = (SubmitPacer(dynamodb, "state", rate_per_second=10, clock=lambda: now[0]) for _ in range(2))
    # Two warm instances alternate through a fan-out of 40 released at once
    delays = [(first if i % 2 else second).reserve() for i in range(40)]
    assert sorted(Counter(delays).values()) == [10, 10, 10, 10]  # 10 per second, the policy rate
    # Each instance guesses "idle" once (its first reservation: one wasted write), then one write each
    assert len(writes) == 40 + 1
    # A minute later the last slot either instance saw has passed: the bucket is idle, one write
    now[0] += 60
    writes.clear()
    assert first.reserve() == 0 and len(writes) == 1
    # The other guesses idle too, but the first has just made the bucket busy: a wasted write, then its slot
    assert second.reserve() == 0 and len(writes) == 3


def test_choose_capacity_returns_the_submission_delay(fleet):
    job = _call({"action": "choose_capacity", **_ids("single")})
    assert job["submit_delay_seconds"] == 0
