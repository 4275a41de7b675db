"""A local run leaves the process as it found it: moto unpatched (the integration tests then run against
the pinned moto whatever ran before them), no child process left (its DynamoDB process included),
``sys.stdout`` and the environment restored, no handler cache left from the run."""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
from typing import Any

import boto3
import pytest
from local_helpers import sleep_task

from stepspot._gc import RUN_GC_THRESHOLD
from stepspot.local.lambdas import FUNCTIONS, OutputRouter

_MOTO_STATE_TASK = "moto.stepfunctions.parser.asl.component.state"


def _module(name: str) -> Any:
    import importlib

    return importlib.import_module(name)


def _ours(value: Any) -> bool:
    """A stepspot replacement (a wrapper written in stepspot, or the JSONPath memo) rather than moto's own."""
    return str(getattr(value, "__module__", "")).startswith("stepspot") or hasattr(value, "cache_info")


def stepspot_patches() -> list[str]:
    """Every place of moto the local engine patches that holds stepspot's version now (independent of
    the patch module's own bookkeeping, so a patch it forgets to undo shows up here)."""
    found = []
    for module_name in (
        f"{_MOTO_STATE_TASK}.exec.state_task.lambda_eval_utils",
        f"{_MOTO_STATE_TASK}.exec.state_task.service.state_task_service_batch",
    ):
        if _ours(_module(module_name).boto_client_for):
            found.append(f"{module_name}.boto_client_for")
    retrier = _module("moto.stepfunctions.parser.asl.component.common.retry.retrier_decl")
    if retrier.time is not time:
        found.append("retrier_decl.time")
    wait = _module(f"{_MOTO_STATE_TASK}.wait.wait_function.wait_function").WaitFunction
    if _ours(wait._eval_body):
        found.append("WaitFunction._eval_body")
    callback = _module(f"{_MOTO_STATE_TASK}.exec.state_task.service.state_task_service_callback")
    if _ours(callback.StateTaskServiceCallback.__dict__.get("_eval_execution")):
        found.append("StateTaskServiceCallback._eval_execution")
    if callback._DELAY_SECONDS_SYNC_CONDITION_CHECK != 0.5:  # moto 5.2.5's own polling period
        found.append("_DELAY_SECONDS_SYNC_CONDITION_CHECK")
    batch = _module(f"{_MOTO_STATE_TASK}.exec.state_task.service.state_task_service_batch")
    if {"NodeOverrides", "PropagateTags"} & batch._SUPPORTED_API_PARAM_BINDINGS["submitjob"]:
        found.append("submitjob parameter bindings")
    custom = _module("moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name").CustomErrorName
    for name in (
        f"{_MOTO_STATE_TASK}.exec.state_map.iteration.iteration_worker",
        f"{_MOTO_STATE_TASK}.exec.state_parallel.branches_decl",
    ):
        if _module(name).CustomErrorName is not custom:
            found.append(f"{name}.CustomErrorName")
    parser = _module("moto.stepfunctions.parser.asl.parse.asl_parser").AmazonStateLanguageParser
    if _ours(parser.parse):
        found.append("AmazonStateLanguageParser.parse")
    for name in (
        "moto.stepfunctions.parser.asl.utils.json_path",
        "moto.stepfunctions.parser.asl.component.common.path.result_path",
    ):
        if _ours(_module(name).parse):
            found.append(f"{name}.parse")
    backend = _module("moto.dynamodb.models").DynamoDBBackend
    for operation in ("put_item", "update_item", "query", "transact_write_items"):
        if _ours(getattr(backend, operation)):
            found.append(f"DynamoDBBackend.{operation}")
    if _ours(_module("moto.dynamodb.responses").DynamoHandler._dispatch):
        found.append("DynamoHandler._dispatch")
    responses = _module("moto.stepfunctions.responses").StepFunctionResponse
    if _ours(responses.send_task_failure):
        found.append("StepFunctionResponse.send_task_failure")
    parser_models = _module("moto.stepfunctions.parser.models").StepFunctionsParserBackend
    if _ours(parser_models.send_task_heartbeat):
        found.append("StepFunctionsParserBackend.send_task_heartbeat")
    if _ours(_module("moto.stepfunctions.parser.asl.jsonata.jsonata")._eval_jsonata):
        found.append("jsonata._eval_jsonata")
    return found


def _children() -> set[int]:
    """This process's child processes (every thread's)."""
    found: set[int] = set()
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as children:
            found.update(int(pid) for pid in children.read().split())
    return found


def _tables_here() -> set[str]:
    """The DynamoDB tables of this process's own moto."""
    from moto.core.models import DEFAULT_ACCOUNT_ID

    return set(_module("moto.dynamodb.models").dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].tables)


def _handler_streams() -> dict[str, Any]:
    """The stream each imported handler's Powertools logger writes to."""
    streams = {}
    for module_name in FUNCTIONS.values():
        module = sys.modules.get(module_name)
        logger = getattr(module, "logger", None)
        handler = getattr(logger, "logger_handler", None)
        if isinstance(handler, logging.StreamHandler):
            streams[module_name] = handler.stream
    return streams


