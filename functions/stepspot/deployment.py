"""Where a deployed environment lives: the Terraform root outputs of that environment.

The CLI's remote commands need the environment's ARNs and names (docs/contracts.md, "Terraform root
outputs"). They come from ``terraform output -json`` run in the repository's ``terraform/`` directory
(python-terraform), and each one can be overridden by an environment variable ``STEPSPOT_<UPPER NAME>``
(``STEPSPOT_WORKFLOW_STATE_MACHINE_ARN``, ``STEPSPOT_BUCKET_NAME``...). When every output is given by
variables Terraform is not run at all, which is how CI jobs and machines without the Terraform state use
the CLI. The caller passes the environment mapping in (no ``os.environ`` read here).

The Terraform root is one directory whose backend is chosen at ``terraform init`` time, so the outputs
it prints belong to whichever environment was initialised last. ``load_deployment`` checks the
``environment`` output against the one asked for and refuses to use another environment's resources.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from stepspot.environments import ENVIRONMENTS  # also imported from here by callers
from stepspot.errors import ConfigurationError

OVERRIDE_PREFIX = "STEPSPOT_"
# Older name used in the issue and the seed's docs, accepted as an alias of the workflow state machine.
LEGACY_STATE_MACHINE_VARIABLE = "STEPSPOT_STATE_MACHINE_ARN"

# Runs `terraform output -json` in a directory and returns (exit code, stdout, stderr).
OutputRunner = Callable[[Path, str], tuple[int, str, str]]


@dataclass(frozen=True)
class Deployment:
    """The Terraform root outputs of one environment (names exactly as in docs/contracts.md)."""

    region: str
    environment: str
    workflow_state_machine_arn: str
    task_state_machine_arn: str
    bucket_name: str
    state_table_name: str
    checkpoint_table_name: str
    spot_job_queue_arn: str
    ondemand_job_queue_arn: str
    workflow_parser_function_name: str
    sns_topic_arn: str
    batch_log_group_name: str
    dashboard_name: str
    # Every other root output Terraform printed (e.g. the capacity outputs stepspot.capacity_sources reads).
    other_outputs: dict[str, str] = field(default_factory=dict, compare=False)
    shared_filesystem_enabled: str = "false"  # "true" when the jobs mount EFS (terraform output, JSON bool)
    shared_mount_path: str = ""
    # Buckets the job role may read `uri` inputs from (JSON list of ARNs, or comma-separated in the
    # STEPSPOT_INPUT_BUCKET_ARNS override); empty: a deployment older than this output, not known.
    input_bucket_arns: str = ""

    @property
    def has_shared_filesystem(self) -> bool:
        return self.shared_filesystem_enabled.strip().lower() == "true"

    @property
    def readable_input_buckets(self) -> list[str] | None:
        """The ARNs of input_bucket_arns; None when the deployment does not say."""
        text = self.input_bucket_arns.strip()
        if not text:
            return None
        if text.startswith("["):
            try:
                arns = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigurationError(
                    f"input_bucket_arns {text!r} is not a JSON list of bucket ARNs ({exc}): fix "
                    f"{override_variable('input_bucket_arns')} or the Terraform output."
                ) from None
            return [str(arn) for arn in arns]
        return [arn.strip() for arn in text.split(",") if arn.strip()]

    @classmethod
    def output_names(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "other_outputs"]

    def console_execution_url(self, execution_arn: str) -> str:
        return (
            f"https://{self.region}.console.aws.amazon.com/states/home?region={self.region}"
            f"#/v2/executions/details/{execution_arn}"
        )

    def console_dashboard_url(self) -> str:
        return (
            f"https://{self.region}.console.aws.amazon.com/cloudwatch/home?region={self.region}"
            f"#dashboards/dashboard/{self.dashboard_name}"
        )


# Outputs a remote command cannot work without; the others may be empty (e.g. no SNS topic).
OPTIONAL_OUTPUTS = frozenset(
    {"sns_topic_arn", "dashboard_name", "shared_filesystem_enabled", "shared_mount_path", "input_bucket_arns"}
)


def override_variable(output_name: str) -> str:
    return f"{OVERRIDE_PREFIX}{output_name.upper()}"


def overrides_from(environ: Mapping[str, str]) -> dict[str, str]:
    """The outputs set by ``STEPSPOT_<UPPER NAME>`` variables (empty values count as unset)."""
    values: dict[str, str] = {}
    legacy = environ.get(LEGACY_STATE_MACHINE_VARIABLE, "").strip()
    if legacy:
        values["workflow_state_machine_arn"] = legacy
    for name in Deployment.output_names():
        value = environ.get(override_variable(name), "").strip()
        if value:
            values[name] = value
    return values


def find_terraform_dir(start: Path, environ: Mapping[str, str]) -> Path | None:
    """``STEPSPOT_TERRAFORM_DIR``, else the nearest ``terraform/`` directory at or above ``start``."""
    configured = environ.get("STEPSPOT_TERRAFORM_DIR", "").strip()
    if configured:
        return Path(configured)
    for directory in (start, *start.parents):
        candidate = directory / "terraform"
        if (candidate / "environments").is_dir() or (candidate / "main.tf").is_file():
            return candidate
    return None


def terraform_command(terraform_dir: Path, environ: Mapping[str, str]) -> str | None:
    """The Terraform CLI to run: ``STEPSPOT_TERRAFORM_BIN``, the repository's wrapper, or ``terraform``."""
    configured = environ.get("STEPSPOT_TERRAFORM_BIN", "").strip()
    if configured:
        return configured
    wrapper = terraform_dir.parent / "scripts" / "terraform"
    if wrapper.is_file():
        return str(wrapper)
    return shutil.which("terraform", path=environ.get("PATH"))


