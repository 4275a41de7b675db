"""The task runner as local mode runs it: the real bundle (build/stepspot-agent.pyz) under a clean python3
in isolated mode, as the container command does on AWS, never the project's virtualenv.

So a local run proves the bundle itself works: its vendored boto3, the stepspot modules it carries, its
version check against the Lambdas (``STEPSPOT_VERSION``). The bundle is (re)built from this checkout
before each run by scripts/build_agent_bundle.py, which returns at once when it is up to date.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stepspot.errors import ConfigurationError

REPOSITORY = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPOSITORY / "scripts" / "build_agent_bundle.py"
BUNDLE = REPOSITORY / "build" / "stepspot-agent.pyz"
SHIV_ROOT = REPOSITORY / "build" / "agent" / "shiv"  # where the bundle unpacks for local jobs
PYTHON_ENV = "STEPSPOT_LOCAL_PYTHON"  # the interpreter that runs the bundle, instead of the system's python3


@dataclass(frozen=True)
class Runner:
    python: str
    bundle: Path
    shiv_root: Path

    def command(self, program: Sequence[str], options: Sequence[str] = (), action: str = "run") -> list[str]:
        """The job's process: ``python3 -I stepspot-agent.pyz ACTION [options] -- program``."""
        return [self.python, "-I", str(self.bundle), action, *options, "--", *program]


def clean_python() -> str:
    """A python3 outside this virtualenv: $STEPSPOT_LOCAL_PYTHON, the system's, else the venv's base."""
    chosen = os.environ.get(PYTHON_ENV, "")
    if chosen:
        if shutil.which(chosen) is None:
            raise ConfigurationError(f"{PYTHON_ENV}={chosen!r} is not an executable python3: fix or unset it.")
        return chosen
    return shutil.which("python3", path=os.defpath) or str(Path(sys.base_prefix) / "bin" / "python3")


def ensure_bundle() -> Path:
    """Build the bundle if it is missing or older than this checkout; its path."""
    if not BUILD_SCRIPT.is_file():
        raise ConfigurationError(
            "Local mode runs the task runner bundle, which is built from a stepspot checkout: run `stepspot "
            f"local` from the repository (missing {BUILD_SCRIPT})."
        )
    result = subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), "--quiet"], capture_output=True, text=True, cwd=REPOSITORY, check=False
    )
    if result.returncode != 0 or not BUNDLE.is_file():
        detail = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigurationError(
            f"Could not build the task runner bundle ({detail}): run `make build` and fix what it reports."
        )
    return BUNDLE


def local_runner() -> Runner:
    return Runner(python=clean_python(), bundle=ensure_bundle(), shiv_root=SHIV_ROOT)