def test_a_local_run_leaves_the_process_as_it_found_it(run_local, write_workflow):
    # Given the process as the test suite has it (the handlers imported, with their loggers)
    for module_name in FUNCTIONS.values():
        _module(module_name)
    stdout, environment, session = sys.stdout, dict(os.environ), boto3.DEFAULT_SESSION
    streams = _handler_streams()
    werkzeug_level = logging.getLogger("werkzeug").level
    filters = list(__import__("warnings").filters)
    thresholds_before = gc.get_threshold()
    assert gc.isenabled()  # as in any process (no earlier test left the collector off)
    children = _children()
    seen: dict[str, Any] = {}

    def during(_: dict[str, Any]) -> None:  # what the run installs, seen while it goes
        seen.setdefault("patches", stepspot_patches())
        seen.setdefault("run tables here", {os.environ["STEPSPOT_STATE_TABLE"]} & _tables_here())
        seen.setdefault("stdout", sys.stdout)
        seen.setdefault("collector", (gc.isenabled(), gc.get_freeze_count(), gc.get_threshold()))

    # When a workflow runs locally
    path = write_workflow([sleep_task("a"), sleep_task("b", depends_on=["a"])], "contained")
    summary = run_local(path, on_progress=during)
    assert summary.status == "SUCCEEDED", summary.cause

    # Then moto was patched and stdout routed while it ran,
    assert "DynamoDBBackend.put_item" in seen["patches"] and "retrier_decl.time" in seen["patches"]
    # DynamoDB served by a process of its own (this process's moto never held the run's tables),
    assert "DynamoHandler._dispatch" in seen["patches"]
    assert seen["run tables here"] == set()
    assert isinstance(seen["stdout"], OutputRouter)
    # and the set-up's objects frozen out of the collections, the collector on
    enabled, frozen, thresholds = seen["collector"]
    assert enabled and frozen > 100_000 and thresholds[0] == RUN_GC_THRESHOLD
    # and afterwards moto is unpatched, no process of the run is left, stdout and every handler logger's
    # stream are what they were,
    assert stepspot_patches() == []
    assert _children() == children
    assert sys.stdout is stdout
    assert _handler_streams() == streams
    # the environment is exactly as before (nothing the engine set is left),
    assert {k: v for k, v in os.environ.items() if environment.get(k) != v} == {}
    assert sorted(set(environment) - set(os.environ)) == []
    # boto3's default session, logging and warnings are as they were
    assert boto3.DEFAULT_SESSION is session
    assert logging.getLogger("werkzeug").level == werkzeug_level
    assert __import__("warnings").filters == filters
    # the collector is on with nothing frozen, as before,
    assert gc.isenabled() and gc.get_freeze_count() == 0 and gc.get_threshold() == thresholds_before
    # and no handler holds a cache built for the run
    for module_name in FUNCTIONS.values():
        for value in vars(sys.modules[module_name]).values():
            info = getattr(value, "cache_info", None)
            if callable(info) and getattr(value, "__module__", None) == module_name:
                assert info().currsize == 0, f"{module_name}.{value.__name__} still caches"


def test_every_handler_cache_is_reset_through_the_registry(monkeypatch: pytest.MonkeyPatch):
    from moto import mock_aws

    from stepspot.capacity_sources import offline_capacity
    from stepspot.handlers import _cache, _plans
    from stepspot.local.engine import LocalEngine
    from stepspot.local.resources import LocalResources
    from stepspot.policy import DEFAULT_POLICY

    # Given every handler module imported; its cold-start caches are found here by looking (so the
    # registry's completeness is checked), and filled as a first invocation fills them
    cached = [
        value
        for module_name in FUNCTIONS.values()
        for value in vars(_module(module_name)).values()
        if callable(getattr(value, "cache_clear", None)) and getattr(value, "__module__", None) == module_name
    ]
    assert len(cached) >= len(FUNCTIONS)
    environment = LocalEngine()._lambda_environment(LocalResources(), DEFAULT_POLICY, 5000, offline_capacity("dev"))
    arns = {"STEPSPOT_JOB_DEFINITION_ARN": "arn:aws:batch:us-east-1:123456789012:job-definition/job:1"}
    arns["STEPSPOT_MNP_JOB_DEFINITION_ARN"] = arns["STEPSPOT_JOB_DEFINITION_ARN"]  # the engine sets both later
    for name, value in {**environment, **arns}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        for value in cached:
            value()
    monkeypatch.setitem(_plans._headers, "s3://bucket/plan.json", object())
    monkeypatch.setitem(_plans._shards, ("s3://bucket/plan.json", 0), object())
    assert all(value.cache_info().currsize == 1 for value in cached)
    # When the registry resets
    _cache.reset_all()
    # Then every one of them is empty, the plan cache too
    assert {value.__qualname__: value.cache_info().currsize for value in cached} == dict.fromkeys(
        (value.__qualname__ for value in cached), 0
    )
    assert not _plans._headers and not _plans._shards


def test_the_collector_is_left_as_it_was_found() -> None:
    """Off during a run's set-up, frozen objects after it; on exit, on or off as it was, nothing frozen."""
    from stepspot._gc import collected_after_setup

    for enabled in (True, False):
        (gc.enable if enabled else gc.disable)()
        try:
            thresholds = gc.get_threshold()
            with collected_after_setup() as setup_done:
                assert not gc.isenabled()  # the set-up's long-lived objects are not scanned
                setup_done()
                assert gc.isenabled() is enabled and gc.get_freeze_count() > 0
                assert gc.get_threshold() == (RUN_GC_THRESHOLD, *thresholds[1:])
            assert gc.isenabled() is enabled and gc.get_freeze_count() == 0 and gc.get_threshold() == thresholds
            with pytest.raises(RuntimeError), collected_after_setup():  # a failed set-up puts it back too
                raise RuntimeError("set-up failed")
            assert gc.isenabled() is enabled and gc.get_freeze_count() == 0
        finally:
            gc.enable()
