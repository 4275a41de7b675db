"""Policy checks on the Terraform code with python-hcl2 (run by test_policy.py in the tools venv).

Prints a JSON list of violations:
- an Allow statement of an `aws_iam_policy_document` (or a module `statements` list) with a wildcard
  action (Deny statements may use one: they only narrow, e.g. the TLS-only bucket policy);
- a taggable resource without `tags` (resources whose schema has a `tags` argument);
- a Batch compute environment with `tags` (a tag change replaces it).
Usage: policy.py TERRAFORM_DIR SCHEMA_JSON
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import hcl2

NO_TAGS = {"aws_batch_compute_environment"}


def _one(value: Any) -> Any:
    """bc-python-hcl2 (checkov's python-hcl2) wraps attribute values in one-element lists."""
    while isinstance(value, list) and len(value) == 1 and isinstance(value[0], (list, str)):
        if isinstance(value[0], str):
            return value[0]
        value = value[0]
    return value


def _blocks(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return [value] if isinstance(value, dict) else []


def _walk_actions(node: Any, where: str, problems: list[str]) -> None:
    """Module arguments like `statements = [{ actions = [...] }]` (the functions map)."""
    if isinstance(node, dict):
        actions = _one(node.get("actions"))
        if isinstance(actions, str):
            actions = [actions]
        if isinstance(actions, list) and _one(node.get("effect", "Allow")) != "Deny":
            for action in actions:
                if isinstance(action, str) and "*" in action:
                    problems.append(f"{where}: wildcard action {action!r}")
        for key, value in node.items():
            if key != "actions":
                _walk_actions(value, where, problems)
    elif isinstance(node, list):
        for item in node:
            _walk_actions(item, where, problems)


def check(root: Path, schema: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    taggable = {t for t, s in schema["resource_schemas"].items() if "tags" in s["attributes"]}
    for path in sorted(root.rglob("*.tf")):
        if ".terraform" in path.parts:
            continue
        rel = path.relative_to(root)
        with path.open() as handle:
            doc = hcl2.load(handle)
        for data in doc.get("data", []):
            for name, body in data.get("aws_iam_policy_document", {}).items():
                for statement in _blocks(body.get("statement")):
                    if _one(statement.get("effect", "Allow")) == "Deny":
                        continue
                    actions = _one(statement.get("actions", []))
                    for action in actions if isinstance(actions, list) else [actions]:
                        if "*" in str(action):
                            problems.append(f"{rel}: data.aws_iam_policy_document.{name}: wildcard action {action!r}")
        for resource in doc.get("resource", []):
            for rtype, instances in resource.items():
                for name, body in instances.items():
                    if rtype in NO_TAGS:
                        if "tags" in body:
                            problems.append(f"{rel}: {rtype}.{name} must not carry tags (a change replaces it)")
                    elif rtype in taggable and "tags" not in body:
                        problems.append(f"{rel}: {rtype}.{name} has no tags")
        for module in doc.get("module", []):
            for name, body in module.items():
                _walk_actions(body, f"{rel}: module.{name}", problems)
    return problems


if __name__ == "__main__":
    schema = json.loads(Path(sys.argv[2]).read_text())
    print(json.dumps(check(Path(sys.argv[1]), schema), indent=1))
