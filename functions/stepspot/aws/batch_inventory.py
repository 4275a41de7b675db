"""Read-only AWS Batch lookups for the event handlers: compute environment -> ECS cluster, job -> environment.

Kept apart from the attempt manager's Batch adapter (which changes compute environments and registers job
definitions) so the event handlers' roles need only ``batch:DescribeComputeEnvironments`` and
``batch:DescribeJobs`` (both resource ``*``: Batch does not support resource-level permissions for them).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from stepspot.aws.errors import translate_client_error as translate

_DESCRIBE_JOBS_LIMIT = 100


class BatchInventory:
    def __init__(self, client: Any) -> None:
        self._batch = client

    def ecs_cluster_arns(self, compute_environments: Iterable[str]) -> dict[str, str]:
        """Map each named (or ARN) compute environment that exists to its ECS cluster ARN."""
        names = list(compute_environments)
        if not names:
            return {}
        action = "batch:DescribeComputeEnvironments"
        found: dict[str, str] = {}
        try:
            paginator = self._batch.get_paginator("describe_compute_environments")
            for page in paginator.paginate(computeEnvironments=names):
                for env in page.get("computeEnvironments", []):
                    cluster = env.get("ecsClusterArn")
                    if not cluster:
                        continue
                    for key in (env.get("computeEnvironmentName"), env.get("computeEnvironmentArn")):
                        if key in names:
                            found[key] = cluster
        except ClientError as exc:
            raise translate(exc, f"calling {action}") from exc
        return found

    def job_environments(self, job_ids: Iterable[str]) -> dict[str, dict[str, str]]:
        """The container environment of each job that Batch still knows (jobs age out after about 7 days)."""
        ids = list(dict.fromkeys(job_ids))
        result: dict[str, dict[str, str]] = {}
        try:
            for start in range(0, len(ids), _DESCRIBE_JOBS_LIMIT):
                response = self._batch.describe_jobs(jobs=ids[start : start + _DESCRIBE_JOBS_LIMIT])
                for job in response.get("jobs", []):
                    result[job["jobId"]] = _environment_of(job)
        except ClientError as exc:
            raise translate(exc, "calling batch:DescribeJobs") from exc
        return result


def _environment_of(job: dict[str, Any]) -> dict[str, str]:
    containers: list[dict[str, Any]] = []
    if job.get("container"):
        containers.append(job["container"])
    for task in job.get("ecsProperties", {}).get("taskProperties", []):
        containers.extend(task.get("containers", []))
    for node_range in job.get("nodeProperties", {}).get("nodeRangeProperties", []):
        if node_range.get("container"):
            containers.append(node_range["container"])
    env: dict[str, str] = {}
    for container in containers:
        for pair in container.get("environment", []):
            env.setdefault(pair.get("name", ""), pair.get("value", ""))
    return env
