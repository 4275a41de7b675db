"""The deployed queues' capacity as AWS Batch describes it (moto): DescribeJobQueues, then
DescribeComputeEnvironments, turned into the fit check's queues."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from stepspot.capacity import check_task
from stepspot.capacity_sources import described_capacity

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def batch(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="eu-west-1")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="batch", Description="batch", VpcId=vpc)["GroupId"]
        iam = boto3.client("iam", region_name="eu-west-1")
        role = iam.create_role(RoleName="batch", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        profile = iam.create_instance_profile(InstanceProfileName="ecs")["InstanceProfile"]["Arn"]
        client = boto3.client("batch", region_name="eu-west-1")
        queues = {}
        for name, types, max_vcpus in (("spot", ["c5.large", "c5.xlarge"], 64), ("ondemand", ["m5.xlarge"], 16)):
            environment = client.create_compute_environment(
                computeEnvironmentName=f"stepspot-dev-{name}",
                type="MANAGED",
                state="ENABLED",
                computeResources={
                    "type": "SPOT" if name == "spot" else "EC2",
                    "minvCpus": 0,
                    "maxvCpus": max_vcpus,
                    "instanceTypes": types,
                    "subnets": [subnet],
                    "securityGroupIds": [group],
                    "instanceRole": profile,
                },
                serviceRole=role,
            )["computeEnvironmentArn"]
            queues[name] = client.create_job_queue(
                jobQueueName=f"stepspot-dev-{name}",
                state="ENABLED",
                priority=1,
                computeEnvironmentOrder=[{"order": 1, "computeEnvironment": environment}],
            )["jobQueueArn"]
        yield client, queues


def test_the_queues_get_the_instance_types_and_vcpu_ceilings_of_their_compute_environments(batch):
    client, queues = batch
    capacity = described_capacity(
        "dev", client, {"spot": queues["spot"], "on-demand": queues["ondemand"]}, environ={}, cwd=REPO
    )
    assert capacity.instance_types_by_queue()["spot"] == ["c5.large", "c5.xlarge"]
    assert capacity.queues["on-demand"].max_vcpus == 16
    message = check_task("md", vcpus=8, memory=2048, gpus=0, nodes=1, queue="auto", use_spot=True, capacity=capacity)
    assert message is not None
    assert "queue 'spot' in environment 'dev'" in message
    assert "the compute environments of 'dev' (AWS Batch)" in message


def test_queues_that_do_not_exist_leave_the_terraform_variables_in_charge(batch):
    client, _ = batch
    missing = "arn:aws:batch:eu-west-1:123456789012:job-queue/nothing"
    capacity = described_capacity("dev", client, {"spot": missing}, environ={}, cwd=REPO)
    assert capacity.source == "terraform/environments/dev.tfvars"
