"""Fixtures of the Terraform checks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from tf_toolchain import ROOT, TERRAFORM_DIR, TOOLS, TOOLS_BIN, Result, Runner, offline_env


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
