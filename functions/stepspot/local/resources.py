"""The AWS resources of local mode, created in the moto server as Terraform creates them on AWS."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from stepspot.local.lambdas import ACCOUNT_ID, FUNCTIONS, REGION, function_arn

PREFIX = "stepspot-local"


@dataclass(frozen=True)
class LocalResources:
    bucket: str = f"{PREFIX}-bucket"
    state_table: str = f"{PREFIX}-state"
    checkpoint_table: str = f"{PREFIX}-checkpoints"
    spot_queue: str = f"{PREFIX}-spot"
    ondemand_queue: str = f"{PREFIX}-ondemand"
    gpu_spot_queue: str = f"{PREFIX}-gpu-spot"  # used when the emulated environment has GPU queues
    gpu_ondemand_queue: str = f"{PREFIX}-gpu-ondemand"
    spot_compute_env: str = f"{PREFIX}-spot"
    ondemand_compute_env: str = f"{PREFIX}-ondemand"
    role_arn: str = f"arn:aws:iam::{ACCOUNT_ID}:role/{PREFIX}-states"
    # The jobs' role, named in the base job definitions as Terraform's are (compute module): a derived
    # definition copies it, and registering one passes it (iam:PassRole, evaluated in the tests).
    job_role_arn: str = f"arn:aws:iam::{ACCOUNT_ID}:role/{PREFIX}-batch-job"

    @property
    def function_arns(self) -> dict[str, str]:
        return {key: function_arn(key, PREFIX) for key in FUNCTIONS}

    def queue_arn(self, name: str) -> str:
        return f"arn:aws:batch:{REGION}:{ACCOUNT_ID}:job-queue/{name}"

    def state_machine_arn(self, name: str) -> str:
        return f"arn:aws:states:{REGION}:{ACCOUNT_ID}:stateMachine:{PREFIX}-{name}"


def create_table(dynamodb: Any, name: str) -> None:
    """A table with the key schema of Terraform's state and checkpoint tables (a boto3 client or resource)."""
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )


def create(session: Any, resources: LocalResources, definitions: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Bucket, tables, base job definitions, state machines. Returns the job definition ARNs."""
    s3 = session.client("s3")
    s3.create_bucket(Bucket=resources.bucket)
    dynamodb = session.client("dynamodb")
    create_table(dynamodb, resources.state_table)
    create_table(dynamodb, resources.checkpoint_table)
    batch = session.client("batch")
    container = {
        "image": "public.ecr.aws/docker/library/python:3.12-slim",
        "command": ["stepspot-agent", "run", "--", "true"],
        "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "2048"}],
        "jobRoleArn": resources.job_role_arn,
    }
    single = batch.register_job_definition(
        jobDefinitionName=f"{PREFIX}-job",
        type="container",
        containerProperties=container,
        retryStrategy={"attempts": 1, "evaluateOnExit": [{"onReason": "*", "action": "EXIT"}]},
    )["jobDefinitionArn"]
    multi = batch.register_job_definition(
        jobDefinitionName=f"{PREFIX}-mnp-job",
        type="multinode",
        nodeProperties={
            "numNodes": 2,
            "mainNode": 0,
            "nodeRangeProperties": [{"targetNodes": "0:", "container": container}],
        },
        retryStrategy={"attempts": 1, "evaluateOnExit": [{"onReason": "*", "action": "EXIT"}]},
    )["jobDefinitionArn"]
    sfn = session.client("stepfunctions")
    for name, definition in definitions.items():
        sfn.create_state_machine(
            name=f"{PREFIX}-{name}", definition=definition_text(definition), roleArn=resources.role_arn, type="STANDARD"
        )
    return {"job": single, "mnp": multi}


def definition_text(definition: dict[str, Any]) -> str:
    """A state machine definition as the run registers it (what the interpreter parses, character for
    character: ``moto_patches.parse_ahead_of`` parses the same texts ahead)."""
    return json.dumps(definition)
