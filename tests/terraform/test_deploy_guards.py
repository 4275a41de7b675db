"""`make plan|deploy|destroy` refuse, before touching anything, without a known ENV or credentials."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tf_toolchain import ROOT, TERRAFORM_DIR

NO_CREDENTIALS = {
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_DEFAULT_REGION": "eu-west-1",
}


def _deploy(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    clean.update(env)
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "deploy.py"), *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _terraform_dirs() -> set[Path]:
    return {p for p in TERRAFORM_DIR.rglob(".terraform*") if "modules" not in p.parts}


def test_unknown_environment_is_refused_with_the_known_ones() -> None:
    before = _terraform_dirs()
    result = _deploy("deploy", "qa", env=NO_CREDENTIALS)
    assert result.returncode == 3  # an environment problem (README)
    assert "Unknown environment 'qa': use ENV=dev | ENV=prod | ENV=staging" in result.stderr
    assert _terraform_dirs() == before  # nothing initialised


def test_missing_credentials_are_refused_with_advice() -> None:
    before = _terraform_dirs()
    result = _deploy("plan", "dev", env=NO_CREDENTIALS)
    assert result.returncode == 3
    assert "No usable AWS credentials (" in result.stderr
    assert "): configure them (aws configure, aws sso login" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one sentence
    assert _terraform_dirs() == before


def _make(*args: str) -> subprocess.CompletedProcess[str]:
    """`make ARGS` in the repository without AWS credentials and without an outer make's settings."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MAKE")) and k != "MFLAGS"}
    clean.update(NO_CREDENTIALS)
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_make_deploy_stops_before_building() -> None:
    result = _make("-n", "deploy", "ENV=qa")
    # The guard runs before anything is built or initialised.
    lines = result.stdout.splitlines()
    guard = next(i for i, line in enumerate(lines) if "scripts/deploy.py check qa" in line)
    later = [i for i, line in enumerate(lines) if "build_lambdas" in line or "deploy.py deploy" in line]
    assert later and guard < min(later), result.stdout


def test_make_plan_without_credentials_is_one_sentence_and_the_guards_exit_3() -> None:
    before = _terraform_dirs()
    result = _make("plan", "ENV=dev")
    # make itself always ends with 2 when a recipe fails; it names the guard's own exit code, 3.
    assert result.returncode == 2
    problems = [line for line in result.stderr.splitlines() if not line.startswith("make: ***")]
    assert len(problems) == 1 and problems[0].startswith("No usable AWS credentials ("), result.stderr
    assert "plan] Error 3" in result.stderr
    assert "build_lambdas" not in result.stdout and _terraform_dirs() == before


def test_status_without_a_deployment_is_one_sentence_and_exit_3(tmp_path: Path) -> None:
    # A Terraform root with an S3 backend that was never initialised, read through the repository's
    # Terraform (make tools): python-terraform logs Terraform's whole stderr as raw bytes unless told not to.
    (tmp_path / "terraform").mkdir()
    (tmp_path / "terraform" / "main.tf").write_text('terraform {\n  backend "s3" {}\n}\n')
    env = {
        **os.environ,
        "STEPSPOT_TERRAFORM_DIR": str(tmp_path / "terraform"),
        "STEPSPOT_TERRAFORM_BIN": str(ROOT / "scripts" / "terraform"),
    }
    result = subprocess.run(
        [str(Path(sys.executable).parent / "stepspot"), "status"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 3  # an environment problem (README)
    assert result.stdout == ""
    assert result.stderr == (
        f"stepspot: No deployment of environment 'dev' found ({tmp_path / 'terraform'} is not initialised): run "
        "`make deploy ENV=dev`, or set the STEPSPOT_<OUTPUT NAME> variables "
        "(e.g. STEPSPOT_WORKFLOW_STATE_MACHINE_ARN).\n"
    )


def test_destroy_deregisters_the_derived_job_definitions_before_applying(monkeypatch) -> None:
    # Issue 12 (5): the attempt manager's derived job definitions are not Terraform's; `make destroy`
    # deregisters them while the outputs they are found by still exist, and stops if that fails.
    import importlib.util

    spec = importlib.util.spec_from_file_location("deploy_script", ROOT / "scripts" / "deploy.py")
    assert spec is not None and spec.loader is not None
    deploy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(deploy)
    steps: list[str] = []
    monkeypatch.setattr(deploy, "caller_account", lambda: "123456789012")
    monkeypatch.setattr(deploy, "terraform", lambda *args: steps.append(f"terraform {args[0]}"))

    def run(command: list[str], check: bool = False) -> subprocess.CompletedProcess[str]:
        steps.append(" ".join([Path(command[0]).name, *command[1:]]))
        return subprocess.CompletedProcess(command, returncode=outcome)

    monkeypatch.setattr(deploy.subprocess, "run", run)
    outcome = 0
    assert deploy.main(["destroy", "dev"]) == 0
    assert steps == [
        "terraform init",
        "terraform plan",
        "stepspot cleanup-job-definitions --env dev",
        "terraform apply",
    ]
    steps.clear()
    outcome = 1
    with pytest.raises(SystemExit, match="Deregistering the derived job definitions failed"):
        deploy.main(["destroy", "dev"])
    assert "terraform apply" not in steps
