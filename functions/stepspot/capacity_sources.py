"""Where the capacity of an environment comes from: its Terraform variables offline, its outputs when
deployed. Reads files (and the outputs the CLI already fetched); the check itself is ``stepspot.capacity``.

Values, later ones winning: the defaults of ``stepspot/data/instance_types.json`` (the contract's
default instance type lists, which ``terraform/variables.tf`` mirrors: a unit test compares them), the
other defaults of ``terraform/variables.tf``, the environment's ``terraform/environments/<env>.tfvars``,
and for a deployed environment the Terraform root outputs of CONTRACTS.md (``spot_instance_types`` ...).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stepspot.capacity import DeploymentCapacity, capacity_from_variables, default_instance_table
from stepspot.deployment import find_terraform_dir
from stepspot.errors import ConfigurationError
from stepspot.terraform_vars import parse_tfvars, variable_defaults

# Root outputs (CONTRACTS.md) that describe the deployed compute environments.
CAPACITY_OUTPUTS = (
    "spot_instance_types",
    "ondemand_instance_types",
    "mnp_instance_types",
    "gpu_instance_types",
    "mnp_max_nodes",
    "gpu_spot_job_queue_arn",
    "gpu_ondemand_job_queue_arn",
)


def tfvars_path(terraform_dir: Path, environment: str) -> Path:
    return terraform_dir / "environments" / f"{environment}.tfvars"


def terraform_values(terraform_dir: Path, environment: str) -> tuple[dict[str, Any], str]:
    """(variable values, where they came from) of one environment: variables.tf defaults, then tfvars."""
    values: dict[str, Any] = {}
    variables = terraform_dir / "variables.tf"
    if variables.is_file():
        values.update(variable_defaults(variables.read_text(encoding="utf-8"), str(variables)))
    # The contract's default instance type lists are owned by the data file (tf mirrors them).
    values.update(default_instance_table().defaults)
    tfvars = tfvars_path(terraform_dir, environment)
    if not tfvars.is_file():
        raise ConfigurationError(
            f"{tfvars} does not exist: environment {environment!r} has no variables file; pass --env with one "
            f"of the files in {terraform_dir / 'environments'}"
        )
    values.update(parse_tfvars(tfvars.read_text(encoding="utf-8"), str(tfvars)))
    return values, _relative(tfvars)


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def offline_capacity(
    environment: str, *, environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> DeploymentCapacity:
    """The capacity an environment's Terraform variables describe (no AWS call, no Terraform run)."""
    environ = os.environ if environ is None else environ
    terraform_dir = find_terraform_dir(cwd or Path.cwd(), environ)
    if terraform_dir is None or not terraform_dir.is_dir():
        return capacity_from_variables(
            {},
            environment,
            "stepspot's default capacity (no terraform/ directory found; set STEPSPOT_TERRAFORM_DIR)",
        )
    values, source = terraform_values(terraform_dir, environment)
    return capacity_from_variables(values, environment, source)


def deployed_capacity(
    environment: str, outputs: Mapping[str, str], *, environ: Mapping[str, str] | None = None, cwd: Path | None = None
) -> DeploymentCapacity:
    """The offline capacity, overridden by the deployed environment's Terraform outputs where present
    (values as ``parse_terraform_outputs`` gives them: JSON text for lists and numbers)."""
    offline = offline_capacity(environment, environ=environ, cwd=cwd)
    present = {name: outputs[name] for name in CAPACITY_OUTPUTS if outputs.get(name)}
    if not present:
        return offline
    values: dict[str, Any] = {}
    for name, text in present.items():
        try:
            values[name] = json.loads(text) if not name.endswith("_arn") else text
        except ValueError:
            values[name] = text
    terraform_dir = find_terraform_dir(cwd or Path.cwd(), os.environ if environ is None else environ)
    base: dict[str, Any] = {}
    if terraform_dir is not None and terraform_dir.is_dir() and tfvars_path(terraform_dir, environment).is_file():
        base, _ = terraform_values(terraform_dir, environment)
    if "gpu_instance_types" in values or "gpu_spot_job_queue_arn" in values:
        values["gpu_enabled"] = bool(values.get("gpu_spot_job_queue_arn") or values.get("gpu_ondemand_job_queue_arn"))
    return capacity_from_variables({**base, **values}, environment, f"the Terraform outputs of {environment!r}")


# Terraform outputs of the queue ARNs, per queue of stepspot.capacity (the Deployment names the first two).
QUEUE_OUTPUTS = {
    "spot": "spot_job_queue_arn",
    "on-demand": "ondemand_job_queue_arn",
    "mnp": "mnp_job_queue_arn",
    "gpu-spot": "gpu_spot_job_queue_arn",
    "gpu-on-demand": "gpu_ondemand_job_queue_arn",
}


def described_capacity(
    environment: str,
    batch_client: Any,
    queue_arns: Mapping[str, str],
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> DeploymentCapacity:
    """The offline capacity, with the instance types and vCPU ceilings the deployed compute environments
    report (DescribeJobQueues + DescribeComputeEnvironments) for the queues that exist."""
    from stepspot.aws.batch_capacity import describe_queues
    from stepspot.capacity import QUEUE_VARIABLES

    terraform_dir = find_terraform_dir(cwd or Path.cwd(), os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    if terraform_dir is not None and tfvars_path(terraform_dir, environment).is_file():
        values, _ = terraform_values(terraform_dir, environment)
    described = describe_queues(batch_client, {key: arn for key, arn in queue_arns.items() if arn})
    if not described:
        return offline_capacity(environment, environ=environ, cwd=cwd)
    for key, resources in described.items():
        types_variable, vcpus_variable = QUEUE_VARIABLES[key]
        values[types_variable] = resources.instance_types
        values[vcpus_variable] = resources.max_vcpus
    values["gpu_enabled"] = "gpu-spot" in described or "gpu-on-demand" in described
    return capacity_from_variables(values, environment, f"the compute environments of {environment!r} (AWS Batch)")
