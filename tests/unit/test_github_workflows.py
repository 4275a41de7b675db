"""The users' CI pipeline in .github/workflows: actionlint-clean, pinned, and deploying safely."""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")


def load(name: str) -> dict[str, Any]:
    document = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    document["on"] = document.pop(True, document.get("on"))
    return document


def all_steps() -> list[dict[str, Any]]:
    steps = []
    for path in WORKFLOWS.glob("*.yml"):
        for job in load(path.name)["jobs"].values():
            steps.extend(job.get("steps", []))
    return steps


def actionlint_binary() -> str:
    found = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    if found is None:
        pytest.fail("actionlint is not installed: run `make venv` (it comes with the dev extra).")
    return found


def test_actionlint_reports_nothing() -> None:
    files = sorted(str(path) for path in WORKFLOWS.glob("*.yml"))
    result = subprocess.run(
        [actionlint_binary(), "-color=false", *files], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ nope }}\n")
    result = subprocess.run([actionlint_binary(), "-color=false", str(broken)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "undefined variable" in result.stdout


def test_every_action_is_pinned_to_a_full_commit_sha() -> None:
    uses = [step["uses"] for step in all_steps() if "uses" in step]
    assert uses, "no actions found"
    assert [u for u in uses if not PINNED.match(u)] == []


def test_pull_requests_run_tests_static_checks_and_a_plan_per_environment() -> None:
    workflow = load("pull-request.yml")
    assert list(workflow["on"]) == ["pull_request"]
    jobs = workflow["jobs"]
    runs = [step.get("run", "") for step in jobs["tests"]["steps"]]
    assert "make test" in runs and "make lint" in runs
    static = "\n".join(step.get("run", "") for step in jobs["terraform-static"]["steps"])
    assert "terraform fmt -check" in static and "terraform -chdir=terraform validate" in static
    assert "checkov==3.3.30" in static
    assert jobs["plan"]["uses"] == "./.github/workflows/terraform-plan.yml"
    assert jobs["plan"]["strategy"]["matrix"]["environment"] == ["dev", "staging", "prod"]


def test_the_plan_is_saved_with_its_build_and_summarised() -> None:
    steps = load("terraform-plan.yml")["jobs"]["plan"]["steps"]
    commands = "\n".join(step.get("run", "") for step in steps)
    assert "-out=tfplan" in commands
    assert "$GITHUB_STEP_SUMMARY" in commands
    upload = next(step for step in steps if step.get("uses", "").startswith("actions/upload-artifact@"))
    paths = upload["with"]["path"].split()
    assert {"terraform/tfplan", "build/", "terraform/.terraform.lock.hcl"} <= set(paths)


def test_main_deploys_dev_then_staging_then_prod_each_applying_its_own_plan() -> None:
    workflow = load("deploy.yml")
    assert workflow["on"]["push"]["branches"] == ["main"]
    jobs = workflow["jobs"]
    order = ["plan-dev", "apply-dev", "plan-staging", "apply-staging", "plan-prod", "apply-prod"]
    for previous, job in itertools.pairwise(order):
        assert jobs[job]["needs"] == previous
    for env in ("dev", "staging", "prod"):
        plan, apply = jobs[f"plan-{env}"]["with"], jobs[f"apply-{env}"]["with"]
        assert plan["environment"] == apply["environment"] == env
        assert plan["artifact-name"] == apply["artifact-name"]
        assert plan["concurrency-group"] == apply["concurrency-group"] == f"terraform-{env}"


def test_apply_runs_in_the_github_environment_one_at_a_time_with_oidc() -> None:
    job = load("terraform-apply.yml")["jobs"]["apply"]
    assert job["environment"] == "${{ inputs.environment }}"  # approvals are rules of that environment
    assert job["concurrency"]["cancel-in-progress"] is False
    assert job["permissions"]["id-token"] == "write"
    credentials = next(s for s in job["steps"] if s.get("uses", "").startswith("aws-actions/configure-aws"))
    assert "role-to-assume" in credentials["with"]
    assert not any("aws-access-key-id" in step.get("with", {}) for step in job["steps"])
    commands = [step.get("run", "") for step in job["steps"]]
    assert "terraform -chdir=terraform apply -lock-timeout=10m tfplan" in commands


def test_callers_grant_the_oidc_token_to_the_reusable_workflows() -> None:
    for name in ("deploy.yml", "pull-request.yml"):
        for job in load(name)["jobs"].values():
            if "uses" in job:
                assert job["permissions"]["id-token"] == "write"
