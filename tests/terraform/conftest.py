"""Fixtures of the Terraform checks."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tf_toolchain import ROOT, ROOT_PLANS, TERRAFORM_DIR, TOOLS, TOOLS_BIN, Result, Runner, offline_env

from stepspot.asl import render_for_terraform


@pytest.fixture(scope="session")
def offline_tools() -> None:
    missing = [
        p for p in (TOOLS / "offline.tfrc", TOOLS / "schema" / "aws.json", TOOLS_BIN / "checkov") if not p.exists()
    ]
    if missing:
        pytest.fail(f"offline Terraform tools missing ({', '.join(map(str, missing))}): run `make tools`")


@pytest.fixture(scope="session")
def terraform(offline_tools: None) -> Runner:
    def run(*args: str, cwd: Path = TERRAFORM_DIR) -> Result:
        proc = subprocess.run(
            [str(TOOLS_BIN / "python"), str(ROOT / "scripts" / "terraform"), *args],
            cwd=cwd,
            env=offline_env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        return Result(proc.returncode, proc.stdout + proc.stderr)

    return run


def _plan_root(terraform: Runner, work: Path, var_files: list[str]) -> dict[str, Any]:
    """``terraform show -json`` of the root module planned with these variable files (offline)."""
    # A copy of the root module without its S3 backend, and stand-ins for what `make build` and
    # `make render` write (the Lambda zips, the runner bundle, the state machine definitions).
    copy = work / "terraform"
    shutil.copytree(TERRAFORM_DIR, copy, ignore=shutil.ignore_patterns(".terraform*"))
    versions = copy / "versions.tf"
    versions.write_text(versions.read_text().replace('backend "s3" {}', ""))
    build = work / "build"
    (build / "lambda").mkdir(parents=True)
    for name in ("lambda/stepspot.zip", "lambda/dependencies.zip", "stepspot-agent.pyz"):
        (build / name).write_bytes(b"stand-in")
    shutil.copytree(ROOT / "tests" / "terraform" / "fixtures", build / "asl")
    # The real templates, as `make render` writes them: Terraform must fill exactly their placeholders.
    render_for_terraform(build / "asl")
    assert terraform("get", cwd=copy).code == 0
    result = terraform(
        "plan",
        "-no-color",
        "-input=false",
        "-refresh=false",
        "-out=tfplan",
        *[f"-var-file={f}" for f in var_files],
        f"-var=build_dir={build}",
        f"-var=dashboard_template_path={ROOT / 'templates' / 'dashboard.json.tftpl'}",
        f"-var=alarm_definitions_path={ROOT / 'templates' / 'alarms.json'}",
        cwd=copy,
    )
    assert result.code == 0, result.output
    shown = terraform("show", "-json", "tfplan", cwd=copy)
    assert shown.code == 0, shown.output
    document: dict[str, Any] = json.loads(shown.output[shown.output.index("{") :])
    return document


@pytest.fixture(scope="session")
def root_plan(terraform: Runner, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], dict[str, Any]]:
    """The plan of the root module for one of ``ROOT_PLANS``, planned once per test session."""
    plans: dict[str, dict[str, Any]] = {}

    def plan(name: str) -> dict[str, Any]:
        if name not in plans:
            plans[name] = _plan_root(terraform, tmp_path_factory.mktemp(name), ROOT_PLANS[name])
        return plans[name]

    return plan