def _terraform_problem(environment: str, terraform_dir: Path, err: str) -> str:
    """What Terraform's error text means for the user, as the start of one sentence (its own text is
    many lines of box drawing; only its first ``Error:`` line is kept when nothing better is known)."""
    if "terraform init" in err or "Backend initialization required" in err:
        return f"No deployment of environment {environment!r} found ({terraform_dir} is not initialised)"
    if "credential" in err.lower():
        return f"No usable AWS credentials to read the deployment of environment {environment!r}"
    errors = [line.strip()[len("Error:") :].strip() for line in err.splitlines() if line.strip().startswith("Error:")]
    reason = (errors or [line.strip() for line in err.splitlines() if line.strip()] or ["no error text"])[0]
    return f"Could not read the Terraform outputs of environment {environment!r} ({reason.rstrip('.')})"


def python_terraform_runner(terraform_bin: str) -> OutputRunner:
    """An ``OutputRunner`` backed by python-terraform (imported lazily: only this path needs it)."""

    def run(terraform_dir: Path, _environment: str) -> tuple[int, str, str]:
        from python_terraform import IsFlagged, Terraform

        # It logs Terraform's whole stderr as raw bytes at WARNING; the caller turns it into one sentence.
        logging.getLogger("python_terraform").setLevel(logging.CRITICAL)
        terraform = Terraform(working_dir=str(terraform_dir), terraform_bin_path=terraform_bin)
        try:
            code, out, err = terraform.output_cmd(json=IsFlagged, no_color=IsFlagged)
        except OSError as exc:  # binary missing or not executable
            return 127, "", str(exc)
        return int(code), out or "", err or ""

    return run


def parse_terraform_outputs(text: str) -> dict[str, str]:
    """``terraform output -json`` -> {name: value as text}; null values are left out."""
    try:
        document = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"`terraform output -json` printed something that is not JSON ({exc}).") from exc
    values: dict[str, str] = {}
    for name, entry in document.items():
        value = entry.get("value") if isinstance(entry, dict) else None
        if value is not None:
            values[name] = value if isinstance(value, str) else json.dumps(value)
    return values


def load_deployment(
    environment: str,
    *,
    environ: Mapping[str, str],
    cwd: Path,
    runner: OutputRunner | None = None,
) -> Deployment:
    """Resolve the outputs of ``environment``: variables first, then the Terraform outputs.

    Raises ``ConfigurationError`` with one sentence that says what to run when the environment is not
    deployed, Terraform cannot be found, or the Terraform directory belongs to another environment.
    """
    if environment not in ENVIRONMENTS:
        raise ConfigurationError(
            f"Unknown environment {environment!r}: choose one of {', '.join(ENVIRONMENTS)} (--env)."
        )
    values = overrides_from(environ)
    missing = [name for name in Deployment.output_names() if name not in values]
    required_missing = [name for name in missing if name not in OPTIONAL_OUTPUTS]
    if required_missing:
        values = {**_terraform_outputs(environment, environ=environ, cwd=cwd, runner=runner), **values}
    values.setdefault("environment", environment)
    if values["environment"] != environment:
        raise ConfigurationError(
            f"The Terraform outputs belong to environment {values['environment']!r}, not {environment!r}: "
            f"run `make deploy ENV={environment}` (or `terraform init -reconfigure "
            f"-backend-config=backends/{environment}.hcl` in terraform/) first."
        )
    for name in OPTIONAL_OUTPUTS:
        values.setdefault(name, "")
    absent = [name for name in Deployment.output_names() if not values.get(name) and name not in OPTIONAL_OUTPUTS]
    if absent:
        variables = ", ".join(override_variable(name) for name in absent)
        raise ConfigurationError(
            f"Environment {environment!r} is not fully deployed (missing outputs: {', '.join(absent)}): "
            f"run `make deploy ENV={environment}`, or set {variables}."
        )
    names = Deployment.output_names()
    others = {name: value for name, value in values.items() if name not in names}
    return Deployment(**{name: values[name] for name in names}, other_outputs=others)


def _terraform_outputs(
    environment: str, *, environ: Mapping[str, str], cwd: Path, runner: OutputRunner | None
) -> dict[str, str]:
    deploy_hint = (
        f"run `make deploy ENV={environment}`, or set the STEPSPOT_<OUTPUT NAME> variables "
        "(e.g. STEPSPOT_WORKFLOW_STATE_MACHINE_ARN)"
    )
    terraform_dir = find_terraform_dir(cwd, environ)
    if terraform_dir is None or not terraform_dir.is_dir():
        raise ConfigurationError(
            f"No Terraform directory found for environment {environment!r} (looked for terraform/ above "
            f"{cwd}): run the command from the stepspot repository or set STEPSPOT_TERRAFORM_DIR; "
            f"then {deploy_hint}."
        )
    if runner is None:
        terraform_bin = terraform_command(terraform_dir, environ)
        if terraform_bin is None:
            raise ConfigurationError(
                f"Terraform is not installed: run `make tools` (or install terraform), or {deploy_hint}."
            )
        runner = python_terraform_runner(terraform_bin)
    code, out, err = runner(terraform_dir, environment)
    if code != 0:
        raise ConfigurationError(f"{_terraform_problem(environment, terraform_dir, err)}: {deploy_hint}.")
    outputs = parse_terraform_outputs(out)
    if not outputs:
        raise ConfigurationError(f"Environment {environment!r} is not deployed (no Terraform outputs): {deploy_hint}.")
    return outputs
