"""Parse, plan and register a submitted workflow: the logic behind the workflow parser Lambda.

I/O goes through the injected adapters (``DocumentStore``, ``StateTable``) so this runs the same under
moto, with fakes, and on AWS. Idempotent: the same request twice registers once and returns the same
result; a different definition under an existing workflow id is refused before anything is written.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from stepspot.aws.plan_objects import write_plan
from stepspot.aws.s3 import DocumentStore, definition_key, plan_key
from stepspot.aws.state_table import StateTable
from stepspot.plan import build_plan, default_workflow_id, initial_task_states
from stepspot.plan_store import encode_plan
from stepspot.policy import DEFAULT_POLICY, Policy
from stepspot.scheduler import TaskState, WorkflowStatus
from stepspot.state_items import Workflow as W
from stepspot.workflow import ID_PATTERN, parse_workflow
from stepspot.workflow_limits import workflow_limits

MAX_WARNINGS_RETURNED = 5  # the result must not grow with the workflow


class ParseRequest(BaseModel):
    """Input of ParseWorkflow. Exactly one of ``workflow_definition`` / ``definition_uri``.

    ``workflow_definition`` inline is limited by the 256 KB Step Functions input; large workflows are
    uploaded first and passed as ``definition_uri``. A resubmission (``stepspot resume --resubmit``) keeps
    the workflow id, raises ``resubmission`` and lists in ``skip_tasks`` the tasks finished in an earlier
    run; the others are reset. ``dry_run`` validates and plans without writing anything (the seed's flag).
    """

    model_config = ConfigDict(extra="ignore")  # Step Functions may pass extra context fields

    workflow_definition: dict[str, Any] | str | None = None
    definition_uri: str | None = Field(None, pattern=r"^s3://")
    workflow_id: str | None = Field(None, pattern=ID_PATTERN)
    skip_tasks: list[str] = Field(default_factory=list)
    resubmission: int = Field(0, ge=0)
    dry_run: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> ParseRequest:
        if (self.workflow_definition is None) == (self.definition_uri is None):
            raise ValueError('give exactly one of "workflow_definition" (inline) or "definition_uri" (s3://...)')
        return self


def register_workflow(
    request: ParseRequest, documents: DocumentStore, table: StateTable, policy: Policy = DEFAULT_POLICY
) -> dict[str, Any]:
    if request.definition_uri is not None:
        raw: Any = documents.read(request.definition_uri)
        source = request.definition_uri
    else:
        raw, source = request.workflow_definition, "workflow_definition"
    loaded = parse_workflow(raw, source=source)  # raises WorkflowValidationError with every problem
    canonical = json.dumps(
        loaded.workflow.model_dump(mode="json", exclude_unset=True), sort_keys=True, separators=(",", ":")
    ).encode()
    workflow_id = request.workflow_id or default_workflow_id(loaded.workflow, canonical)
    plan = build_plan(loaded.workflow, workflow_id, loaded.warnings, graph=loaded.graph)
    states = initial_task_states(plan, request.skip_tasks)  # raises for unknown / inconsistent skips
    result: dict[str, Any] = {
        **plan.summary(),
        "skipped_count": sum(1 for s in states if s.state == TaskState.SUCCEEDED),
        "warnings": [f"{w['location']}: {w['message']}" for w in plan.warnings[:MAX_WARNINGS_RETURNED]],
        "dry_run": request.dry_run,
        # StartWorkflow's HeartbeatSecondsPath / TimeoutSecondsPath (templates/workflow.asl.json.j2)
        "limits": workflow_limits(plan.tasks, plan.order, policy),
    }
    if request.dry_run:
        return {**result, "registered": False, "plan_uri": None, "definition_uri": request.definition_uri}

    encoded = encode_plan(plan, plan_key(workflow_id))  # header + shards (stepspot.plan_store)
    plan_sha256 = encoded.digest
    existing = table.get_workflow(workflow_id)
    if existing is not None and not table.is_newer_resubmission(existing, request.resubmission):
        table.same_plan_or_raise(existing, plan_sha256, request.resubmission)  # before any write
        return {
            **result,
            "registered": False,
            "plan_uri": existing[W.PLAN_URI],
            "definition_uri": existing[W.DEFINITION_URI],
        }
    definition_uri = request.definition_uri or documents.put(definition_key(workflow_id), canonical)
    # The plan's objects before the state items: a crash in between leaves no registration visible, and
    # the retry writes the same keys (named by the plan's digest) again.
    plan_uri = write_plan(documents, plan_key(workflow_id), encoded)
    meta = {  # the META item's registration attributes (stepspot.state_items.CREATED_WORKFLOW)
        W.WORKFLOW_ID: workflow_id,
        W.NAME: plan.name,
        W.STATUS: WorkflowStatus.PARSED.value,
        W.PLAN_URI: plan_uri,
        W.DEFINITION_URI: definition_uri,
        W.TOTAL_TASKS: len(plan.tasks),
        W.SUCCEEDED: result["skipped_count"],
        W.FAILED: 0,
        W.FAILURE_MODE: plan.failure_mode,
        W.RESUBMISSION: request.resubmission,
    }
    registered = table.register_workflow(meta, states, plan_sha256)
    return {**result, "registered": registered, "plan_uri": plan_uri, "definition_uri": definition_uri}
