#!/usr/bin/env python3
"""Markdown summary of a saved Terraform plan, for the GitHub job summary of the plan jobs.

Usage: terraform show -json tfplan > plan.json; terraform show -no-color tfplan > plan.txt
       python3 scripts/terraform_plan_summary.py --environment dev --plan-json plan.json --plan-text plan.txt

Standard library only: it runs on a CI runner before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

# GitHub caps a step summary at 1 MiB; the full plan text stays in the artifact.
MAX_PLAN_TEXT_CHARS = 60_000
ACTION_LABELS = {
    ("create",): "create",
    ("update",): "update",
    ("delete",): "destroy",
    ("delete", "create"): "replace",
    ("create", "delete"): "replace",
    ("read",): "read",
    ("no-op",): "no-op",
}
ORDER = ("create", "update", "replace", "destroy")


def classify(plan: dict) -> list[tuple[str, str]]:
    """(action, resource address) for every resource the plan changes."""
    changes = []
    for change in plan.get("resource_changes", []):
        action = ACTION_LABELS.get(tuple(change.get("change", {}).get("actions", [])), "other")
        if action not in {"no-op", "read"}:
            changes.append((action, change.get("address", "?")))
    return changes


def render(environment: str, plan: dict, plan_text: str) -> str:
    changes = classify(plan)
    counts = Counter(action for action, _ in changes)
    lines = [f"## Terraform plan: `{environment}`", ""]
    if not changes:
        lines.append("No changes. The infrastructure matches the configuration.")
    else:
        lines += ["| create | update | replace | destroy |", "|---:|---:|---:|---:|"]
        lines.append("| " + " | ".join(str(counts.get(action, 0)) for action in ORDER) + " |")
        if counts.get("destroy") or counts.get("replace"):
            lines += ["", "> [!WARNING]", "> This plan destroys or replaces resources: review them before approving."]
        lines += ["", "<details><summary>Changed resources</summary>", ""]
        lines += [f"- **{action}** `{address}`" for action, address in sorted(changes)]
        lines += ["", "</details>"]
    text = plan_text if len(plan_text) <= MAX_PLAN_TEXT_CHARS else plan_text[:MAX_PLAN_TEXT_CHARS] + "\n... (truncated)"
    lines += ["", "<details><summary>Full plan</summary>", "", "```", text.rstrip(), "```", "", "</details>", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--environment", required=True)
    parser.add_argument("--plan-json", type=Path, required=True)
    parser.add_argument("--plan-text", type=Path, required=True)
    args = parser.parse_args(argv)
    plan = json.loads(args.plan_json.read_text())
    sys.stdout.write(render(args.environment, plan, args.plan_text.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
