"""stepspot.deployment: outputs from variables or Terraform, and the sentences when they are missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stepspot.deployment import Deployment, load_deployment, override_variable
from stepspot.errors import ConfigurationError

OUTPUTS = {
    "region": "eu-west-1",
    "environment": "dev",
    "workflow_state_machine_arn": "arn:aws:states:eu-west-1:123456789012:stateMachine:stepspot-dev-workflow",
    "task_state_machine_arn": "arn:aws:states:eu-west-1:123456789012:stateMachine:stepspot-dev-task",
    "bucket_name": "stepspot-dev-data",
    "state_table_name": "stepspot-dev-state",
    "checkpoint_table_name": "stepspot-dev-checkpoints",
    "spot_job_queue_arn": "arn:aws:batch:eu-west-1:123456789012:job-queue/stepspot-dev-spot",
    "ondemand_job_queue_arn": "arn:aws:batch:eu-west-1:123456789012:job-queue/stepspot-dev-ondemand",
    "workflow_parser_function_name": "stepspot-dev-workflow-parser",
    "sns_topic_arn": "arn:aws:sns:eu-west-1:123456789012:stepspot-dev-alerts",
    "batch_log_group_name": "/aws/batch/stepspot-dev",
    "dashboard_name": "stepspot-dev",
    "shared_filesystem_enabled": "true",
    "shared_mount_path": "/mnt/efs",
    "input_bucket_arns": '["arn:aws:s3:::refs"]',
}


def terraform_json(outputs: dict[str, str]) -> str:
    return json.dumps({k: {"sensitive": False, "type": "string", "value": v} for k, v in outputs.items()})


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "terraform" / "environments").mkdir(parents=True)
    (tmp_path / "work").mkdir()
    return tmp_path


def test_contract_output_names_are_the_dataclass_fields() -> None:
    assert Deployment.output_names() == list(OUTPUTS)


def test_terraform_outputs_are_read_from_the_nearest_terraform_directory(repo: Path) -> None:
    calls: list[Path] = []

    def runner(directory: Path, environment: str) -> tuple[int, str, str]:
        calls.append(directory)
        return 0, terraform_json(OUTPUTS), ""

    deployment = load_deployment("dev", environ={}, cwd=repo / "work", runner=runner)
    assert calls == [repo / "terraform"]
    assert deployment.bucket_name == "stepspot-dev-data"
    assert deployment.console_execution_url("arn:x").startswith(
        "https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/arn:x"
    )


def test_variables_override_terraform_outputs(repo: Path) -> None:
    environ = {override_variable("bucket_name"): "other-bucket", "STEPSPOT_STATE_MACHINE_ARN": "arn:legacy"}
    deployment = load_deployment("dev", environ=environ, cwd=repo, runner=lambda d, e: (0, terraform_json(OUTPUTS), ""))
    assert deployment.bucket_name == "other-bucket"
    assert deployment.workflow_state_machine_arn == "arn:legacy"


def test_terraform_is_not_run_when_variables_give_every_required_output(tmp_path: Path) -> None:
    environ = {override_variable(k): v for k, v in OUTPUTS.items() if k not in {"sns_topic_arn", "dashboard_name"}}

    def runner(directory: Path, environment: str) -> tuple[int, str, str]:
        raise AssertionError("terraform must not run")

    deployment = load_deployment("dev", environ=environ, cwd=tmp_path, runner=runner)
    assert deployment.sns_topic_arn == ""
    assert deployment.region == "eu-west-1"


def test_outputs_of_another_environment_are_refused(repo: Path) -> None:
    prod = {**OUTPUTS, "environment": "prod"}
    with pytest.raises(ConfigurationError) as raised:
        load_deployment("dev", environ={}, cwd=repo, runner=lambda d, e: (0, terraform_json(prod), ""))
    assert "belong to environment 'prod', not 'dev'" in raised.value.message
    assert "make deploy ENV=dev" in raised.value.message


def test_an_environment_that_was_never_deployed_says_what_to_run(repo: Path) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_deployment("staging", environ={}, cwd=repo, runner=lambda d, e: (0, "{}", ""))
    assert raised.value.message.startswith("Environment 'staging' is not deployed (no Terraform outputs)")
    assert "make deploy ENV=staging" in raised.value.message


# What Terraform prints for `output` in a directory never initialised for a backend (abridged).
UNINITIALISED = """There are some problems with the CLI configuration:
\u2577
\u2502 Warning: Unable to open CLI configuration file
\u2575

Error: Backend initialization required, please run "terraform init"

Changes to backend configurations require reinitialization. This allows
Terraform to set up the new configuration, copy existing state, etc. Please
run
"terraform init" with either the "-reconfigure" or "-migrate-state" flags to
use the current configuration.

