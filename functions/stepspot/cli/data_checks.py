"""Data-flow requests an environment cannot serve (docs/data.md): refused with exit 2 before anything is
written or started, by `submit`, `resume --resubmit --definition` and `local`, so each sentence has one
owner here. Deployed environments answer from their Terraform outputs (``Deployment``), `local` from the
environment's Terraform variables (a workflow that passes locally must be accepted by that environment).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from stepspot.cli.output import err_console
from stepspot.dataflow import unreadable_uri_inputs
from stepspot.deployment import Deployment, find_terraform_dir

if TYPE_CHECKING:  # the workflow models load with the file; importing this module must stay cheap
    from stepspot.workflow import LoadedWorkflow

SHARED_FILESYSTEM_VARIABLE = "shared_filesystem_enabled"


def _print(sentence: str) -> None:
    err_console.print(sentence, highlight=False, soft_wrap=True)


def refuses_missing_shared_filesystem(path: Path, loaded: LoadedWorkflow, environment: str, has_one: bool) -> bool:
    """Prints why a workflow asking for the shared file system cannot run in ``environment``; True if so."""
    if not loaded.workflow.global_config.shared_filesystem or has_one:
        return False
    _print(
        f"stepspot: {path}: global_config.shared_filesystem is true but environment {environment!r} has no shared "
        f"file system: set {SHARED_FILESYSTEM_VARIABLE} = true in terraform/environments/{environment}.tfvars and "
        f"run `make deploy ENV={environment}`, or pass data with tasks[].inputs and tasks[].outputs instead."
    )
    return True


def planned_shared_filesystem(environment: str) -> bool:
    """Whether the environment's Terraform variables switch the shared file system on (no AWS call). Without
    a terraform/ directory there is nothing to hold the workflow to: local mode then allows it."""
    from stepspot.capacity_sources import terraform_values  # the Terraform readers: only when asked

    terraform_dir = find_terraform_dir(Path.cwd(), os.environ)
    if terraform_dir is None or not terraform_dir.is_dir():
        return True
    values, _ = terraform_values(terraform_dir, environment)
    return values.get(SHARED_FILESYSTEM_VARIABLE) is True


def refuses_unreadable_inputs(path: Path, loaded: LoadedWorkflow, deployment: Deployment) -> bool:
    """Prints one sentence per ``uri`` input the deployment's jobs could not read; True if any."""
    readable = deployment.readable_input_buckets
    if readable is None:  # a deployment without the input_bucket_arns output: AWS will tell
        return False
    tasks = [(task.id, task.input_specs) for task in loaded.workflow.tasks]
    problems = unreadable_uri_inputs(tasks, deployment.bucket_name, readable)
    env = deployment.environment
    for problem in problems:
        _print(
            f"stepspot: {path}: task {problem.task_id!r} reads input {problem.uri} but environment {env!r} cannot "
            f'read bucket {problem.bucket!r}: add "arn:aws:s3:::{problem.bucket}" to input_bucket_arns in '
            f"terraform/environments/{env}.tfvars and run `make deploy ENV={env}`."
        )
    return bool(problems)
