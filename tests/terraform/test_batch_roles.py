"""Batch compute environments use the service-linked role (issue 12, defect 7).

`service_role` is optional and computed, so a plan cannot tell "not set" from "set": read the code.
A custom service role cannot be swapped in place and races IAM propagation on the first apply.
"""

from __future__ import annotations

import re

from tf_toolchain import TERRAFORM_DIR


def _resource_blocks(resource_type: str) -> list[str]:
    blocks = []
    for path in TERRAFORM_DIR.rglob("*.tf"):
        if ".terraform" in path.parts:
            continue
        text = path.read_text()
        for match in re.finditer(rf'^resource "{resource_type}" "\w+" \{{\n(.*?)^\}}', text, re.MULTILINE | re.DOTALL):
            blocks.append(match.group(1))
    return blocks


def test_compute_environments_name_no_service_role() -> None:
    environments = _resource_blocks("aws_batch_compute_environment")
    assert environments, "no aws_batch_compute_environment found under terraform/"
    for body in environments:
        assert not re.search(r"^\s*service_role\s*=", body, re.MULTILINE), body


def test_no_custom_batch_service_role_is_created() -> None:
    code = "\n".join(p.read_text() for p in TERRAFORM_DIR.rglob("*.tf") if ".terraform" not in p.parts)
    assert "AWSBatchServiceRole" not in code
    assert '"batch.amazonaws.com"' not in code
