"""The fit check of `validate`, `plan`, `submit` and `local`: every task must fit a queue of the
environment (``stepspot.capacity``); a task that fits nowhere is a validation error (exit 2), reported
before anything is uploaded, registered or started."""

from __future__ import annotations

from stepspot.capacity import DeploymentCapacity, check_workflow
from stepspot.capacity_sources import offline_capacity
from stepspot.errors import WorkflowValidationError
from stepspot.workflow import LoadedWorkflow


def ensure_fits(loaded: LoadedWorkflow, capacity: DeploymentCapacity) -> DeploymentCapacity:
    """Raise ``WorkflowValidationError`` (printed by the CLI root, exit 2) for tasks that fit nowhere."""
    problems = check_workflow(loaded.workflow, capacity)
    if problems:
        raise WorkflowValidationError(problems, source=loaded.source)
    return capacity


def ensure_fits_environment(loaded: LoadedWorkflow, environment: str) -> DeploymentCapacity:
    return ensure_fits(loaded, offline_capacity(environment))
