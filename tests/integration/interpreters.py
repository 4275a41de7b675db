"""Other Python interpreters on this machine, for the packaging tests (the Lambda runtime's 3.12, the
task runner bundle's oldest supported 3.9). The machine image carries them under pyenv; elsewhere a
pythonX.Y on PATH (not a pyenv shim, which may refuse to run) does."""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path


def find_python(version: str) -> str | None:
    """A real interpreter of that minor version (e.g. "3.9"), or None."""
    root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    found = sorted(glob.glob(f"{root}/versions/{version}.*/bin/python{version}"))
    if found:
        return found[-1]
    on_path = shutil.which(f"python{version}")
    return on_path if on_path and "/shims/" not in on_path else None
