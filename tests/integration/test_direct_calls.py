"""Local mode's transport without HTTP (stepspot.local.direct_calls) answers exactly what moto answers over
its HTTP stub: the same results, the same errors (code, message, cancellation reasons), for DynamoDB and
Step Functions, with moto's DynamoDB in this process or in its own (stepspot.local.dynamodb_process); other
services are left to the stub; the structure-check memos of moto_patches still refuse every bad
expression, every time."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from stepspot.local import dynamodb_process, moto_patches
from stepspot.local.direct_calls import DirectCalls, direct_calls
from stepspot.local.resources import create_table

VOLATILE = ("RequestId", "HTTPHeaders", "RetryAttempts")


@pytest.fixture(params=["in-process", "forked"])
def sessions(request: pytest.FixtureRequest) -> Iterator[tuple[Any, Any]]:
    """(a session answered over moto's HTTP stub, one answered without HTTP), on the same backends: moto's
    in this process, or (``forked``) DynamoDB in its own process, as a local run has it."""
    config: Any = {"stepfunctions": {"execute_state_machine": False}}
    with moto_patches.patched(), mock_aws(config=config), contextlib.ExitStack() as stack:
        elsewhere = {}
        if request.param == "forked":
            elsewhere["dynamodb"] = stack.enter_context(dynamodb_process.forked()).call
        stubbed = boto3.session.Session(region_name="us-east-1")
        direct = boto3.session.Session(region_name="us-east-1")
        with direct_calls(direct.events, elsewhere):
            create_table(stubbed.client("dynamodb"), "t")
            yield stubbed, direct


def _outcome(call: Callable[[], Any]) -> Any:
    """A call's result or error, without what differs between any two calls (request id, headers, date)."""
    try:
        result = call()
    except ClientError as exc:
        response = dict(exc.response)
        response["ResponseMetadata"] = _stable(response.get("ResponseMetadata", {}))
        return ("error", type(exc).__name__, str(exc), response)
    if isinstance(result, dict) and "ResponseMetadata" in result:
        result = {**result, "ResponseMetadata": _stable(result["ResponseMetadata"])}
    return ("ok", result)


def _stable(metadata: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metadata.items() if k not in VOLATILE}


def _same(stubbed: Any, direct: Any, service: str, operation: str, **params: Any) -> Any:
    """Make the call both ways (the stubbed one first); assert identical outcomes; return it."""
    expected = _outcome(lambda: getattr(stubbed.client(service), operation)(**params))
    got = _outcome(lambda: getattr(direct.client(service), operation)(**params))
    assert got == expected
    return got


def _item(pk: str, sk: str, **attrs: Any) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}, **attrs}


def test_dynamodb_answers_and_errors_are_moto_s(sessions: tuple[Any, Any]) -> None:
    stubbed, direct = sessions
    key = {"pk": {"S": "w"}, "sk": {"S": "TASK#a"}}
    # Each write is made once per path on its own item, so both see the same state before the call.
    for n, session in enumerate((stubbed, direct)):
        session.client("dynamodb").put_item(
            TableName="t", Item=_item(f"w{n}", "TASK#a", v={"N": "1"}, tags={"SS": ["x"]}, blob={"B": b"\x00\xff"})
        )
    session_key = [{"pk": {"S": f"w{n}"}, "sk": {"S": "TASK#a"}} for n in range(2)]

    def both(operation: str, **params: Any) -> Any:
        results = []
        for n, session in enumerate((stubbed, direct)):
            call = {**params, "Key": session_key[n]}
            results.append(_outcome(lambda s=session, c=call: getattr(s.client("dynamodb"), operation)(**c)))
        assert results[1] == _rename(results[0], "w0", "w1")
        return results[1]

    got = both("get_item", TableName="t", ConsistentRead=True)
    assert got[1]["Item"]["blob"] == {"B": b"\x00\xff"}  # binary values survive the shortcut's parsing
    missing = _same(stubbed, direct, "dynamodb", "get_item", TableName="t", Key={**key, "sk": {"S": "missing"}})
    assert missing[1].keys() == {"ResponseMetadata"}
    updated = both(
        "update_item",
        TableName="t",
        UpdateExpression="SET #s = :s ADD v :one",
        ConditionExpression="attribute_exists(pk) AND v < :limit",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={":s": {"S": "RUNNING"}, ":one": {"N": "1"}, ":limit": {"N": "5"}},
        ReturnValues="ALL_NEW",
    )
    assert updated[1]["Attributes"]["v"] == {"N": "2"}
    failed = both(
        "update_item",
        TableName="t",
        UpdateExpression="SET v = :v",
        ConditionExpression="v > :v",
        ExpressionAttributeValues={":v": {"N": "9"}},
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    )
    assert failed[0] == "error" and failed[3]["Error"]["Code"] == "ConditionalCheckFailedException"
    assert failed[3]["ResponseMetadata"]["HTTPStatusCode"] == 400
    invalid = both("update_item", TableName="t", UpdateExpression="SET = broken")
    assert invalid[3]["Error"]["Code"] == "ValidationException"
    unknown = _same(stubbed, direct, "dynamodb", "get_item", TableName="nope", Key=key)
    assert unknown[3]["Error"]["Code"] == "ResourceNotFoundException"


