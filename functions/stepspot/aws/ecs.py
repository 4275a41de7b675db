"""ECS adapter: which container instance is an EC2 instance, and which Batch jobs run on it.

AWS Batch runs each job attempt as an ECS task in the compute environment's ECS cluster. Batch puts the
job id in the task's container environment (``AWS_BATCH_JOB_ID``, part of the task overrides that
``DescribeTasks`` returns) and starts the task with ``startedBy`` set to the job id; both are read, the
environment first. Needs ``ecs:ListContainerInstances``, ``ecs:DescribeContainerInstances`` (cluster
resources) and ``ecs:ListTasks``, ``ecs:DescribeTasks`` (container-instance / task resources).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from stepspot.aws.errors import translate_client_error as translate

BATCH_JOB_ID_VARIABLE = "AWS_BATCH_JOB_ID"
_DESCRIBE_TASKS_LIMIT = 100


@dataclass(frozen=True)
class ContainerInstance:
    arn: str
    ec2_instance_id: str
    instance_type: str | None
    availability_zone: str | None


class EcsInventory:
    """Read-only questions about the ECS clusters behind Batch compute environments."""

    def __init__(self, client: Any) -> None:
        self._ecs = client

    def container_instance(self, cluster_arn: str, ec2_instance_id: str) -> ContainerInstance | None:
        """The container instance of ``ec2_instance_id`` in ``cluster_arn``, or None if it is not there."""
        action = f"ecs:ListContainerInstances on {cluster_arn}"
        try:
            # The cluster query language filter keeps this one call on big clusters; the ids are checked
            # again below because the describe call is needed anyway (instance type and zone attributes).
            arns: list[str] = []
            paginator = self._ecs.get_paginator("list_container_instances")
            for page in paginator.paginate(cluster=cluster_arn, filter=f"ec2InstanceId == {ec2_instance_id}"):
                arns.extend(page.get("containerInstanceArns", []))
            if not arns:
                return None
            action = f"ecs:DescribeContainerInstances on {cluster_arn}"
            for start in range(0, len(arns), _DESCRIBE_TASKS_LIMIT):
                described = self._ecs.describe_container_instances(
                    cluster=cluster_arn, containerInstances=arns[start : start + _DESCRIBE_TASKS_LIMIT]
                )
                for item in described.get("containerInstances", []):
                    if item.get("ec2InstanceId") == ec2_instance_id:
                        attributes = {a["name"]: a.get("value") for a in item.get("attributes", [])}
                        return ContainerInstance(
                            arn=item["containerInstanceArn"],
                            ec2_instance_id=ec2_instance_id,
                            instance_type=attributes.get("ecs.instance-type"),
                            availability_zone=attributes.get("ecs.availability-zone"),
                        )
        except ClientError as exc:
            raise translate(exc, f"calling {action}") from exc
        return None

    def batch_job_ids(self, cluster_arn: str, container_instance_arn: str) -> list[str]:
        """Ids of the Batch jobs whose tasks run on the container instance (order kept, no duplicates)."""
        action = f"ecs:ListTasks on {container_instance_arn}"
        try:
            task_arns: list[str] = []
            paginator = self._ecs.get_paginator("list_tasks")
            for page in paginator.paginate(
                cluster=cluster_arn, containerInstance=container_instance_arn, desiredStatus="RUNNING"
            ):
                task_arns.extend(page.get("taskArns", []))
            action = f"ecs:DescribeTasks on {cluster_arn}"
            job_ids: list[str] = []
            for start in range(0, len(task_arns), _DESCRIBE_TASKS_LIMIT):
                described = self._ecs.describe_tasks(
                    cluster=cluster_arn, tasks=task_arns[start : start + _DESCRIBE_TASKS_LIMIT]
                )
                for task in described.get("tasks", []):
                    job_id = batch_job_id_of(task)
                    if job_id and job_id not in job_ids:
                        job_ids.append(job_id)
        except ClientError as exc:
            raise translate(exc, f"calling {action}") from exc
        return job_ids


def _override_environment(task: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for override in task.get("overrides", {}).get("containerOverrides", []):
        for pair in override.get("environment", []):
            yield pair.get("name", ""), pair.get("value", "")


def batch_job_id_of(task: dict[str, Any]) -> str | None:
    """The Batch job id of a described ECS task, or None for a task Batch did not start."""
    for name, value in _override_environment(task):
        if name == BATCH_JOB_ID_VARIABLE and value:
            # Multi-node nodes carry "<job id>#<node>" and array children "<job id>:<index>"; kept whole
            # here, the handler maps them to the parent job (see stepspot.interruptions.parent_job_id).
            return value
    started_by = task.get("startedBy")
    return str(started_by) if started_by else None
