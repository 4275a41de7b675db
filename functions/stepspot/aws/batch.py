"""AWS Batch adapter: derived job definitions per container image, and the compute environments'
verbs of the fleet manager (enable/scale/disable/describe)."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from botocore.exceptions import ClientError

from stepspot.aws.errors import translate_client_error
from stepspot.errors import AwsResourceNotFoundError

_COPIED_FIELDS = (
    "type",
    "parameters",
    "retryStrategy",
    "propagateTags",
    "timeout",
    "tags",
    "platformCapabilities",
    "schedulingPriority",
)


def queue_name(queue_arn: str) -> str:
    """``arn:aws:batch:...:job-queue/<name>`` -> ``<name>`` (a plain name is returned unchanged)."""
    return queue_arn.rsplit("/", 1)[-1]


def derived_definition_name(base_name: str, image: str) -> str:
    digest = hashlib.sha256(image.encode()).hexdigest()[:10]
    return f"{base_name[: 128 - 11]}-{digest}"


class Batch:
    def __init__(self, batch_client: Any) -> None:
        self._batch = batch_client
        self._derived: dict[tuple[str, str], str] = {}  # per warm Lambda: (base arn, image) -> arn

    # -- job definitions --------------------------------------------------------------------------

    def definition_for_image(self, base_arn: str, image: str) -> str:
        """The ARN of a revision of ``<base>-<hash(image)>`` running ``image``; registered once, reused."""
        cached = self._derived.get((base_arn, image))
        if cached:
            return cached
        base = self._describe_definition(base_arn)
        name = derived_definition_name(str(base["jobDefinitionName"]), image)
        existing = self._active_revisions(name)
        for definition in existing:
            if _image_of(definition) == image:
                arn = str(definition["jobDefinitionArn"])
                self._derived[(base_arn, image)] = arn
                return arn
        request: dict[str, Any] = {"jobDefinitionName": name}
        for field in _COPIED_FIELDS:
            if base.get(field) is not None:
                request[field] = base[field]
        if base.get("containerProperties"):
            request["containerProperties"] = {**base["containerProperties"], "image": image}
        if base.get("nodeProperties"):
            node_props = dict(base["nodeProperties"])
            node_props["nodeRangeProperties"] = [
                {**r, "container": {**r.get("container", {}), "image": image}}
                for r in node_props.get("nodeRangeProperties", [])
            ]
            request["nodeProperties"] = node_props
        try:
            arn = str(self._batch.register_job_definition(**request)["jobDefinitionArn"])
        except ClientError as exc:
            raise translate_client_error(exc, f"registering job definition {name}") from exc
        self._derived[(base_arn, image)] = arn
        return arn

    def _describe_definition(self, arn: str) -> dict[str, Any]:
        try:
            found = self._batch.describe_job_definitions(jobDefinitions=[arn]).get("jobDefinitions", [])
        except ClientError as exc:
            raise translate_client_error(exc, f"describing job definition {arn}") from exc
        if not found:
            raise AwsResourceNotFoundError(
                f"job definition {arn} does not exist: check STEPSPOT_JOB_DEFINITION_ARN / "
                "STEPSPOT_MNP_JOB_DEFINITION_ARN (Terraform output of the compute module)",
                job_definition=arn,
            )
        return dict(found[0])

    def _active_revisions(self, name: str) -> list[dict[str, Any]]:
        try:
            pages = self._batch.get_paginator("describe_job_definitions").paginate(
                jobDefinitionName=name, status="ACTIVE"
            )
            found = [d for page in pages for d in page.get("jobDefinitions", [])]
        except ClientError as exc:
            raise translate_client_error(exc, f"listing job definition {name}") from exc
        return sorted(found, key=lambda d: int(d.get("revision", 0)), reverse=True)

    # -- compute environments ---------------------------------------------------------------------

    def describe_environment(self, name: str) -> dict[str, Any]:
        try:
            found = self._batch.describe_compute_environments(computeEnvironments=[name]).get("computeEnvironments", [])
        except ClientError as exc:
            raise translate_client_error(exc, f"describing compute environment {name}") from exc
        if not found:
            raise AwsResourceNotFoundError(f"compute environment {name} does not exist", compute_environment=name)
        return dict(found[0])

    def update_environment(
        self,
        name: str,
        *,
        enabled: bool | None = None,
        min_vcpus: int | None = None,
        desired_vcpus: int | None = None,
        max_vcpus: int | None = None,
    ) -> None:
        request: dict[str, Any] = {"computeEnvironment": name}
        if enabled is not None:
            request["state"] = "ENABLED" if enabled else "DISABLED"
        resources = {
            key: value
            for key, value in (("minvCpus", min_vcpus), ("desiredvCpus", desired_vcpus), ("maxvCpus", max_vcpus))
            if value is not None
        }
        if resources:
            request["computeResources"] = resources
        try:
            self._batch.update_compute_environment(**request)
        except ClientError as exc:
            raise translate_client_error(exc, f"updating compute environment {name}") from exc

    def jobs_in_queue(self, queue: str, status: str) -> list[dict[str, Any]]:
        try:
            pages = self._batch.get_paginator("list_jobs").paginate(jobQueue=queue, jobStatus=status)
            return [job for page in pages for job in page.get("jobSummaryList", [])]
        except ClientError as exc:
            raise translate_client_error(exc, f"listing {status} jobs of {queue}") from exc


def _image_of(definition: dict[str, Any]) -> str | None:
    if definition.get("containerProperties"):
        return definition["containerProperties"].get("image")
    ranges = (definition.get("nodeProperties") or {}).get("nodeRangeProperties") or []
    return ranges[0].get("container", {}).get("image") if ranges else None


_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def job_name(workflow_id: str, task_id: str, attempt: int) -> str:
    """Batch job names: at most 128 of ``[A-Za-z0-9_-]`` starting with a letter or digit (SubmitJob
    refuses others), unique per attempt, readable. Task ids may start with '-' or '_': prefix "t"."""
    name = _SAFE.sub("-", f"{task_id[:80]}-{workflow_id[:36]}-a{attempt}")
    return (name if name[0].isalnum() and name[0].isascii() else f"t{name}")[:128]
