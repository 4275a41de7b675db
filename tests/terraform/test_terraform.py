"""fmt, validate and `terraform test` of every module, against the offline hashicorp/aws 6.x schema."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tf_toolchain import MODULES, ROOT, ROOT_PLANS, TERRAFORM_DIR, Runner


def test_code_is_formatted(terraform: Runner) -> None:
    # Given the repository's Terraform code, When fmt checks it, Then nothing needs rewriting.
    result = terraform("fmt", "-check", "-recursive", "-diff", str(TERRAFORM_DIR))
    assert result.code == 0, result.output


def test_root_module_is_valid(terraform: Runner) -> None:
    # Given the root composition, When it is validated offline, Then it is valid.
    assert terraform("get").code == 0
    result = terraform("validate", "-no-color")
    assert result.code == 0, result.output
    assert "Success! The configuration is valid" in result.output


@pytest.mark.parametrize("module", MODULES)
def test_module_terraform_tests_pass(terraform: Runner, module: str) -> None:
    # Given a module with its .tftest.hcl (mock provider, command = plan), When tested, Then all pass.
    module_dir = TERRAFORM_DIR / "modules" / module
    assert list((module_dir / "tests").glob("*.tftest.hcl")), f"{module} has no terraform test"
    result = terraform("test", "-no-color", cwd=module_dir)
    assert result.code == 0, result.output
    assert " 0 failed" in result.output


BREAKAGES = {
    "typo in an argument": (
        "force_destroy = var.force_destroy",
        "force_destory = var.force_destroy",
        'An argument named "force_destory" is not expected here',
    ),
    "missing required block": (
        '  versioning_configuration {\n    status = "Enabled"\n  }\n',
        "",
        'At least 1 "versioning_configuration" blocks are required',
    ),
    "reference to an undeclared resource": (
        "bucket = aws_s3_bucket.this.id\n\n  versioning_configuration",
        "bucket = aws_s3_bucket.thiss.id\n\n  versioning_configuration",
        'A managed resource "aws_s3_bucket" "thiss" has not been declared',
    ),
    "wrong attribute type": (
        "enable_key_rotation     = true",
        "enable_key_rotation     = { on = true }",
        "Incorrect attribute value type",
    ),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_broken_module_fails_validation(terraform: Runner, tmp_path: Path, breakage: str) -> None:
    # Given a copy of the storage module with one mistake
    old, new, message = BREAKAGES[breakage]
    module = tmp_path / "storage"
    shutil.copytree(TERRAFORM_DIR / "modules" / "storage", module)
    main = module / "main.tf"
    source = main.read_text()
    assert old in source, f"the breakage {breakage!r} no longer applies to main.tf"
    main.write_text(source.replace(old, new, 1))

    # When it is validated, Then validation fails and says why
    result = terraform("validate", "-no-color", cwd=module)
    assert result.code != 0
    assert message in " ".join(result.output.split()), result.output


def test_fixture_templates_use_contract_variables() -> None:
    # The fixtures stand in for build/asl: they may only use names the contract lists.
    contract = (ROOT / "docs" / "contracts.md").read_text()
    for fixture in (ROOT / "tests" / "terraform" / "fixtures").glob("*.asl.json"):
        for name in __import__("re").findall(r"\$\{(\w+)\}", fixture.read_text()):
            assert f"`{name}`" in contract, f"{fixture.name} uses {name}, not in docs/contracts.md"


@pytest.mark.parametrize("plan", sorted(ROOT_PLANS))
def test_root_module_plans_for_every_environment(root_plan: Callable[[str], dict[str, Any]], plan: str) -> None:
    # Given the root module planned with the environment's variables (offline provider, no credentials)
    changes = root_plan(plan)["output_changes"]

    # Then the plan gives the CLI the outputs of the contract
    def known(name: str) -> object:
        return changes[name]["after"]

    def unknown(name: str) -> bool:
        return changes[name]["after_unknown"] is True

    dev = plan.startswith("dev")  # dev.tfvars switches on the shared file system and the GPU queues
    assert known("agent_bundle_path") == "/opt/stepspot/stepspot-agent.pyz"
    assert known("shared_filesystem_enabled") is dev
    assert known("shared_mount_path") == ("/mnt/shared" if plan == "dev-all-switches" else "/mnt/efs")
    assert known("input_bucket_arns") == (["arn:aws:s3:::stepspot-test-inputs"] if plan == "dev-all-switches" else [])
    assert "r7i.16xlarge" in known("spot_instance_types")  # type: ignore[operator]
    assert "r7i.16xlarge" in known("ondemand_instance_types")  # type: ignore[operator]
    assert known("mnp_max_nodes") == 8
    for queue in ("gpu_spot_job_queue_arn", "gpu_ondemand_job_queue_arn"):
        assert unknown(queue) if dev else known(queue) is None, queue
    assert bool(known("gpu_instance_types")) is dev
