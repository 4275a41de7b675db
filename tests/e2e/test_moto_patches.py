"""Guards of the moto 5.2.5 patches local mode depends on (functions/stepspot/local/moto_patches.py):
if moto's internals move, these fail instead of local mode silently misbehaving."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import boto3
import pytest
from moto import mock_aws

from stepspot.local import moto_patches

CONFIG: Any = {"stepfunctions": {"execute_state_machine": True}, "batch": {"use_docker": False}}


class FlakyBatch:
    """The first job fails (as Batch reports it), every later one succeeds."""

    def __init__(self) -> None:
        self.submitted: list[dict[str, Any]] = []

    def submit_job(self, **params: Any) -> dict[str, Any]:
        self.submitted.append(params)
        return {"JobId": f"job-{len(self.submitted)}"}

    def describe_jobs(self, jobs: list[str], **_: Any) -> dict[str, Any]:
        status = "FAILED" if jobs[0] == "job-1" else "SUCCEEDED"
        return {"jobs": [{"jobId": jobs[0], "status": status, "statusReason": "Essential container in task exited"}]}


def _run(definition: dict[str, Any], batch: Any, execution_ended: Any = None) -> dict[str, Any]:
    hooks = moto_patches.hooked(
        object(), batch, time_scale=1000, sync_poll_seconds=0.01, execution_ended=execution_ended
    )
    with mock_aws(config=CONFIG), hooks:
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(
            name="guard", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/x"
        )["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=arn, name="run-1", input="{}")["executionArn"]
        for _ in range(400):
            described = sfn.describe_execution(executionArn=execution)
            if described["status"] != "RUNNING":
                return described
            time.sleep(0.02)
    pytest.fail("the execution did not finish")


def test_the_pinned_moto_still_has_every_patch_point():
    moto_patches.check_patch_points()


def test_a_retried_sync_batch_task_gets_a_fresh_callback_and_succeeds():
    # Given a .sync job whose first attempt fails and a Retry on States.TaskFailed (bug 1 in 5.2.5)
    definition = {
        "StartAt": "RunJob",
        "States": {
            "RunJob": {
                "Type": "Task",
                "Resource": "arn:aws:states:::batch:submitJob.sync",
                "Parameters": {
                    "JobName": "j",
                    "JobQueue": "q",
                    "JobDefinition": "d",
                    "NodeOverrides": {"NumNodes": 2},
                    "Tags": {"stepspot:task": "t"},
                    "PropagateTags": True,
                },
                "Retry": [{"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 30, "MaxAttempts": 1}],
                "End": True,
            }
        },
    }
    batch = FlakyBatch()
    described = _run(definition, batch)
    # Then the retry ran (its 30 s interval scaled down) and the execution succeeded
    assert described["status"] == "SUCCEEDED"
    assert len(batch.submitted) == 2
    # and multi-node overrides reached Batch (moto drops unknown submitJob parameters)
    assert batch.submitted[0]["NodeOverrides"] == {"NumNodes": 2}
    # and so did the cost allocation tags and their propagation to the ECS tasks
    assert (batch.submitted[0]["Tags"], batch.submitted[0]["PropagateTags"]) == ({"stepspot:task": "t"}, True)


def test_states_errors_keep_their_name_through_a_parallel_branch():
    # Bug 2: a States.* error leaving a branch became States.Runtime
    definition = {
        "StartAt": "Branches",
        "States": {
            "Branches": {
                "Type": "Parallel",
                "Branches": [{"StartAt": "Boom", "States": {"Boom": {"Type": "Fail", "Error": "States.TaskFailed"}}}],
                "Catch": [{"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.caught", "Next": "Caught"}],
                "End": True,
            },
            "Caught": {"Type": "Succeed"},
        },
    }
    assert _run(definition, FlakyBatch())["status"] == "SUCCEEDED"


def test_jsonata_fails_with_a_clear_message():
    with moto_patches.patched():
        from moto.stepfunctions.parser.asl.jsonata import jsonata

        with pytest.raises(RuntimeError, match="JSONata is not supported by stepspot's local mode"):
            jsonata._eval_jsonata("$x")  # type: ignore[misc]
    # and only while local mode runs: moto's own (lazily bound) evaluator is back afterwards
    assert getattr(jsonata._eval_jsonata, "__module__", None) != moto_patches.__name__


class TokenLambda:
    """A `.waitForTaskToken` Lambda that only records the task token it was given."""

    def __init__(self) -> None:
        self.tokens: list[str] = []

    def invoke(self, **params: Any) -> dict[str, Any]:
        payload = params["Payload"]
        self.tokens.append(json.loads(payload if isinstance(payload, (str, bytes)) else json.dumps(payload))["token"])
        return {"StatusCode": 200, "Payload": io.BytesIO(b"{}")}


def test_send_task_failure_keeps_its_cause():
    # Fix 4: the workflow's failure reason travels in SendTaskFailure's cause; moto's API layer dropped it.
    definition = {
        "StartAt": "Wait",
        "States": {
            "Wait": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": "scheduler", "Payload": {"token.$": "$$.Task.Token"}},
                "End": True,
            }
        },
    }
    lambdas = TokenLambda()
    with mock_aws(config=CONFIG), moto_patches.hooked(lambdas, FlakyBatch(), time_scale=1000, sync_poll_seconds=0.01):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(
            name="token", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/x"
        )["stateMachineArn"]
        execution = sfn.start_execution(stateMachineArn=arn, name="run-1", input="{}")["executionArn"]
        for _ in range(400):
            if lambdas.tokens:
                break
            time.sleep(0.02)
        assert lambdas.tokens, "the waitForTaskToken Lambda was never invoked"
        sfn.send_task_failure(taskToken=lambdas.tokens[0], error="TaskFailed", cause="task run: exit 3 on attempt 2")
        for _ in range(400):
            described = sfn.describe_execution(executionArn=execution)
            if described["status"] != "RUNNING":
                break
            time.sleep(0.02)
    assert (described["status"], described.get("error"), described.get("cause")) == (
        "FAILED",
        "TaskFailed",
        "task run: exit 3 on attempt 2",
    )


def test_sessions_share_one_data_loader_only_while_patched():
    # Given two sessions made during a local run, and two made after it
    with moto_patches.patched():
        during = [boto3.session.Session()._session.get_component("data_loader") for _ in range(2)]
    after = [boto3.session.Session()._session.get_component("data_loader") for _ in range(2)]
    # Then the run's sessions parse each botocore data file once (one loader), the others as botocore does
    assert during[0] is during[1]
    assert after[0] is not after[1] and after[0] is not during[0]


def test_moto_reads_its_service_models_through_the_run_s_data_loader():
    import moto.core.utils

    # Given a local run's patches: moto's responses load the models they serialise with through the loader
    # the run's sessions share (not one of their own, which walked the data directories and parsed again)
    with moto_patches.patched():
        session_loader = boto3.session.Session()._session.get_component("data_loader")
        assert moto.core.utils.create_loader() is session_loader
    # And after it, moto makes its own again
    assert moto.core.utils.create_loader() is not session_loader


def test_services_are_listed_as_botocore_lists_them_in_one_scan() -> None:
    """The one-scan listing gives botocore's answer for every kind of data file (boto3's resources too)."""
    import os

    from botocore.loaders import Loader

    paths = [os.path.join(os.path.dirname(m.__file__), "data") for m in (__import__("botocore"), boto3)]
    kinds = ["service-2", "paginators-1", "waiters-2", "endpoint-rule-set-1", "resources-1", "examples-1", "none-9"]
    plain = {kind: Loader(extra_search_paths=paths).list_available_services(kind) for kind in kinds}
    with moto_patches.patched():
        assert Loader.list_available_services.__module__ == moto_patches.__name__
        scanned = Loader(extra_search_paths=paths)
        assert {kind: scanned.list_available_services(kind) for kind in kinds} == plain
    assert len(plain["service-2"]) > 300 and plain["resources-1"] and plain["none-9"] == []
    assert Loader.list_available_services.__module__ != moto_patches.__name__


@pytest.mark.parametrize(("final", "status"), [({"Type": "Succeed"}, "SUCCEEDED"), ({"Type": "Fail"}, "FAILED")])
def test_the_engine_hears_each_execution_end_with_its_status_and_input(final: dict[str, Any], status: str):
    # Given the engine listening for execution ends (it publishes them as Step Functions does to EventBridge)
    ended: list[dict[str, Any]] = []
    definition = {"StartAt": "End", "States": {"End": final}}
    # When an execution ends
    described = _run(definition, FlakyBatch(), lambda execution: ended.append(dict(execution.to_describe_output())))
    # Then the listener heard it once, its status already set, with the input the monitor reads
    assert described["status"] == status
    assert [(e["name"], e["status"], e["input"]) for e in ended] == [("run-1", status, "{}")]


def test_state_data_is_copied_as_json_and_anything_else_deeply() -> None:
    import datetime

    # Plain JSON data (copied in C), and data with something else inside (copied value by value)
    for extra in ({}, {"when": datetime.datetime(2026, 1, 1), "n": __import__("decimal").Decimal("1.5")}):
        data: dict[str, Any] = {"a": [1, 2.5, {"b": None, "c": True}], "s": "x", "é": -0.0, **extra}
        data["twice"] = [data["a"], data["a"]]
        copied = moto_patches.json_data_copy(data)
        assert copied == data and [type(v) for v in copied.values()] == [type(v) for v in data.values()]
        copied["a"][2]["b"] = "changed"
        copied["twice"][0].append(3)
        assert data["a"] == [1, 2.5, {"b": None, "c": True}]  # nothing of the original is shared
        assert copied["twice"][1] == [1, 2.5, {"b": None, "c": True}]  # JSON values: copies share nothing


def test_the_interpreter_copies_state_data_with_the_json_copy_only_while_patched() -> None:
    import importlib

    states = importlib.import_module("moto.stepfunctions.parser.asl.eval.states")
    with moto_patches.patched():
        assert states.copy.deepcopy is moto_patches.json_data_copy
    assert states.copy is __import__("copy")


def test_the_emulator_server_serves_and_stops_within_a_poll() -> None:
    import urllib.request

    from stepspot.local.engine import _emulator_server

    server = _emulator_server(0)
    server.start()
    host, port = server.get_host_and_port()
    with urllib.request.urlopen(f"http://{host}:{port}/moto-api/data.json", timeout=5) as answer:
        assert answer.status == 200
    time.sleep(0.2)  # let serve_forever settle into a poll wait
    began = time.monotonic()
    server.stop()
    assert time.monotonic() - began < 0.25  # werkzeug's default poll would take up to 0.5 s