If the change reason above is incorrect, please verify your configuration
hasn't changed and try again. At this point, no changes to your existing
configuration or state have been made.
"""


def test_an_uninitialised_terraform_directory_is_one_sentence_on_what_is_missing(repo: Path) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_deployment("dev", environ={}, cwd=repo, runner=lambda d, e: (1, "", UNINITIALISED))
    message = raised.value.message
    assert message.startswith("No deployment of environment 'dev' found (")
    assert "is not initialised): run `make deploy ENV=dev`" in message
    assert "state have been made" not in message and "\n" not in message


def test_a_failing_terraform_reports_its_error_line(repo: Path) -> None:
    def runner(directory: Path, environment: str) -> tuple[int, str, str]:
        return 1, "", "\u2577\n\u2502 noise\nError: Invalid character in the state file\n\nmore text"

    with pytest.raises(ConfigurationError) as raised:
        load_deployment("dev", environ={}, cwd=repo, runner=runner)
    assert "(Invalid character in the state file): run `make deploy ENV=dev`" in raised.value.message


def test_a_partial_deployment_names_the_missing_outputs_and_variables(repo: Path) -> None:
    partial = {k: v for k, v in OUTPUTS.items() if k != "state_table_name"}
    with pytest.raises(ConfigurationError) as raised:
        load_deployment("dev", environ={}, cwd=repo, runner=lambda d, e: (0, terraform_json(partial), ""))
    assert "missing outputs: state_table_name" in raised.value.message
    assert "STEPSPOT_STATE_TABLE_NAME" in raised.value.message


def test_no_terraform_directory_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_deployment("dev", environ={}, cwd=tmp_path)
    assert "No Terraform directory found" in raised.value.message
    assert "STEPSPOT_TERRAFORM_DIR" in raised.value.message


def test_missing_terraform_binary_says_to_install_it(repo: Path) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_deployment("dev", environ={"PATH": str(repo / "empty")}, cwd=repo)
    assert raised.value.message.startswith("Terraform is not installed: run `make tools`")


def test_python_terraform_runs_the_configured_binary(repo: Path) -> None:
    fake = repo / "fake-terraform"
    fake.write_text(f"#!/bin/sh\necho \"$@\" > {repo}/argv\ncat <<'JSON'\n{terraform_json(OUTPUTS)}\nJSON\n")
    fake.chmod(0o755)
    deployment = load_deployment("dev", environ={"STEPSPOT_TERRAFORM_BIN": str(fake)}, cwd=repo)
    assert deployment.environment == "dev"
    assert (repo / "argv").read_text().split() == ["output", "-json", "-no-color"]


def test_unknown_environment_is_a_usage_sentence(repo: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"Unknown environment 'qa': choose one of dev, staging, prod"):
        load_deployment("qa", environ={}, cwd=repo)


def test_input_buckets_come_from_the_terraform_list_output_or_the_variable(repo: Path) -> None:
    printed = {k: {"value": v} for k, v in OUTPUTS.items() if k != "input_bucket_arns"}
    printed["input_bucket_arns"] = {"value": ["arn:aws:s3:::refs", "arn:aws:s3:::raw-*"]}
    deployment = load_deployment("dev", environ={}, cwd=repo, runner=lambda d, e: (0, json.dumps(printed), ""))
    assert deployment.readable_input_buckets == ["arn:aws:s3:::refs", "arn:aws:s3:::raw-*"]
    printed["input_bucket_arns"] = {"value": []}  # the default: the deployment's own bucket only
    deployment = load_deployment("dev", environ={}, cwd=repo, runner=lambda d, e: (0, json.dumps(printed), ""))
    assert deployment.readable_input_buckets == []
    del printed["input_bucket_arns"]  # a deployment older than the output: not known
    deployment = load_deployment("dev", environ={}, cwd=repo, runner=lambda d, e: (0, json.dumps(printed), ""))
    assert deployment.readable_input_buckets is None
    environ = {override_variable("input_bucket_arns"): "arn:aws:s3:::a, arn:aws:s3:::b"}
    deployment = load_deployment("dev", environ=environ, cwd=repo, runner=lambda d, e: (0, json.dumps(printed), ""))
    assert deployment.readable_input_buckets == ["arn:aws:s3:::a", "arn:aws:s3:::b"]


def test_a_malformed_input_bucket_list_is_a_sentence(repo: Path) -> None:
    environ = {override_variable("input_bucket_arns"): '["arn:aws:s3:::a"'}
    deployment = load_deployment("dev", environ=environ, cwd=repo, runner=lambda d, e: (0, terraform_json(OUTPUTS), ""))
    with pytest.raises(
        ConfigurationError,
        match=r"input_bucket_arns .* is not a JSON list of bucket ARNs .*: fix STEPSPOT_INPUT_BUCKET_ARNS",
    ):
        _ = deployment.readable_input_buckets
