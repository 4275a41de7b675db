"""A small AWS world under moto for the monitoring handlers: tables, a Spot compute environment with its
ECS cluster, container instances running Batch-started tasks, and an SNS topic read through SQS."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from stepspot.cost import LedgerEntry
from stepspot.local.resources import create_table

EVENTS = Path(__file__).resolve().parents[1] / "events"
REGION = "us-east-1"
SPOT_CE = "stepspot-test-spot"
ONDEMAND_CE = "stepspot-test-ondemand"
SPOT_QUEUE_ARN = f"arn:aws:batch:{REGION}:123456789012:job-queue/stepspot-test-spot"
ONDEMAND_QUEUE_ARN = f"arn:aws:batch:{REGION}:123456789012:job-queue/stepspot-test-ondemand"


def load_event(name: str, **overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    event = copy.deepcopy(event)
    detail_overrides = overrides.pop("detail", {})
    event.update(overrides)
    event["detail"].update(detail_overrides)
    return event


def _table(ddb: Any, name: str) -> Any:
    create_table(ddb, name)
    return ddb.Table(name)


@dataclass
class World:
    state: Any
    checkpoints: Any
    ec2: Any
    ecs: Any
    batch: Any
    sqs: Any
    topic_arn: str
    queue_url: str
    subnet_id: str
    cluster_arns: dict[str, str] = field(default_factory=dict)
    _task_definition: str = ""

    # -- compute ------------------------------------------------------------------------------------------

    def add_instance(self, compute_env: str = SPOT_CE, instance_type: str = "c5.2xlarge") -> tuple[str, str]:
        """Launch an EC2 instance and register it in the compute environment's cluster."""
        instance = self.ec2.run_instances(
            ImageId="ami-12c6146b",
            MinCount=1,
            MaxCount=1,
            InstanceType=instance_type,
            SubnetId=self.subnet_id,
        )["Instances"][0]
        document = json.dumps({"instanceId": instance["InstanceId"], "instanceType": instance_type})
        registered = self.ecs.register_container_instance(
            cluster=self.cluster_arns[compute_env], instanceIdentityDocument=document
        )["containerInstance"]
        return instance["InstanceId"], registered["containerInstanceArn"]

    def start_job_task(self, container_instance_arn: str, job_id: str, compute_env: str = SPOT_CE) -> str:
        """Start an ECS task the way Batch does for a job attempt (startedBy and AWS_BATCH_JOB_ID)."""
        if not self._task_definition:
            self._task_definition = self.ecs.register_task_definition(
                family="stepspot-job",
                containerDefinitions=[{"name": "main", "image": "md:latest", "memory": 512}],
            )["taskDefinition"]["taskDefinitionArn"]
        response = self.ecs.start_task(
            cluster=self.cluster_arns[compute_env],
            taskDefinition=self._task_definition,
            containerInstances=[container_instance_arn],
            startedBy=job_id[:36],
            overrides={
                "containerOverrides": [{"name": "main", "environment": [{"name": "AWS_BATCH_JOB_ID", "value": job_id}]}]
            },
        )
        return str(response["tasks"][0]["taskArn"])

    # -- state --------------------------------------------------------------------------------------------

    def add_workflow(self, workflow_id: str, **attributes: Any) -> None:
        self.state.put_item(Item={"pk": f"WF#{workflow_id}", "sk": "META", "status": "RUNNING", **attributes})

    def add_task(self, workflow_id: str, task_id: str, **attributes: Any) -> None:
        item = {"pk": f"WF#{workflow_id}", "sk": f"TASK#{task_id}", "state": "RUNNING", "attempts": 1}
        self.state.put_item(Item={**item, **attributes})

    def index_job(self, job_id: str, workflow_id: str, task_id: str) -> None:
        self.state.put_item(Item={"pk": f"JOB#{job_id}", "sk": "JOB", "workflow_id": workflow_id, "task_id": task_id})

    def task(self, workflow_id: str, task_id: str) -> dict[str, Any]:
        return dict(self.state.get_item(Key={"pk": f"WF#{workflow_id}", "sk": f"TASK#{task_id}"})["Item"])

    def workflow(self, workflow_id: str) -> dict[str, Any] | None:
        return self.state.get_item(Key={"pk": f"WF#{workflow_id}", "sk": "META"}).get("Item")

    def add_checkpoint(self, workflow_id: str, task_id: str, sequence: int, status: str = "COMPLETE") -> None:
        self.checkpoints.put_item(
            Item={"pk": f"{workflow_id}#{task_id}", "sk": f"SEQ#{sequence:012d}", "status": status}
        )

    # -- notices ------------------------------------------------------------------------------------------

    def notices(self) -> list[dict[str, Any]]:
        """SNS notices delivered so far (subject, message, attributes), drained from the SQS subscriber."""
        found = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return found
            for message in batch:
                envelope = json.loads(message["Body"])
                found.append(
                    {
                        "subject": envelope.get("Subject"),
                        "message": envelope["Message"],
                        "attributes": {k: v["Value"] for k, v in envelope.get("MessageAttributes", {}).items()},
                    }
                )
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


