"""Local mode's DynamoDB in a process of its own (stepspot.local.dynamodb_process): its data lives only in
the child and ends with it; every caller gets its own answer, however many call at once; a bug, a dead
child or a closed one is a clear error in the caller, never a hang; Ctrl-C is the engine's to handle.
(That its answers are moto's, the same as in-process, is tests/integration/test_direct_calls.py's.)"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID

from stepspot.local import dynamodb_process, moto_patches
from stepspot.local.direct_calls import DirectCalls, direct_calls
from stepspot.local.dynamodb_process import DynamoDBProcess, DynamoDBProcessError
from stepspot.local.resources import create_table

REGION = "us-east-1"


@contextlib.contextmanager
def _served() -> Iterator[tuple[DynamoDBProcess, Any]]:
    """(the DynamoDB process, a session whose DynamoDB calls it answers without HTTP)."""
    with moto_patches.patched(), mock_aws(), dynamodb_process.forked() as process:
        session = boto3.session.Session(region_name=REGION)
        with direct_calls(session.events, {"dynamodb": process.call}):
            yield process, session


def _item(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": "META"}, "value": {"S": f"value of {pk}"}}


def _tables_in_this_process() -> set[str]:
    from moto.dynamodb.models import dynamodb_backends

    return set(dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].tables)


def test_the_data_lives_in_the_child_and_ends_with_it() -> None:
    with _served() as (process, session):
        client = session.client("dynamodb")
        create_table(client, "forked-t")  # over moto's HTTP stub: its dispatch asks the child too
        client.put_item(TableName="forked-t", Item=_item("a"))
        assert client.get_item(TableName="forked-t", Key={"pk": {"S": "a"}, "sk": {"S": "META"}})["Item"] == _item("a")
        # Nothing of it is in this process's moto
        assert "forked-t" not in _tables_in_this_process()
        pid = process.pid
    # After the scope the child has ended and is reaped (no zombie), and asking it is a clear error.
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    with pytest.raises(DynamoDBProcessError, match="has ended"):
        process.call("ListTables", {"url": f"https://dynamodb.{REGION}.amazonaws.com/", "body": b"{}"})


def test_callers_in_more_threads_than_connections_each_get_their_own_answer() -> None:
    threads_count = dynamodb_process.CONNECTIONS + 8  # some wait for a free connection
    with _served() as (_, session):
        create_table(session.client("dynamodb"), "t")
        wrong: list[str] = []
        start = threading.Barrier(threads_count)

        def work(index: int) -> None:
            client = session.client("dynamodb")
            start.wait()
            for round_ in range(10):
                pk = f"thread-{index}-{round_}"
                client.put_item(TableName="t", Item=_item(pk))
                got = client.get_item(TableName="t", Key={"pk": {"S": pk}, "sk": {"S": "META"}})["Item"]
                if got != _item(pk):
                    wrong.append(f"{pk}: {got}")

        threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads)
        assert wrong == []
        assert session.client("dynamodb").scan(TableName="t", Select="COUNT")["Count"] == threads_count * 10


def test_a_bug_in_the_child_is_raised_in_the_caller_with_the_child_s_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(handler: Any, model: Any, params: dict[str, Any]) -> Any:
        raise ZeroDivisionError("a bug in the emulation")

    monkeypatch.setattr(DirectCalls, "answer", staticmethod(broken))  # before the fork: the child has it
    with _served() as (_, session):
        with pytest.raises(DynamoDBProcessError, match="ZeroDivisionError: a bug in the emulation") as raised:
            session.client("dynamodb").list_tables()
        assert "Traceback" in str(raised.value) and "broken" in str(raised.value)


def test_a_child_that_died_fails_each_call_at_once_and_the_scope_still_ends() -> None:
    with _served() as (process, session):
        os.kill(process.pid, signal.SIGKILL)
        for _ in range(2):
            with pytest.raises(DynamoDBProcessError, match="ended while answering"):
                session.client("dynamodb").list_tables()


def test_ctrl_c_is_the_engine_s_to_handle_the_child_ignores_it() -> None:
    with _served() as (process, session):
        os.kill(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends the whole process group
        assert session.client("dynamodb").list_tables()["TableNames"] == []
