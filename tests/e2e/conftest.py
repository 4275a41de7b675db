"""End-to-end runs of the local engine: the real rendered state machines in moto's interpreter, the
real handlers, each task a real subprocess."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stepspot.local.engine import LocalEngine, LocalOptions
from stepspot.local.faults import Faults
from stepspot.local.summary import RunSummary
from stepspot.policy import policy_from_mapping
from stepspot.workflow import load_workflow_file


@pytest.fixture
def write_workflow(tmp_path: Path) -> Callable[..., Path]:
    def write(tasks: list[dict[str, Any]], name: str = "e2e", **global_config: Any) -> Path:
        path = tmp_path / f"{name}.json"
        document: dict[str, Any] = {"name": name, "tasks": tasks}
        if global_config:
            document["global_config"] = global_config
        path.write_text(json.dumps(document))
        return path

    return write


@pytest.fixture
def run_local(tmp_path: Path) -> Callable[..., RunSummary]:
    def run(
        path: Path, faults: Faults | None = None, policy: dict[str, Any] | None = None, **options: Any
    ) -> RunSummary:
        engine = LocalEngine(
            LocalOptions(
                faults=faults or Faults(),
                policy=policy_from_mapping(policy) if policy else None,
                workdir=tmp_path / ".stepspot",
                timeout_seconds=options.pop("timeout_seconds", 240),
                time_scale=options.pop("time_scale", 3600),
                **options,
            )
        )
        return engine.run(load_workflow_file(path), path)

    return run
