"""The task runner as local mode runs it: the real bundle (build/stepspot-agent.pyz) under a clean python3
in isolated mode, as the container command does on AWS, never the project's virtualenv.

So a local run proves the bundle itself works: its vendored boto3, the stepspot modules it carries, its
version check against the Lambdas (``STEPSPOT_VERSION``). The bundle is (re)built from this checkout
before each run by scripts/build_agent_bundle.py, which returns at once when it is up to date.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
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


_started_checks: list[subprocess.Popen[str]] = []  # started by bundle_checked_meanwhile, not yet waited for


def _start_check() -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(BUILD_SCRIPT), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPOSITORY,
    )


@contextlib.contextmanager
def bundle_checked_meanwhile() -> Iterator[None]:
    """Start the bundle's check (a rebuild when it is stale) in its own process now, so that it runs while
    the caller imports the local engine (the check takes 0.1 s, on another core); ``ensure_bundle`` inside
    waits for it. A check nobody waited for is waited for on exit: no process outlives the command."""
    if _started_checks or not BUILD_SCRIPT.is_file():
        yield
        return
    _started_checks.append(_start_check())
    try:
        yield
    finally:
        while _started_checks:
            _started_checks.pop().communicate()


def ensure_bundle() -> Path:
    """Build the bundle if it is missing or older than this checkout; its path."""
    if not BUILD_SCRIPT.is_file():
        raise ConfigurationError(
            "Local mode runs the task runner bundle, which is built from a stepspot checkout: run `stepspot "
            f"local` from the repository (missing {BUILD_SCRIPT})."
        )
    check = _started_checks.pop() if _started_checks else _start_check()
    _, stderr = check.communicate()
    if check.returncode != 0 or not BUNDLE.is_file():
        detail = (stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigurationError(
            f"Could not build the task runner bundle ({detail}): run `make build` and fix what it reports."
        )
    return BUNDLE


def local_runner() -> Runner:
    return Runner(python=clean_python(), bundle=ensure_bundle(), shiv_root=SHIV_ROOT)
