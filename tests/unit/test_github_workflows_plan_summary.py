"""scripts/terraform_plan_summary.py: the job summary reviewers read before approving an apply."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "terraform_plan_summary.py"
spec = importlib.util.spec_from_file_location("terraform_plan_summary", SCRIPT)
assert spec is not None and spec.loader is not None
summary = importlib.util.module_from_spec(spec)
spec.loader.exec_module(summary)


def change(address: str, *actions: str) -> dict:
    return {"address": address, "change": {"actions": list(actions)}}


def test_counts_each_kind_of_change_and_warns_on_destruction() -> None:
    plan = {
        "resource_changes": [
            change("aws_s3_bucket.this", "create"),
            change("aws_sfn_state_machine.workflow", "update"),
            change("aws_batch_compute_environment.spot", "delete", "create"),
            change("aws_sns_topic.old", "delete"),
            change("aws_iam_role.same", "no-op"),
        ]
    }
    text = summary.render("staging", plan, "plan text")
    assert "## Terraform plan: `staging`" in text
    assert "| 1 | 1 | 1 | 1 |" in text
    assert "destroys or replaces resources" in text
    assert "- **replace** `aws_batch_compute_environment.spot`" in text
    assert "aws_iam_role.same" not in text


def test_no_changes_is_said_plainly_and_the_plan_text_is_truncated() -> None:
    text = summary.render("dev", {"resource_changes": [change("a.b", "no-op")]}, "x" * 70_000)
    assert "No changes." in text
    assert "destroys" not in text
    assert text.count("x") == summary.MAX_PLAN_TEXT_CHARS
    assert "(truncated)" in text


def test_command_line(tmp_path: Path) -> None:
    (tmp_path / "plan.json").write_text(json.dumps({"resource_changes": [change("a.b", "create")]}))
    (tmp_path / "plan.txt").write_text("Plan: 1 to add")
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--environment",
            "prod",
            "--plan-json",
            str(tmp_path / "plan.json"),
            "--plan-text",
            str(tmp_path / "plan.txt"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "| 1 | 0 | 0 | 0 |" in result.stdout and "Plan: 1 to add" in result.stdout
