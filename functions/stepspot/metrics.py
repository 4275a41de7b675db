"""The custom CloudWatch metrics of stepspot: names, units, dimensions (pure; the one place they are defined).

Lambdas emit them with Powertools Metrics as Embedded Metric Format log lines (no PutMetricData call, so
no ``cloudwatch:*`` permission). Namespace ``Stepspot`` (``POWERTOOLS_METRICS_NAMESPACE``); every metric
carries the ``environment`` dimension. The dashboard template (``templates/dashboard.json.tftpl``) and the
Terraform alarms refer to these names; ``tests/unit/test_dashboard_template.py`` checks that the dashboard
shows every metric listed here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

DEFAULT_NAMESPACE = "Stepspot"

DIMENSION_ENVIRONMENT = "environment"
DIMENSION_INSTANCE_TYPE = "instance_type"
DIMENSION_AVAILABILITY_ZONE = "availability_zone"
DIMENSION_JOB_QUEUE = "job_queue"
UNKNOWN_DIMENSION_VALUE = "unknown"


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


@dataclass(frozen=True)
class MetricSpec:
    name: MetricName
    unit: str  # a CloudWatch unit name, as Powertools' MetricUnit values spell it
    dimension_sets: tuple[tuple[str, ...], ...]
    meaning: str


_ENV = (DIMENSION_ENVIRONMENT,)
_PER_INSTANCE = (DIMENSION_ENVIRONMENT, DIMENSION_INSTANCE_TYPE, DIMENSION_AVAILABILITY_ZONE)
_PER_QUEUE = (DIMENSION_ENVIRONMENT, DIMENSION_JOB_QUEUE)

METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(MetricName.TASKS_SUCCEEDED, "Count", (_ENV, _PER_QUEUE), "Batch jobs of stepspot tasks that succeeded"),
    MetricSpec(
        MetricName.TASKS_FAILED,
        "Count",
        (_ENV, _PER_QUEUE),
        "Batch jobs of stepspot tasks that failed (each failed attempt; the task may still be retried)",
    ),
    MetricSpec(
        MetricName.SPOT_INTERRUPTIONS,
        "Count",
        (_ENV, _PER_INSTANCE),
        "Spot interruption warnings for instances of stepspot's Spot compute environments",
    ),
    MetricSpec(
        MetricName.REBALANCE_RECOMMENDATIONS,
        "Count",
        (_ENV, _PER_INSTANCE),
        "Rebalance recommendations (elevated interruption risk) for those instances",
    ),
    MetricSpec(
        MetricName.CHECKPOINTS_SAVED,
        "Count",
        (_ENV,),
        "Completed checkpoints registered while a job ran, counted when the job stops",
    ),
    MetricSpec(
        MetricName.FALLBACKS_TO_ON_DEMAND,
        "Count",
        (_ENV,),
        "Tasks that ran on the On-Demand queue after an attempt on the Spot queue",
    ),
    MetricSpec(
        MetricName.ESTIMATED_SPOT_SAVINGS_USD,
        "None",
        (_ENV,),
        "On-Demand minus Spot price of the compute a Spot job used (estimate.py price table)",
    ),
    MetricSpec(MetricName.WORKFLOWS_SUCCEEDED, "Count", (_ENV,), "Workflow executions that succeeded"),
    MetricSpec(
        MetricName.WORKFLOWS_FAILED,
        "Count",
        (_ENV,),
        "Workflow executions that failed, timed out or were aborted",
    ),
)


def spec(name: MetricName) -> MetricSpec:
    return next(m for m in METRICS if m.name == name)
