"""What a deployed environment's job queues can run: DescribeJobQueues, then DescribeComputeEnvironments.

The CLI's fit check (``stepspot.capacity_sources.described_capacity``) uses it when the Terraform outputs
do not list the instance types (a deployment older than those outputs). Read-only:
``batch:DescribeJobQueues`` and ``batch:DescribeComputeEnvironments`` (resource ``*``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class QueueResources:
    instance_types: list[str]  # as the compute environments list them (types or families)
    max_vcpus: int


def describe_queues(batch_client: Any, queue_arns: dict[str, str]) -> dict[str, QueueResources]:
    """{key: resources} for each queue that exists (keys are the caller's, e.g. ``spot``)."""
    if not queue_arns:
        return {}
    queues = batch_client.describe_job_queues(jobQueues=list(queue_arns.values())).get("jobQueues", [])
    by_arn = {q.get("jobQueueArn"): q for q in queues} | {q.get("jobQueueName"): q for q in queues}
    environments_of: dict[str, list[str]] = {}
    for key, arn in queue_arns.items():
        queue = by_arn.get(arn) or by_arn.get(arn.rsplit("/", 1)[-1])
        if queue is not None:
            environments_of[key] = [o["computeEnvironment"] for o in queue.get("computeEnvironmentOrder", [])]
    wanted = sorted({name for names in environments_of.values() for name in names})
    described: dict[str, dict[str, Any]] = {}
    if wanted:
        for environment in batch_client.describe_compute_environments(computeEnvironments=wanted).get(
            "computeEnvironments", []
        ):
            described[environment.get("computeEnvironmentArn")] = environment
            described[environment.get("computeEnvironmentName")] = environment
    result: dict[str, QueueResources] = {}
    for key, names in environments_of.items():
        types: list[str] = []
        max_vcpus = 0
        for name in names:
            resources = (described.get(name) or {}).get("computeResources") or {}
            types.extend(t for t in resources.get("instanceTypes", []) if t not in types)
            max_vcpus += int(resources.get("maxvCpus", 0))
        if types:
            result[key] = QueueResources(types, max_vcpus)
    return result
