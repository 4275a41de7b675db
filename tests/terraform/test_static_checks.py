"""checkov, trivy and the python-hcl2 policy checks over terraform/."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from tf_toolchain import ROOT, TERRAFORM_DIR, TOOLS, TOOLS_BIN

# Default variables leave the optional parts (EFS, FSx, GPU, EFA) at count 0, unscanned: scan both.
SWITCHES = {"defaults": None, "all-switches": ROOT / "tests" / "terraform" / "fixtures" / "all-switches.tfvars"}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.parametrize("switches", sorted(SWITCHES))
def test_checkov_finds_no_failed_check(offline_tools: None, switches: str) -> None:
    var_file = SWITCHES[switches]
    result = _run(
        str(TOOLS_BIN / "checkov"),
        "-d",
        str(TERRAFORM_DIR),
        "--framework",
        "terraform",
        "--skip-download",
        "--compact",
        "-o",
        "json",
        *(["--var-file", str(var_file)] if var_file else []),
    )
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']})" for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0, "\n".join(failed)
    assert summary["passed"] > 100
    # Every skip carries its reason inline.
    for skipped in report["results"]["skipped_checks"]:
        assert skipped["check_result"].get("suppress_comment"), skipped["check_id"]


@pytest.mark.parametrize("switches", sorted(SWITCHES))
def test_trivy_finds_nothing_high_or_critical(offline_tools: None, switches: str) -> None:
    var_file = SWITCHES[switches]
    trivy = shutil.which("trivy", path=str(TOOLS_BIN))
    assert trivy, "trivy is missing from .tools/venv: run `make tools`"
    result = _run(
        trivy,
        "config",
        "--skip-check-update",
        "--exit-code",
        "1",
        "--severity",
        "HIGH,CRITICAL",
        "--quiet",
        *(["--tf-vars", str(var_file)] if var_file else []),
        str(TERRAFORM_DIR),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _policy(directory: Path) -> list[str]:
    result = _run(
        str(TOOLS_BIN / "python"),
        str(ROOT / "tests" / "terraform" / "policy.py"),
        str(directory),
        str(TOOLS / "schema" / "aws.json"),
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_no_wildcard_action_and_every_taggable_resource_tagged(offline_tools: None) -> None:
    assert _policy(TERRAFORM_DIR) == []


def test_policy_check_catches_wildcards_and_missing_tags(offline_tools: None, tmp_path: Path) -> None:
    # Given a copy of the code with a wildcard action in a function's statements and an untagged table
    copy = tmp_path / "terraform"
    shutil.copytree(TERRAFORM_DIR, copy, ignore=shutil.ignore_patterns(".terraform"))
    root_main = copy / "main.tf"
    root_main.write_text(root_main.read_text().replace('["batch:UpdateComputeEnvironment"]', '["batch:*"]', 1))
    storage = copy / "modules" / "storage" / "main.tf"
    storage.write_text(storage.read_text().replace("  tags = merge(var.tags, { table = each.key })\n", "", 1))

    # When the policy check runs, Then it names both problems
    problems = _policy(copy)
    assert "main.tf: module.functions: wildcard action 'batch:*'" in problems
    assert "modules/storage/main.tf: aws_dynamodb_table.this has no tags" in problems


def test_module_readmes_match_the_code(offline_tools: None) -> None:
    # The inputs/outputs tables are generated: a changed variable without `make docs` fails here.
    result = _run(str(TOOLS_BIN / "python"), str(ROOT / "scripts" / "tfdocs.py"), "--check")
    assert result.returncode == 0, result.stderr