def _rename(value: Any, old: str, new: str) -> Any:
    """``value`` with every string ``old`` in it (keys, values, messages) replaced by ``new``."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {_rename(k, old, new): _rename(v, old, new) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_rename(v, old, new) for v in value)
    return value


def test_a_cancelled_transaction_reports_the_same_reasons(sessions: tuple[Any, Any]) -> None:
    stubbed, direct = sessions
    stubbed.client("dynamodb").put_item(TableName="t", Item=_item("w", "META"))
    items = [
        {"Put": {"TableName": "t", "Item": _item("w", "TASK#b"), "ConditionExpression": "attribute_not_exists(pk)"}},
        {
            "Update": {
                "TableName": "t",
                "Key": {"pk": {"S": "w"}, "sk": {"S": "META"}},
                "UpdateExpression": "SET running = :one",
                "ConditionExpression": "attribute_not_exists(running)",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        },
    ]
    stubbed.client("dynamodb").transact_write_items(TransactItems=items)
    got = _same(stubbed, direct, "dynamodb", "transact_write_items", TransactItems=items)
    assert got[3]["Error"]["Code"] == "TransactionCanceledException"
    assert [r["Code"] for r in got[3]["CancellationReasons"]] == ["ConditionalCheckFailed"] * 2


def test_queries_page_alike(sessions: tuple[Any, Any]) -> None:
    stubbed, direct = sessions
    client = stubbed.client("dynamodb")
    for i in range(7):
        client.put_item(TableName="t", Item=_item("q", f"TASK#{i}", n={"N": str(i)}))
    params: dict[str, Any] = {
        "TableName": "t",
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
        "FilterExpression": "n >= :two",
        "ExpressionAttributeValues": {":pk": {"S": "q"}, ":prefix": {"S": "TASK#"}, ":two": {"N": "2"}},
        "Limit": 3,
    }
    page = _same(stubbed, direct, "dynamodb", "query", **params)
    _same(stubbed, direct, "dynamodb", "query", **params, ExclusiveStartKey=page[1]["LastEvaluatedKey"])


def test_step_functions_answers_and_errors_are_moto_s(sessions: tuple[Any, Any]) -> None:
    stubbed, direct = sessions
    definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
    arn = stubbed.client("stepfunctions").create_state_machine(
        name="sm", definition=definition, roleArn="arn:aws:iam::123456789012:role/x"
    )["stateMachineArn"]
    started = direct.client("stepfunctions").start_execution(stateMachineArn=arn, name="run-1", input="{}")
    _same(stubbed, direct, "stepfunctions", "describe_execution", executionArn=started["executionArn"])
    _same(stubbed, direct, "stepfunctions", "list_executions", stateMachineArn=arn)
    again = _same(stubbed, direct, "stepfunctions", "start_execution", stateMachineArn=arn + "x", name="n")
    assert again[0] == "error"
    missing = _same(
        stubbed,
        direct,
        "stepfunctions",
        "describe_execution",
        executionArn=arn.replace(":stateMachine:", ":execution:") + ":none",
    )
    assert missing[3]["Error"]["Code"] == "ExecutionDoesNotExist"


def test_other_services_and_protocols_are_left_to_moto_s_stub(sessions: tuple[Any, Any]) -> None:
    _, direct = sessions
    hook = DirectCalls()
    s3 = direct.client("s3")
    model = s3.meta.service_model.operation_model("ListBuckets")
    assert hook(model=model, params={"method": "GET", "url": "https://s3.amazonaws.com/", "body": b""}) is None
    assert s3.list_buckets()["Buckets"] == []  # answered by the stub


def test_a_structure_check_that_failed_fails_again_and_a_passed_one_still_sees_new_names(
    sessions: tuple[Any, Any],
) -> None:
    _, direct = sessions
    client = direct.client("dynamodb")
    client.put_item(TableName="t", Item=_item("s", "TASK#a"))
    key = {"pk": {"S": "s"}, "sk": {"S": "TASK#a"}}
    for _ in range(2):  # an overlapping path is refused every time, not only the first
        with pytest.raises(ClientError, match="Two document paths overlap"):
            client.update_item(
                TableName="t",
                Key=key,
                UpdateExpression="SET a = :v, a.b = :v",
                ExpressionAttributeValues={":v": {"S": "x"}},
            )

    def set_named(name: str) -> Any:
        return client.update_item(
            TableName="t",
            Key=key,
            UpdateExpression="SET #n = :v",
            ExpressionAttributeNames={"#n": name},
            ExpressionAttributeValues={":v": {"S": "x"}},
        )

    set_named("a")
    # The same parsed expression, now naming a key attribute: the key check runs again and refuses it.
    with pytest.raises(ClientError, match="Cannot update attribute sk"):
        set_named("sk")


def test_the_direct_sessions_calls_never_reach_the_http_stub(
    sessions: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.core.botocore_stubber import BotocoreStubber

    _, direct = sessions
    stubbed_calls: list[str] = []
    original = BotocoreStubber.process_request

    def counting(self: Any, request: Any) -> Any:
        stubbed_calls.append(request.url)
        return original(self, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", counting)
    direct.client("dynamodb").put_item(TableName="t", Item=_item("d", "META"))
    direct.client("stepfunctions").list_state_machines()
    assert stubbed_calls == []
    direct.client("s3").list_buckets()
    assert len(stubbed_calls) == 1


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        ("GetItem", {"TableName": "t", "Key": {"pk": {"S": "w"}, "sk": {"S": "B"}}, "ConsistentRead": True}),
        (
            "UpdateItem",
            {
                "TableName": "t",
                "Key": {"pk": {"S": "w"}, "sk": {"S": "TASK#a"}},
                "UpdateExpression": "SET #s = :s, m = :m ADD n :one",
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeNames": {"#s": "state"},
                "ExpressionAttributeValues": {
                    ":s": {"S": 'a "B": in a string'},  # escaped in the body: no binary member
                    ":m": {"M": {"l": {"L": [{"N": "1.5"}, {"BOOL": True}, {"NULL": True}, {"SS": ["x", "y"]}]}}},
                    ":one": {"N": "1"},
                },
                "ReturnValues": "ALL_NEW",
            },
        ),
        (
            "TransactWriteItems",
            {
                "TransactItems": [
                    {"Put": {"TableName": "t", "Item": {"pk": {"S": "w"}, "bin": {"B": b"\x00\xff"}}}},
                    {"Delete": {"TableName": "t", "Key": {"pk": {"S": "w"}, "sk": {"S": "x"}}}},
                ]
            },
        ),
        ("Query", {"TableName": "t", "KeyConditionExpression": "pk = :p", "Limit": 5, "ExclusiveStartKey": {}}),
        ("PutItem", {"TableName": "t", "Item": {"pk": {"S": "w"}, "bins": {"BS": [b"a", b"b"]}}}),
    ],
)
def test_a_request_is_parsed_exactly_as_moto_parses_it(operation: str, params: dict[str, Any]) -> None:
    # Given a request serialised by botocore, as a client sends it
    import botocore.session
    from botocore.serialize import create_serializer
    from moto.core.parse import PROTOCOL_PARSERS

    from stepspot.local.direct_calls import _parsed_request

    model = botocore.session.get_session().get_service_model("dynamodb").operation_model(operation)
    body = create_serializer("json").serialize_to_request(params, model)["body"]
    moto_request: Any = {"method": "POST", "values": {}, "headers": {}, "body": body, "url_path": "/", "url_params": {}}
    # Then the parameters the handler reads are moto's own, binary values decoded (json alone would keep base64)
    expected = PROTOCOL_PARSERS["json"](model, map_type=dict).parse(moto_request)
    assert _parsed_request(model, dict, {}, body) == expected
    if "bin" in str(params):  # the binary values: what json alone gives differs
        assert expected != json.loads(body)