def build_world() -> World:
    """Create the resources; call inside an active moto mock."""
    ddb = boto3.resource("dynamodb", region_name=REGION)
    ec2 = boto3.client("ec2", region_name=REGION)
    iam = boto3.client("iam", region_name=REGION)
    batch = boto3.client("batch", region_name=REGION)
    sns = boto3.client("sns", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24", AvailabilityZone=f"{REGION}b")["Subnet"]
    group = ec2.create_security_group(GroupName="batch", Description="batch", VpcId=vpc)["GroupId"]
    role = iam.create_role(RoleName="batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    profile = iam.create_instance_profile(InstanceProfileName="batch")["InstanceProfile"]["Arn"]
    iam.add_role_to_instance_profile(InstanceProfileName="batch", RoleName="batch")
    clusters = {}
    for name, kind in ((SPOT_CE, "SPOT"), (ONDEMAND_CE, "EC2")):
        resources: dict[str, Any] = {
            "type": kind,
            "minvCpus": 0,
            "maxvCpus": 64,
            "desiredvCpus": 0,
            "instanceTypes": ["c5.2xlarge", "m5.2xlarge"],
            "subnets": [subnet["SubnetId"]],
            "securityGroupIds": [group],
            "instanceRole": profile,
        }
        if kind == "SPOT":
            resources["bidPercentage"] = 70
        batch.create_compute_environment(
            computeEnvironmentName=name,
            type="MANAGED",
            state="ENABLED",
            computeResources=resources,
            serviceRole=role,
        )
        described = batch.describe_compute_environments(computeEnvironments=[name])["computeEnvironments"][0]
        clusters[name] = described["ecsClusterArn"]
    topic_arn = sns.create_topic(Name="stepspot-test-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return World(
        state=_table(ddb, "stepspot-test-state"),
        checkpoints=_table(ddb, "stepspot-test-checkpoints"),
        ec2=ec2,
        ecs=boto3.client("ecs", region_name=REGION),
        batch=batch,
        sqs=sqs,
        topic_arn=topic_arn,
        queue_url=queue_url,
        subnet_id=subnet["SubnetId"],
        cluster_arns=clusters,
    )


def emf_metrics(captured_stdout: str) -> list[tuple[str, float, dict[str, str]]]:
    """(metric name, value, dimensions) for every metric in the EMF lines Powertools printed."""
    found = []
    for line in captured_stdout.splitlines():
        line = line.strip()
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            dimension_names = [name for group in directive["Dimensions"] for name in group]
            dimensions = {name: document[name] for name in dimension_names}
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                values = value if isinstance(value, list) else [value]
                for single in values:
                    found.append((metric["Name"], float(single), dimensions))
    return found


def metric_total(found: list[tuple[str, float, dict[str, str]]], name: str, **dimensions: str) -> float:
    wanted = dimensions or None
    return sum(
        value
        for metric, value, dims in found
        if metric == name and (dims == wanted if wanted else set(dims) == {"environment"})
    )


def one_hour_ledger_entry(task_id: str = "a", job_id: str = "job-1", **fields: Any) -> LedgerEntry:
    """A Spot attempt of one hour on a whole c7i.large, not lost (the cost ledger's tests change fields)."""
    values: dict[str, Any] = {
        "task_id": task_id,
        "attempt": 1,
        "job_id": job_id,
        "capacity": "spot",
        "status": "SUCCEEDED",
        "created_at": 0.0,
        "started_at": 1.0,
        "stopped_at": 3601.0,
        "instance_type": "c7i.large",
        "availability_zone": "us-east-1a",
        "runtime_seconds": 3600.0,
        "hourly_usd": 0.04,
        "on_demand_hourly_usd": 0.09,
        "share": 1.0,
        "nodes": 1,
        "cost_usd": 0.04,
        "on_demand_equivalent_usd": 0.09,
        "lost": False,
        "lost_seconds": 0.0,
        "lost_usd": 0.0,
    }
    return LedgerEntry(**{**values, **fields})
