"""Local mode's Lambda functions in processes of their own (stepspot.local.lambda_processes): a function
answers from its own process, one invocation at a time; its AWS calls are answered by the engine's
services, not by the process's own stale copy of moto; a handler's exception reaches the engine under its
own class name, with its message and stack; the process ends with its scope."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from stepspot import call_log
from stepspot.local import lambda_processes, lambdas, moto_patches
from stepspot.local.lambda_processes import FunctionError, FunctionProcess

HANDLERS = "lambda_process_handlers"  # tests/integration/lambda_process_handlers.py


@contextlib.contextmanager
def _functions(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, keys: tuple[str, ...]
) -> Iterator[tuple[dict[str, FunctionProcess], Any]]:
    """(the processes of the functions ``keys``, each running the stand-in handlers, the engine's answer to
    their calls)."""
    for key in keys:
        monkeypatch.setitem(lambdas.FUNCTIONS, key, HANDLERS)
    # The stand-in's calls are no function's real calls: left out of the IAM evaluation (tests/iam)
    monkeypatch.delenv(call_log.CALL_LOG_ENV, raising=False)
    with moto_patches.patched(), mock_aws():
        session = boto3.session.Session(region_name="us-east-1")
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
        connections = {key: socket.socketpair()[1] for key in keys}  # unused by these handlers
        with lambda_processes.forked(connections, tmp_path / "lambdas.log", session.events) as processes:
            yield processes, lambda_processes.server(session.events, session._session)


@contextlib.contextmanager
def _function(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[FunctionProcess, Any]]:
    """(the scheduler function's process running the stand-in handlers, the engine's answer to its calls)."""
    with _functions(monkeypatch, tmp_path, ("scheduler",)) as (processes, serve):
        yield processes["scheduler"], serve


def test_a_function_answers_from_its_own_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with _function(monkeypatch, tmp_path) as (process, serve):
        result, metrics = process.invoke({"action": "whoami"}, twice=False, serve=serve)
        assert result["pid"] == process.pid != os.getpid()
        assert result["function"] == "scheduler" and result["event"] == {"action": "whoami"}
        assert metrics == {}


def test_its_aws_calls_are_answered_by_the_engine_s_services(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with _function(monkeypatch, tmp_path) as (process, serve):
        # A bucket made after the fork exists only in the engine's moto
        boto3.DEFAULT_SESSION.client("s3").create_bucket(Bucket="made-after-the-fork")  # type: ignore[union-attr]
        result, _ = process.invoke({"action": "buckets"}, twice=False, serve=serve)
        assert result == ["made-after-the-fork"]


def test_a_handler_s_exception_keeps_its_class_name_message_and_stack(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with _function(monkeypatch, tmp_path) as (process, serve):
        with pytest.raises(FunctionError, match="no such thing: a key") as raised:
            process.invoke({"action": "fail", "what": "a key"}, twice=False, serve=serve)
        assert type(raised.value).__name__ == "LookupError"  # the ASL error name the interpreter makes of it
        assert any("lambda_handler" in frame for frame in raised.value.trace)
        # and the function still answers the next invocation
        assert process.invoke({"action": "whoami"}, twice=False, serve=serve)[0]["pid"] == process.pid


def test_a_function_s_process_builds_its_cold_start_state_before_its_first_event(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with _function(monkeypatch, tmp_path) as (process, serve):
        result, _ = process.invoke({"action": "runtime_built"}, twice=False, serve=serve)
        assert result == {"built_before": True, "by": process.pid}


def test_an_engine_call_while_it_initialises_is_refused_and_the_first_invocation_builds_afresh(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Nothing answers a function's calls outside an invocation: sent, the call would take the engine's next
    # invocation for its answer. Refused, it fails the early build, which the first invocation does again.
    monkeypatch.setenv("STAND_IN_RUNTIME", "calls_aws")
    with _function(monkeypatch, tmp_path) as (process, serve):
        result, _ = process.invoke({"action": "runtime_built"}, twice=False, serve=serve)
        assert result == {"built_before": False, "by": process.pid}
        assert process.invoke({"action": "whoami"}, twice=False, serve=serve)[0]["pid"] == process.pid


def test_the_process_ends_with_its_scope(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with _function(monkeypatch, tmp_path) as (process, _):
        pid = process.pid
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def test_a_released_process_leaves_before_its_scope_ends(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with _function(monkeypatch, tmp_path) as (process, _):
        lambda_processes.release({"scheduler": process})
        deadline = time.monotonic() + 5.0
        while os.waitpid(process.pid, os.WNOHANG) == (0, 0):  # reaped here: it left on its own
            assert time.monotonic() < deadline, "the released process is still there"
            time.sleep(0.01)


def test_an_observer_s_process_yields_the_cores_to_the_task_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert "workflow_monitor" in lambdas.OBSERVERS and "scheduler" not in lambdas.OBSERVERS
    with _functions(monkeypatch, tmp_path, ("scheduler", "workflow_monitor")) as (processes, serve):
        for process in processes.values():  # answered: it serves, at the priority it set first
            process.invoke({"action": "whoami"}, twice=False, serve=serve)
        engine = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, processes["scheduler"].pid) == engine
        observer = os.getpriority(os.PRIO_PROCESS, processes["workflow_monitor"].pid)
        assert observer == min(19, engine + lambdas.OBSERVER_NICENESS)
