"""AWS Batch adapter: derived job definitions per container image, and the compute environments'
verbs of the attempt manager (enable/scale/disable/describe).

Container overrides cannot change the image, so each image runs under a "derived" job definition: the
Terraform-managed base definition with the image replaced, named by a hash of that whole content. It is
looked up by name (ACTIVE) before registering, registered at most once per content (concurrent cold
starts converge on the lowest revision), cached per warm Lambda and in the state table across cold
starts, and deregistered by `stepspot cleanup-job-definitions` (run by `make destroy`)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from typing import Any, Protocol

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


# Tag of every derived job definition: the base definition's name. `stepspot cleanup-job-definitions`
# (run by `make destroy`) deregisters the definitions carrying it, which Terraform does not know.
DERIVED_FROM_TAG = "stepspot:derived-from"
_REVISION_ARN = re.compile(r":job-definition/[^:]+:\d+$")


def derived_request(base: dict[str, Any], image: str) -> dict[str, Any]:
    """The RegisterJobDefinition request of ``base`` running ``image`` (its name set by the caller)."""
    request: dict[str, Any] = {}
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
    request["tags"] = {**(base.get("tags") or {}), DERIVED_FROM_TAG: str(base["jobDefinitionName"])}
    return request


def derived_definition_name(base_name: str, request: dict[str, Any]) -> str:
    """``<base>-<hash of the whole derived content>``: a Terraform change to the base (retry strategy,
    environment, log configuration, role, ...) gives a new name, so it reaches every image."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return f"{base_name[: 128 - 17]}-{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"


class DerivedDefinitionCache(Protocol):
    def get(self, base_arn: str, image: str) -> str | None: ...
    def put(self, base_arn: str, image: str, arn: str) -> None: ...


class Batch:
    def __init__(self, batch_client: Any, cache: DerivedDefinitionCache | None = None) -> None:
        self._batch = batch_client
        self._cache = cache  # across cold starts (DynamoDB): no Batch call at all once known
        self._derived: dict[tuple[str, str], str] = {}  # per warm Lambda: (base arn, image) -> arn

    # -- job definitions --------------------------------------------------------------------------

    def definition_for_image(self, base_arn: str, image: str) -> str:
        """The ARN of the derived job definition of ``base_arn`` running ``image``: registered once
        (concurrent cold starts settle on the lowest revision and withdraw their own), then cached."""
        key = (base_arn, image)
        cached = self._derived.get(key)
        if cached:
            return cached
        # Only an ARN with a revision names immutable content: a cached answer for it never goes stale.
        durable = self._cache is not None and bool(_REVISION_ARN.search(base_arn))
        if durable and self._cache is not None and (stored := self._cache.get(base_arn, image)):
            self._derived[key] = stored
            return stored
        base = self._describe_definition(base_arn)
        request = derived_request(base, image)
        name = derived_definition_name(str(base["jobDefinitionName"]), request)
        existing = self._active_revisions(name)
        registered = None
        if not existing:
            try:
                response = self._batch.register_job_definition(jobDefinitionName=name, **request)
            except ClientError as exc:
                raise translate_client_error(exc, f"registering job definition {name}") from exc
            registered = str(response["jobDefinitionArn"])
            existing = self._active_revisions(name) or [{"jobDefinitionArn": registered, "revision": 0}]
        arn = str(existing[0]["jobDefinitionArn"])  # the lowest revision: every cold start picks the same
        if registered is not None and registered != arn:
            self._withdraw(registered)  # a concurrent cold start registered the same content first
        if durable and self._cache is not None:
            self._cache.put(base_arn, image, arn)
        self._derived[key] = arn
        return arn

    def _withdraw(self, arn: str) -> None:
        # A duplicate revision is harmless if this fails: cleanup-job-definitions removes it at destroy.
        with contextlib.suppress(ClientError):
            self._batch.deregister_job_definition(jobDefinition=arn)

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
        return sorted(found, key=lambda d: int(d.get("revision", 0)))

    def deregister_derived(self, base_name_prefix: str) -> list[str]:
        """Deregister every ACTIVE derived definition whose base name starts with ``base_name_prefix``
        (``stepspot-<env>-``); returns their ARNs. Terraform never created them, so it cannot."""
        removed: list[str] = []
        try:
            pages = self._batch.get_paginator("describe_job_definitions").paginate(status="ACTIVE")
            for page in pages:
                for definition in page.get("jobDefinitions", []):
                    base = str((definition.get("tags") or {}).get(DERIVED_FROM_TAG, ""))
                    if base.startswith(base_name_prefix):
                        self._batch.deregister_job_definition(jobDefinition=definition["jobDefinitionArn"])
                        removed.append(str(definition["jobDefinitionArn"]))
        except ClientError as exc:
            raise translate_client_error(exc, "deregistering derived job definitions") from exc
        return removed

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


_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def job_name(workflow_id: str, task_id: str, attempt: int) -> str:
    """Batch job names: at most 128 of ``[A-Za-z0-9_-]`` starting with a letter or digit (SubmitJob
    refuses others), unique per attempt, readable. Task ids may start with '-' or '_': prefix "t"."""
    name = _SAFE.sub("-", f"{task_id[:80]}-{workflow_id[:36]}-a{attempt}")
    return (name if name[0].isalnum() and name[0].isascii() else f"t{name}")[:128]
