"""Workflow parser Lambda (ParseWorkflow): validate, plan, write the plan to S3 and the task items to
DynamoDB; return a small result. Invalid definitions raise ``WorkflowValidationError`` (ASL Catch).

Metrics (``stepspot.emf``, dimension ``environment`` only): ``WorkflowsRegistered`` and ``TasksPlanned``
for a registration (not for its idempotent retry or a dry run), ``WorkflowsRejected`` for an invalid
definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field, ValidationError

from stepspot.aws.s3 import DocumentStore
from stepspot.aws.state_table import StateTable
from stepspot.emf import MetricBatch
from stepspot.errors import InvalidEventError, WorkflowValidationError
from stepspot.handlers._cache import cold_start
from stepspot.metrics import DEFAULT_NAMESPACE, DIMENSION_ENVIRONMENT, MetricName
from stepspot.policy import Policy, policy_from_env_value
from stepspot.registration import ParseRequest, register_workflow
from stepspot.settings import LambdaSettings, load_settings

logger = Logger()


class ParserSettings(LambdaSettings):
    bucket: str = Field(alias="STEPSPOT_BUCKET", min_length=3)
    state_table: str = Field(alias="STEPSPOT_STATE_TABLE", min_length=3)
    environment: str = Field(alias="STEPSPOT_ENVIRONMENT", min_length=1)
    namespace: str = Field(DEFAULT_NAMESPACE, alias="POWERTOOLS_METRICS_NAMESPACE")
    policy_json: str | None = Field(None, alias="STEPSPOT_POLICY")


@dataclass(frozen=True)
class Runtime:
    """What a warm parser keeps between invocations (built once per cold start)."""

    settings: ParserSettings
    policy: Policy
    documents: DocumentStore
    table: StateTable


@cold_start
def runtime() -> Runtime:
    settings = load_settings(ParserSettings)
    return Runtime(
        settings=settings,
        policy=policy_from_env_value(settings.policy_json),
        documents=DocumentStore(boto3.client("s3"), settings.bucket),
        table=StateTable(boto3.resource("dynamodb"), settings.state_table),
    )


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    rt = runtime()
    # Per invocation, not per container: local mode runs several invocations at once on threads.
    metrics = MetricBatch(rt.settings.namespace, {DIMENSION_ENVIRONMENT: rt.settings.environment})
    try:
        return _parse(event, rt, metrics)
    finally:
        metrics.flush()


def _parse(event: dict[str, Any], rt: Runtime, metrics: MetricBatch) -> dict[str, Any]:
    try:
        request = ParseRequest.model_validate(event)
    except ValidationError as exc:
        raise InvalidEventError.from_validation(exc, "ParseWorkflow input") from None
    logger.append_keys(workflow_id=request.workflow_id)
    try:
        result = register_workflow(request, rt.documents, rt.table, rt.policy)
    except WorkflowValidationError as exc:
        metrics.add(MetricName.WORKFLOWS_REJECTED, 1)
        logger.warning("workflow rejected", extra={"problems": exc.details["problems"][:50]})
        raise
    logger.append_keys(workflow_id=result["workflow_id"])
    if result["registered"]:
        metrics.add(MetricName.WORKFLOWS_REGISTERED, 1)
        metrics.add(MetricName.TASKS_PLANNED, result["task_count"])
    logger.info("workflow parsed", extra={k: result[k] for k in ("task_count", "registered", "plan_uri")})
    return result
