"""The container instances AWS Batch would have, in the local emulator, so the interruption handler's
real path runs in local mode.

On AWS a Spot notice names an EC2 instance; the handler finds it as a container instance in the ECS
cluster of a Spot compute environment (Batch DescribeComputeEnvironments, ECS ListContainerInstances and
DescribeContainerInstances), lists the ECS tasks on it (ListTasks, DescribeTasks: the Batch job id in the
task's environment) and maps each job to its task (Batch DescribeJobs: the job's environment). Locally:

- the Spot and On-Demand compute environments exist in moto (unmanaged: their ECS clusters without
  instances of their own), as Terraform creates them;
- a Spot job's emulated host becomes an EC2 instance (its id, and the type and zone the run's cost ledger
  places the attempt on, ``stepspot.cost.local_placement``), registered in the Spot cluster and running one ECS task
  for the job, when its interruption notice is given: the only moment anything asks ECS about it locally
  (three emulator calls for every job would slow large runs for nothing). It stays registered until the
  run ends, as the two minutes of a real notice guarantee the handler finds it however late the local
  EventBridge delivers;
- the handlers' Batch DescribeJobs is answered by the local Batch, which runs the jobs (moto's Batch
  never hears of them).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

from botocore.awsrequest import AWSResponse, HTTPHeaders

from stepspot.cost import SPOT, default_instance_prices, local_placement
from stepspot.local.aws_faults import request_body
from stepspot.local.batch import LocalBatch, LocalJob
from stepspot.local.lambdas import ACCOUNT_ID, REGION
from stepspot.local.resources import PREFIX, LocalResources
from stepspot.plan import Plan

SERVICE_ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/{PREFIX}-batch-service"
TASK_FAMILY = f"{PREFIX}-job"  # the ECS task definition the jobs' tasks run (Batch registers its own)
IMAGE_ID = "ami-12c6146b"  # one of moto's bundled AMIs: an ECS-optimised image stands behind it on AWS
DESCRIBE_JOBS_EVENT = "before-call.batch.DescribeJobs"


class LocalInstances:
    """Compute environments at ``create``, a job's container instance at its notice (``place``)."""

    def __init__(
        self, session: Any, resources: LocalResources, placement: Callable[[LocalJob], tuple[str, str]]
    ) -> None:
        self._session = session
        self._batch = session.client("batch")
        self._iam = session.client("iam")
        self._hosts: tuple[Any, Any] | None = None  # EC2 and ECS clients, made at the first notice
        self._resources = resources
        self._placement = placement  # (instance type, zone) of an attempt
        self._lock = threading.Lock()
        self.clusters: dict[str, str] = {}  # compute environment name -> its ECS cluster ARN
        self.placed: dict[str, str] = {}  # job id -> the container instance ARN of its host

    def create(self) -> None:
        """The compute environments (and the service role Batch needs)."""
        self._iam.create_role(
            RoleName=SERVICE_ROLE.rsplit("/", 1)[-1],
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Principal": {"Service": "batch.amazonaws.com"}, "Action": "sts:AssumeRole"}
                    ],
                }
            ),
        )
        for name in (self._resources.spot_compute_env, self._resources.ondemand_compute_env):
            created = self._batch.create_compute_environment(
                computeEnvironmentName=name, type="UNMANAGED", state="ENABLED", serviceRole=SERVICE_ROLE
            )
            described = self._batch.describe_compute_environments(
                computeEnvironments=[created["computeEnvironmentArn"]]
            )
            self.clusters[name] = described["computeEnvironments"][0]["ecsClusterArn"]

    def _host_clients(self) -> tuple[Any, Any]:
        """EC2 and ECS, with the jobs' task definition: made when a first host is placed (most runs place
        none, and loading the two service models is 0.05 s of a run's start). Called with the lock held."""
        if self._hosts is None:
            ec2, ecs = self._session.client("ec2"), self._session.client("ecs")
            ecs.register_task_definition(
                family=TASK_FAMILY, containerDefinitions=[{"name": "job", "image": "local", "memory": 128}]
            )
            self._hosts = ec2, ecs
        return self._hosts

    def place(self, job: LocalJob) -> None:
        """Give a Spot job's host its EC2 instance (with the host's own id) and container instance,
        running the job's ECS task."""
        with self._lock:
            if job.job_id in self.placed:
                return
            instance_type, zone = self._placement(job)
            ec2, ecs = self._host_clients()
            reservation = ec2.run_instances(
                ImageId=IMAGE_ID,
                MinCount=1,
                MaxCount=1,
                InstanceType=instance_type,
                Placement={"AvailabilityZone": zone},
                InstanceMarketOptions={"MarketType": "spot"},
            )
            _rename_instance(reservation["Instances"][0]["InstanceId"], job.instance_id)
            cluster = self.clusters[self._resources.spot_compute_env]
            registered = ecs.register_container_instance(
                cluster=cluster, instanceIdentityDocument=json.dumps({"instanceId": job.instance_id})
            )["containerInstance"]["containerInstanceArn"]
            # Batch starts the job's task with its id in the container environment and as startedBy.
            ecs.start_task(
                cluster=cluster,
                taskDefinition=TASK_FAMILY,
                containerInstances=[registered],
                startedBy=job.job_id[:36],
                overrides={
                    "containerOverrides": [
                        {"name": "job", "environment": [{"name": "AWS_BATCH_JOB_ID", "value": job.job_id}]}
                    ]
                },
            )
            self.placed[job.job_id] = registered


def _rename_instance(instance_id: str, wanted: str) -> None:
    """moto names an instance at random; the emulated host keeps the id named after its attempt (the same
    seed, the same story). moto's model refers to instances by object, so the id can change afterwards."""
    from moto.ec2.models import ec2_backends

    ec2_backends[ACCOUNT_ID][REGION].get_instance(instance_id).id = wanted


def ledger_placement(plan: Plan, seed: int) -> Callable[[LocalJob], tuple[str, str]]:
    """(instance type, zone) of a Spot job's host, the one the run's cost ledger places the attempt on
    (``local.ledger``: the task's vCPUs and GPUs, the memory the attempt asked, its nodes)."""
    prices = default_instance_prices()

    def placement(job: LocalJob) -> tuple[str, str]:
        task = plan.tasks[job.task_id]
        chosen = local_placement(
            seed,
            job.task_id,
            job.attempt,
            task.vcpus,
            job.memory_mib or task.memory,
            prices,
            REGION,
            gpus=task.gpus,
            capacity=SPOT,
            nodes=max(1, job.num_nodes),
        )
        return chosen.instance_type, chosen.availability_zone

    return placement


@contextlib.contextmanager
def jobs_described_by(batch: LocalBatch, events: Any) -> Iterator[None]:
    """Answer DescribeJobs of the clients made with the event emitter ``events`` (the handlers' session's)
    from the local Batch, for the jobs it runs; other job ids go on to moto."""

    def describe_jobs(params: dict[str, Any], **_: Any) -> Any:
        wanted = [str(job_id) for job_id in request_body(params).get("jobs", [])]
        found = batch.described(wanted)
        if len(found) != len(wanted):
            return None
        parsed = {"jobs": found, "ResponseMetadata": {"HTTPStatusCode": 200, "RetryAttempts": 0}}
        return AWSResponse("https://batch.local/v1/describejobs", 200, HTTPHeaders(), None), parsed

    unique_id = "stepspot-local-describe-jobs"
    events.register(DESCRIBE_JOBS_EVENT, describe_jobs, unique_id=unique_id)
    try:
        yield
    finally:
        events.unregister(DESCRIBE_JOBS_EVENT, unique_id=unique_id)
