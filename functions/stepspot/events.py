"""Typed models of the EventBridge events the monitoring Lambdas receive (pure: no AWS calls).

The shapes follow the samples AWS documents (copies in ``tests/events/``):

- ``EC2 Spot Instance Interruption Warning`` (source ``aws.ec2``): ``detail.instance-id``,
  ``detail.instance-action`` (``terminate`` | ``stop`` | ``hibernate``), about two minutes ahead.
- ``EC2 Instance Rebalance Recommendation`` (source ``aws.ec2``): ``detail.instance-id``; an earlier,
  weaker signal that the instance is at elevated risk.
- ``Batch Job State Change`` (source ``aws.batch``): ``detail`` resembles the ``JobDetail`` of
  ``DescribeJobs`` (``jobId``, ``jobQueue``, ``status``, ``attempts``, ``container`` or ``ecsProperties``
  or ``nodeProperties``, epoch-millisecond timestamps). No event exists for the initial submission.
- ``Step Functions Execution Status Change`` (source ``aws.states``): ``detail.executionArn``,
  ``stateMachineArn``, ``name``, ``status``, ``startDate``/``stopDate`` (epoch ms), ``input``/``output``
  (JSON strings, may be left out when large), ``error``/``cause`` on failures.

AWS warns that services add fields over time, so unknown fields are ignored (``extra="ignore"``) while the
fields stepspot reads are validated. ``parse_*`` functions raise ``MalformedEventError`` with one sentence
that names the problem.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from stepspot.errors import MalformedEventError

SPOT_INTERRUPTION_WARNING = "EC2 Spot Instance Interruption Warning"
REBALANCE_RECOMMENDATION = "EC2 Instance Rebalance Recommendation"
BATCH_JOB_STATE_CHANGE = "Batch Job State Change"
SFN_EXECUTION_STATUS_CHANGE = "Step Functions Execution Status Change"

INSTANCE_ID_PATTERN = r"^i-[0-9a-f]{8,17}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class _Envelope(_Model):
    """The fields EventBridge puts around every event."""

    version: str = "0"
    id: str = Field(min_length=1)
    account: str
    time: datetime
    region: str
    resources: list[str] = Field(default_factory=list)


# ---------------------------------------------------------------------------------------------------
# EC2 notices
# ---------------------------------------------------------------------------------------------------


class SpotInterruptionDetail(_Model):
    instance_id: str = Field(alias="instance-id", pattern=INSTANCE_ID_PATTERN)
    instance_action: Literal["terminate", "stop", "hibernate"] = Field(alias="instance-action")


class RebalanceRecommendationDetail(_Model):
    instance_id: str = Field(alias="instance-id", pattern=INSTANCE_ID_PATTERN)


class SpotInterruptionWarning(_Envelope):
    detail_type: Literal["EC2 Spot Instance Interruption Warning"] = Field(alias="detail-type")
    source: Literal["aws.ec2"]
    detail: SpotInterruptionDetail

    @property
    def instance_id(self) -> str:
        return self.detail.instance_id

    @property
    def notice_kind(self) -> str:
        return "spot_interruption_warning"


class RebalanceRecommendation(_Envelope):
    detail_type: Literal["EC2 Instance Rebalance Recommendation"] = Field(alias="detail-type")
    source: Literal["aws.ec2"]
    detail: RebalanceRecommendationDetail

    @property
    def instance_id(self) -> str:
        return self.detail.instance_id

    @property
    def notice_kind(self) -> str:
        return "rebalance_recommendation"


InstanceNotice = Annotated[SpotInterruptionWarning | RebalanceRecommendation, Field(discriminator="detail_type")]

# ---------------------------------------------------------------------------------------------------
# AWS Batch
# ---------------------------------------------------------------------------------------------------

BatchJobStatus = Literal["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED"]


class KeyValue(_Model):
    name: str
    value: str = ""


class ResourceRequirement(_Model):
    type: str
    value: str


class BatchContainer(_Model):
    """``ContainerDetail`` (single-node jobs) or one container of ``ecsProperties.taskProperties``."""

    vcpus: int | None = None
    memory: int | None = None
    resource_requirements: list[ResourceRequirement] = Field(default_factory=list, alias="resourceRequirements")
    environment: list[KeyValue] = Field(default_factory=list)
    exit_code: int | None = Field(default=None, alias="exitCode")
    reason: str | None = None
    container_instance_arn: str | None = Field(default=None, alias="containerInstanceArn")
    task_arn: str | None = Field(default=None, alias="taskArn")


class BatchAttemptContainer(_Model):
    container_instance_arn: str | None = Field(default=None, alias="containerInstanceArn")
    task_arn: str | None = Field(default=None, alias="taskArn")
    exit_code: int | None = Field(default=None, alias="exitCode")
    reason: str | None = None


class BatchAttemptTask(_Model):
    """One ECS task of an attempt (newer events put it under ``attempts[].taskProperties``)."""

    container_instance_arn: str | None = Field(default=None, alias="containerInstanceArn")
    task_arn: str | None = Field(default=None, alias="taskArn")


class BatchAttempt(_Model):
    container: BatchAttemptContainer | None = None
    task_properties: list[BatchAttemptTask] = Field(default_factory=list, alias="taskProperties")
    started_at: int | None = Field(default=None, alias="startedAt")
    stopped_at: int | None = Field(default=None, alias="stoppedAt")
    status_reason: str | None = Field(default=None, alias="statusReason")


class BatchTaskProperties(_Model):
    containers: list[BatchContainer] = Field(default_factory=list)


class BatchEcsProperties(_Model):
    task_properties: list[BatchTaskProperties] = Field(default_factory=list, alias="taskProperties")


class BatchNodeRange(_Model):
    target_nodes: str = Field(default="", alias="targetNodes")
    container: BatchContainer | None = None


class BatchNodeProperties(_Model):
    num_nodes: int = Field(default=1, alias="numNodes")
    node_range_properties: list[BatchNodeRange] = Field(default_factory=list, alias="nodeRangeProperties")


class BatchJobDetail(_Model):
    job_arn: str | None = Field(default=None, alias="jobArn")
    job_name: str = Field(alias="jobName")
    job_id: str = Field(alias="jobId", min_length=1)
    job_queue: str = Field(alias="jobQueue")
    status: BatchJobStatus
    status_reason: str | None = Field(default=None, alias="statusReason")
    attempts: list[BatchAttempt] = Field(default_factory=list)
    created_at: int = Field(alias="createdAt")
    started_at: int | None = Field(default=None, alias="startedAt")
    stopped_at: int | None = Field(default=None, alias="stoppedAt")
    job_definition: str = Field(default="", alias="jobDefinition")
    container: BatchContainer | None = None
    ecs_properties: BatchEcsProperties | None = Field(default=None, alias="ecsProperties")
    node_properties: BatchNodeProperties | None = Field(default=None, alias="nodeProperties")

    def containers(self) -> list[BatchContainer]:
        """Every container description the event carries, whichever job flavour it is."""
        found: list[BatchContainer] = []
        if self.container is not None:
            found.append(self.container)
        if self.ecs_properties is not None:
            for task in self.ecs_properties.task_properties:
                found.extend(task.containers)
        if self.node_properties is not None:
            found.extend(r.container for r in self.node_properties.node_range_properties if r.container)
        return found

    def environment(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for container in self.containers():
            for pair in container.environment:
                env.setdefault(pair.name, pair.value)
        return env

    @property
    def node_count(self) -> int:
        return self.node_properties.num_nodes if self.node_properties is not None else 1


class BatchJobStateChange(_Envelope):
    detail_type: Literal["Batch Job State Change"] = Field(alias="detail-type")
    source: Literal["aws.batch"]
    detail: BatchJobDetail


# ---------------------------------------------------------------------------------------------------
# AWS Step Functions
# ---------------------------------------------------------------------------------------------------

ExecutionStatus = Literal["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED", "PENDING_REDRIVE"]
TERMINAL_EXECUTION_STATUSES = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})


class ExecutionStatusDetail(_Model):
    execution_arn: str = Field(alias="executionArn", pattern=r"^arn:aws[a-z-]*:states:")
    state_machine_arn: str = Field(alias="stateMachineArn")
    name: str
    status: ExecutionStatus
    start_date: int = Field(alias="startDate")
    stop_date: int | None = Field(default=None, alias="stopDate")
    input: str | None = None
    output: str | None = None
    error: str | None = None
    cause: str | None = None
    redrive_count: int = Field(default=0, alias="redriveCount")

    def input_object(self) -> dict[str, Any]:
        """The execution input as a dict ({} when it was left out of the event or is not an object)."""
        if not self.input:
            return {}
        try:
            parsed = json.loads(self.input)
        except json.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, dict) else {}


class ExecutionStatusChange(_Envelope):
    detail_type: Literal["Step Functions Execution Status Change"] = Field(alias="detail-type")
    source: Literal["aws.states"]
    detail: ExecutionStatusDetail


MonitorEvent = Annotated[BatchJobStateChange | ExecutionStatusChange, Field(discriminator="detail_type")]

_INSTANCE_NOTICE = TypeAdapter(InstanceNotice)
_MONITOR_EVENT = TypeAdapter(MonitorEvent)


def _describe(raw: Any) -> str:
    if isinstance(raw, dict):
        return f"event id={raw.get('id')!r} detail-type={raw.get('detail-type')!r} source={raw.get('source')!r}"
    return "an event"


def _problems(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        location = ".".join(str(p) for p in error["loc"]) or "(event)"
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)


def _parse(raw: Any, adapter: TypeAdapter[Any], accepted: dict[str, str], handler: str) -> Any:
    expected = " or ".join(f"'{kind}' event from {source}" for kind, source in accepted.items())
    if not isinstance(raw, dict):
        problem = f"got a {type(raw).__name__} instead of a JSON object"
    elif raw.get("detail-type") not in accepted:
        problem = f"detail-type {raw.get('detail-type')!r} is not one this handler takes"
    else:
        try:
            return adapter.validate_python(raw)
        except ValidationError as exc:
            problem = _problems(exc)
    raise MalformedEventError(
        f"Rejected {_describe(raw)}: expected an EventBridge {expected} ({problem}). "
        f"Check the EventBridge rule that targets the {handler}.",
        event_id=raw.get("id") if isinstance(raw, dict) else None,
    )


def parse_instance_notice(raw: Any) -> SpotInterruptionWarning | RebalanceRecommendation:
    """Validate an EC2 notice event; raise ``MalformedEventError`` naming what is wrong."""
    accepted = {SPOT_INTERRUPTION_WARNING: "aws.ec2", REBALANCE_RECOMMENDATION: "aws.ec2"}
    parsed: SpotInterruptionWarning | RebalanceRecommendation = _parse(
        raw, _INSTANCE_NOTICE, accepted, "interruption handler"
    )
    return parsed


def parse_monitor_event(raw: Any) -> BatchJobStateChange | ExecutionStatusChange:
    """Validate a Batch or Step Functions status event; raise ``MalformedEventError`` naming what is wrong."""
    accepted = {BATCH_JOB_STATE_CHANGE: "aws.batch", SFN_EXECUTION_STATUS_CHANGE: "aws.states"}
    parsed: BatchJobStateChange | ExecutionStatusChange = _parse(raw, _MONITOR_EVENT, accepted, "workflow monitor")
    return parsed
