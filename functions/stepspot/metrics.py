"""The custom CloudWatch metrics of stepspot: names, units, dimensions (pure; the one place they are defined).

Lambdas emit them through ``stepspot.emf`` as Embedded Metric Format log lines (no PutMetricData call, so
no ``cloudwatch:*`` permission), with exactly one of the dimension sets listed here and no ``service``
dimension. ``CheckpointsFailed`` and ``CheckpointsEmpty`` are the exceptions: the checkpoint agent runs in
the job container without Powertools, prints a JSON line (``CHECKPOINT_FAILED_EVENT``,
``CHECKPOINT_EMPTY_EVENT``) and a CloudWatch Logs metric filter on the Batch job log group turns it into the
metric (Terraform module ``monitoring``). Namespace ``Stepspot``
(``POWERTOOLS_METRICS_NAMESPACE``); every metric carries the ``environment`` dimension. Each metric has one
emitter (``MetricSpec.emitter``). The dashboard template (``templates/dashboard.json.tftpl``) and the
Terraform alarms refer to these names; ``tests/unit/test_dashboard_template.py`` checks that the dashboard
shows every metric listed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# Defined with the task runner's log lines (which must import on Python 3.9); re-exported here.
from stepspot.log_events import CHECKPOINT_FAILED_EVENT as CHECKPOINT_FAILED_EVENT
from stepspot.log_events import EVENT_FIELD as EVENT_FIELD
from stepspot.log_events import UNKNOWN_DIMENSION_VALUE as UNKNOWN_DIMENSION_VALUE

DEFAULT_NAMESPACE = "Stepspot"

DIMENSION_ENVIRONMENT = "environment"
DIMENSION_INSTANCE_TYPE = "instance_type"
DIMENSION_AVAILABILITY_ZONE = "availability_zone"
DIMENSION_JOB_QUEUE = "job_queue"


class MetricName(StrEnum):
    TASKS_SUCCEEDED = "TasksSucceeded"
    TASKS_FAILED = "TasksFailed"
    SPOT_INTERRUPTIONS = "SpotInterruptions"
    REBALANCE_RECOMMENDATIONS = "RebalanceRecommendations"
    CHECKPOINTS_SAVED = "CheckpointsSaved"
    FALLBACKS_TO_ON_DEMAND = "FallbacksToOnDemand"
    ESTIMATED_SPOT_SAVINGS_USD = "EstimatedSpotSavingsUSD"
    WORKFLOWS_SUCCEEDED = "WorkflowsSucceeded"
    WORKFLOWS_FAILED = "WorkflowsFailed"
    WORKFLOWS_REGISTERED = "WorkflowsRegistered"
    WORKFLOWS_REJECTED = "WorkflowsRejected"
    TASKS_PLANNED = "TasksPlanned"
    CHECKPOINTS_RESTORED = "CheckpointsRestored"
    CHECKPOINTS_CORRUPT = "CheckpointsCorrupt"
    CHECKPOINTS_DELETED = "CheckpointsDeleted"
    CHECKPOINT_BYTES_UPLOADED = "CheckpointBytesUploaded"
    CHECKPOINTS_FAILED = "CheckpointsFailed"
    SPOT_RECLAIM_FAILURES = "SpotReclaimFailures"
    CAPACITY_FAILURES = "CapacityFailures"
    INFRASTRUCTURE_FAILURES = "InfrastructureFailures"
    APPLICATION_FAILURES = "ApplicationFailures"
    MISCONFIGURATION_FAILURES = "MisconfigurationFailures"
    CHECKPOINTS_EMPTY = "CheckpointsEmpty"
    LOST_WORK_SECONDS = "LostWorkSeconds"
    RESTORE_SECONDS = "RestoreSeconds"
    WORKFLOW_COST_USD = "WorkflowCostUSD"
    WORKFLOW_SPOT_SAVINGS_USD = "WorkflowSpotSavingsUSD"
    WORKFLOW_LOST_TO_RECLAIMS_USD = "WorkflowLostToReclaimsUSD"


@dataclass(frozen=True)
class MetricSpec:
    name: MetricName
    unit: str  # a CloudWatch unit name, as Powertools' MetricUnit values spell it
    dimension_sets: tuple[tuple[str, ...], ...]
    meaning: str
    emitter: str  # the one handler module (or the agent's log line) that emits it


_ENV = (DIMENSION_ENVIRONMENT,)
_PER_INSTANCE = (DIMENSION_ENVIRONMENT, DIMENSION_INSTANCE_TYPE, DIMENSION_AVAILABILITY_ZONE)
_PER_QUEUE = (DIMENSION_ENVIRONMENT, DIMENSION_JOB_QUEUE)

METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        MetricName.TASKS_SUCCEEDED,
        "Count",
        (_ENV, _PER_QUEUE),
        "Batch jobs of stepspot tasks that succeeded",
        "workflow_monitor",
    ),
    MetricSpec(
        MetricName.TASKS_FAILED,
        "Count",
        (_ENV, _PER_QUEUE),
        "Batch jobs of stepspot tasks that failed (each failed attempt; the task may still be retried)",
        "workflow_monitor",
    ),
    MetricSpec(
        MetricName.SPOT_INTERRUPTIONS,
        "Count",
        (_ENV, _PER_INSTANCE),
        "Spot interruption warnings for instances of stepspot's Spot compute environments",
        "interruption_handler",
    ),
    MetricSpec(
        MetricName.REBALANCE_RECOMMENDATIONS,
        "Count",
        (_ENV, _PER_INSTANCE),
        "Rebalance recommendations (elevated interruption risk) for those instances",
        "interruption_handler",
    ),
    MetricSpec(
        MetricName.CHECKPOINTS_SAVED,
        "Count",
        (_ENV,),
        "Completed checkpoints registered while a job ran, counted when the job stops",
        "workflow_monitor",
    ),
    MetricSpec(
        MetricName.FALLBACKS_TO_ON_DEMAND,
        "Count",
        (_ENV,),
        "Tasks that ran on the On-Demand queue after an attempt on the Spot queue",
        "workflow_monitor",
    ),
    MetricSpec(
        MetricName.ESTIMATED_SPOT_SAVINGS_USD,
        "None",
        (_ENV,),
        "On-Demand minus Spot price of the compute a Spot job used (estimate.py price table)",
        "workflow_monitor",
    ),
    MetricSpec(
        MetricName.WORKFLOWS_SUCCEEDED, "Count", (_ENV,), "Workflow executions that succeeded", "workflow_monitor"
    ),
    MetricSpec(
        MetricName.WORKFLOWS_FAILED,
        "Count",
        (_ENV,),
        "Workflow executions that failed, timed out or were aborted",
        "workflow_monitor",
    ),
    MetricSpec(
        MetricName.WORKFLOWS_REGISTERED,
        "Count",
        (_ENV,),
        "Workflows the parser planned and registered (a retry of the same registration is not counted)",
        "workflow_parser",
    ),
    MetricSpec(
        MetricName.WORKFLOWS_REJECTED,
        "Count",
        (_ENV,),
        "Workflow definitions the parser refused as invalid",
        "workflow_parser",
    ),
    MetricSpec(
        MetricName.TASKS_PLANNED, "Count", (_ENV,), "Tasks of the workflows the parser registered", "workflow_parser"
    ),
    MetricSpec(
        MetricName.CHECKPOINTS_RESTORED,
        "Count",
        (_ENV,),
        "Restore answers of the checkpoint manager that found a checkpoint to resume from",
        "checkpoint_manager",
    ),
    MetricSpec(
        MetricName.CHECKPOINTS_CORRUPT,
        "Count",
        (_ENV,),
        "Checkpoints the checkpoint manager skipped on restore because their files do not match the manifest",
        "checkpoint_manager",
    ),
    MetricSpec(
        MetricName.CHECKPOINTS_DELETED,
        "Count",
        (_ENV,),
        "Checkpoints and abandoned uploads the checkpoint manager's cleanup deleted",
        "checkpoint_manager",
    ),
    MetricSpec(
        MetricName.CHECKPOINT_BYTES_UPLOADED,
        "Bytes",
        (_ENV,),
        "Bytes the checkpoint manager's agent-free save uploaded (the agent's uploads are in its job log)",
        "checkpoint_manager",
    ),
    MetricSpec(
        MetricName.CHECKPOINTS_FAILED,
        "Count",
        (_ENV,),
        "Checkpoint saves the agent could not complete (log metric filter on the Batch job log group)",
        "agent",
    ),
    MetricSpec(
        MetricName.CHECKPOINTS_EMPTY,
        "Count",
        (_ENV,),
        "Checkpointed tasks whose checkpoint directory stayed empty for two intervals (log metric filter)",
        "agent",
    ),
    MetricSpec(
        MetricName.LOST_WORK_SECONDS,
        "Seconds",
        (_ENV,),
        "Compute lost by a Spot reclaim: from the last complete checkpoint (or the program's start) to the stop",
        "workflow_monitor",
    ),
    MetricSpec(
        MetricName.RESTORE_SECONDS,
        "Seconds",
        (_ENV,),
        "Time an attempt's runner took to restore its checkpoint before the program started",
        "workflow_monitor",
    ),
    # One per failure class of a task attempt (stepspot.failures), counted once per attempt when the
    # attempt manager classifies it; each class also has its own retry budget (stepspot.policy).
    MetricSpec(
        MetricName.SPOT_RECLAIM_FAILURES,
        "Count",
        (_ENV,),
        "Task attempts that failed because their Spot host was reclaimed",
        "attempt_manager",
    ),
    MetricSpec(
        MetricName.CAPACITY_FAILURES,
        "Count",
        (_ENV,),
        "Task attempts cancelled for lack of Spot capacity (jobStateTimeLimitActions)",
        "attempt_manager",
    ),
    MetricSpec(
        MetricName.INFRASTRUCTURE_FAILURES,
        "Count",
        (_ENV,),
        "Task attempts that failed before the program ran (image pull, host start, API throttling)",
        "attempt_manager",
    ),
    MetricSpec(
        MetricName.APPLICATION_FAILURES,
        "Count",
        (_ENV,),
        "Task attempts whose program failed (non-zero exit, out of memory, timeout)",
        "attempt_manager",
    ),
    MetricSpec(
        MetricName.MISCONFIGURATION_FAILURES,
        "Count",
        (_ENV,),
        "Task attempts that can never run as submitted (no instance type holds them, image missing, role denied)",
        "attempt_manager",
    ),
    # The cost ledger's sums (stepspot.cost) of a workflow, once when its execution ends.
    MetricSpec(
        MetricName.WORKFLOW_COST_USD,
        "None",
        (_ENV,),
        "What a finished workflow's attempts cost (cost ledger: instance price x share x run time)",
        "workflow_monitor",
    ),
    MetricSpec(
        MetricName.WORKFLOW_SPOT_SAVINGS_USD,
        "None",
        (_ENV,),
        "A finished workflow's all-On-Demand equivalent minus what it cost (negative: Spot cost more)",
        "workflow_monitor",
    ),
    MetricSpec(
        MetricName.WORKFLOW_LOST_TO_RECLAIMS_USD,
        "None",
        (_ENV,),
        "What a finished workflow spent on work lost to Spot reclaims (after the last checkpoint)",
        "workflow_monitor",
    ),
)


_BY_NAME = {m.name.value: m for m in METRICS}


def spec(name: MetricName | str) -> MetricSpec:
    """The spec of a registered metric; ``KeyError`` for a name that is not listed here."""
    return _BY_NAME[str(name)]
