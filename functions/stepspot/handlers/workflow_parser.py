"""Workflow parser Lambda (ParseWorkflow): validate, plan, write the plan to S3 and the task items to
DynamoDB; return a small result. Invalid definitions raise ``WorkflowValidationError`` (ASL Catch).

Metrics (``stepspot.emf``, dimension ``environment`` only): ``WorkflowsRegistered`` and ``TasksPlanned``
for a registration (not for its idempotent retry or a dry run), ``WorkflowsRejected`` for an invalid
definition.
"""

from __future__ import annotations

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
from stepspot.policy import policy_from_env_value
from stepspot.registration import ParseRequest, register_workflow
from stepspot.settings import LambdaSettings, load_settings

logger = Logger()


class ParserSettings(LambdaSettings):
    bucket: str = Field(alias="STEPSPOT_BUCKET", min_length=3)
    state_table: str = Field(alias="STEPSPOT_STATE_TABLE", min_length=3)
    environment: str = Field(alias="STEPSPOT_ENVIRONMENT", min_length=1)
    namespace: str = Field(DEFAULT_NAMESPACE, alias="POWERTOOLS_METRICS_NAMESPACE")
    policy_json: str | None = Field(None, alias="STEPSPOT_POLICY")


@cold_start
def _adapters() -> tuple[DocumentStore, StateTable, ParserSettings]:
    """Built once per cold start; a missing variable raises ConfigurationError on the first call."""
    settings = load_settings(ParserSettings)
    documents = DocumentStore(boto3.client("s3"), settings.bucket)
    return documents, StateTable(boto3.resource("dynamodb"), settings.state_table), settings


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    documents, table, settings = _adapters()
    metrics = MetricBatch(settings.namespace, {DIMENSION_ENVIRONMENT: settings.environment})
    try:
        return _parse(event, documents, table, metrics, settings)
    finally:
        metrics.flush()


def _parse(
    event: dict[str, Any], documents: DocumentStore, table: StateTable, metrics: MetricBatch, settings: ParserSettings
) -> dict[str, Any]:
    try:
        request = ParseRequest.model_validate(event)
    except ValidationError as exc:
        raise InvalidEventError.from_validation(exc, "ParseWorkflow input") from None
    logger.append_keys(workflow_id=request.workflow_id)
    try:
        result = register_workflow(request, documents, table, policy_from_env_value(settings.policy_json))
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
