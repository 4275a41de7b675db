"""Helpers of the end-to-end tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
MD_EXAMPLE = ROOT / "examples" / "molecular-dynamics" / "workflow.json"
PY = Path(sys.executable).name  # "python": the venv's interpreter is first on the jobs' PATH


def sleep_task(task_id: str, seconds: float = 0.0, **fields: Any) -> dict[str, Any]:
    """A task that sleeps (real time) and succeeds."""
    code = f"import time; time.sleep({seconds})" if seconds else "pass"
    return {"id": task_id, "container_image": "python:3.12", "command": [PY, "-c", code], **fields}
