"""Paths and helpers of the offline Terraform toolchain (`make tools`); never a system terraform."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = ROOT / "terraform"
TOOLS = ROOT / ".tools"
TOOLS_BIN = TOOLS / "venv" / "bin"
MODULES = sorted(p.name for p in (TERRAFORM_DIR / "modules").iterdir() if p.is_dir())
# Root module plans by name: variable files, relative to terraform/ or absolute.
ALL_SWITCHES_TFVARS = ROOT / "tests" / "terraform" / "fixtures" / "all-switches.tfvars"
ROOT_PLANS = {
    "dev": ["environments/dev.tfvars"],
    "staging": ["environments/staging.tfvars"],
    "prod": ["environments/prod.tfvars"],
    "dev-all-switches": ["environments/dev.tfvars", str(ALL_SWITCHES_TFVARS)],
}


@dataclass
class Result:
    code: int
    output: str


Runner = Callable[..., Result]


def offline_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TF_CLI_CONFIG_FILE=str(TOOLS / "offline.tfrc"),
        CHECKPOINT_DISABLE="1",
        TF_IN_AUTOMATION="1",
        NO_COLOR="1",
    )
    return env
