"""The one handler shape (issue 17): typed settings, one cached runtime with named fields, Powertools'
Lambda context on every handler, and every cold-start cache reset through one registry."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import typing
from pathlib import Path

import pytest

from stepspot.handlers import _cache, _plans
from stepspot.settings import LambdaSettings

HANDLERS = sorted(
    p.stem for p in (Path(__file__).parents[2] / "functions" / "stepspot" / "handlers").glob("*.py") if p.stem[0] != "_"
)


def test_the_six_handlers_are_found():
    assert HANDLERS == [
        "attempt_manager",
        "checkpoint_manager",
        "interruption_handler",
        "scheduler",
        "workflow_monitor",
        "workflow_parser",
    ]


@pytest.mark.parametrize("name", HANDLERS)
def test_each_handler_has_the_one_shape(name: str):
    module = importlib.import_module(f"stepspot.handlers.{name}")
    # A frozen dataclass with named fields, built by the registered cold-start cache
    runtime_type = typing.get_type_hints(module.runtime)["return"]
    assert dataclasses.is_dataclass(runtime_type) and runtime_type.__dataclass_params__.frozen
    settings_type = typing.get_type_hints(runtime_type)["settings"]
    assert issubclass(settings_type, LambdaSettings)
    assert module.runtime.cache_clear in _cache._resets
    # Powertools' Lambda context (request id, cold start) and a clean set of keys on every invocation
    source = inspect.getsource(module)
    assert "@logger.inject_lambda_context(clear_state=True)\ndef lambda_handler(" in source


def test_reset_all_forgets_every_registered_cache():
    built: list[int] = []

    @_cache.cold_start
    def context() -> int:
        built.append(1)
        return len(built)

    assert (context(), context()) == (1, 1)
    _plans._headers["s3://b/workflows/wf/plan.json"] = object()  # type: ignore[assignment]
    _plans._shards[("s3://b/workflows/wf/plan.json", 0)] = object()  # type: ignore[assignment]
    _cache.reset_all()
    assert context() == 2
    assert not _plans._headers and not _plans._shards
