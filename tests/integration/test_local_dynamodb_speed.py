"""Local mode's DynamoDB speed-ups (stepspot.local.moto_dynamodb) answer exactly what moto answers: a
table query that reads only its partition, an update expression parsed once."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import boto3
import pytest
from moto import mock_aws

from stepspot.local import moto_dynamodb, moto_patches
from stepspot.local.resources import create_table


@pytest.fixture
def table() -> Any:
    with moto_patches.patched(), mock_aws():
        created = _fresh_table("t")
        with created.batch_writer() as batch:
            for pk in ("a", "b", "c"):
                for i in range(30):
                    batch.put_item(Item={"pk": pk, "sk": f"{'TASK' if i % 2 else 'EVENT'}#{i:03d}", "n": i})
        yield created


def _all_pages(table: Any, **kwargs: Any) -> list[tuple[str, str]]:
    keys: list[tuple[str, str]] = []
    while True:
        page = table.query(**kwargs)
        keys += [(item["pk"], item["sk"]) for item in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return keys
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_a_query_returns_its_partition_in_order_across_pages(table: Any) -> None:
    from boto3.dynamodb.conditions import Attr, Key

    expected = sorted(("b", f"{'TASK' if i % 2 else 'EVENT'}#{i:03d}") for i in range(30))
    assert _all_pages(table, KeyConditionExpression=Key("pk").eq("b"), Limit=7) == expected
    backwards = _all_pages(table, KeyConditionExpression=Key("pk").eq("b"), Limit=4, ScanIndexForward=False)
    assert backwards == expected[::-1]
    tasks = _all_pages(table, KeyConditionExpression=Key("pk").eq("c") & Key("sk").begins_with("TASK#"), Limit=5)
    assert tasks == [("c", f"TASK#{i:03d}") for i in range(1, 30, 2)]
    filtered = _all_pages(table, KeyConditionExpression=Key("pk").eq("a"), FilterExpression=Attr("n").gte(25))
    assert filtered == sorted(("a", f"{'TASK' if i % 2 else 'EVENT'}#{i:03d}") for i in range(25, 30))
    assert _all_pages(table, KeyConditionExpression=Key("pk").eq("missing")) == []


def test_a_query_does_not_sort_the_whole_table(table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from boto3.dynamodb.conditions import Key
    from moto.dynamodb.models.dynamo_type import DynamoType

    compared: list[int] = []
    real_lt = DynamoType.__lt__

    def counting_lt(self: Any, other: Any) -> Any:
        compared.append(1)
        return real_lt(self, other)

    monkeypatch.setattr(DynamoType, "__lt__", counting_lt)
    table.query(KeyConditionExpression=Key("pk").eq("b"))
    # Sorting the 30 items of one partition takes well under 300 comparisons; the 90 of the table more.
    print("COMPARED", len(compared))
    assert 0 < len(compared) < 300


def test_the_same_update_expression_gives_the_same_results(table: Any) -> None:
    for value in (1, 2, 3):
        table.update_item(
            Key={"pk": "a", "sk": "TASK#001"},
            UpdateExpression="SET #s = :s ADD attempts :one",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={":s": f"S{value}", ":one": 1},
        )
    item = table.get_item(Key={"pk": "a", "sk": "TASK#001"})["Item"]
    assert (item["state"], item["attempts"]) == ("S3", 3)
    with pytest.raises(Exception, match="ValidationException"):
        table.update_item(Key={"pk": "a", "sk": "TASK#001"}, UpdateExpression="SET = broken")


def _calls(client: Any) -> list[tuple[str, dict[str, Any]]]:
    key = {"pk": {"S": "w"}, "sk": {"S": "TASK#1"}}
    item = {
        **key,
        "s": {"S": "text ü"},
        "n": {"N": "12.50"},
        "b": {"B": b"\x00\xffbytes"},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2"]},
        "bs": {"BS": [b"x", b"y"]},
        "m": {"M": {"l": {"L": [{"NULL": True}, {"BOOL": False}, {"N": "-3"}]}}},
    }
    other = {"pk": {"S": "w"}, "sk": {"S": "TASK#2"}}
    total = {"ReturnConsumedCapacity": "TOTAL"}
    return [
        ("put_item", {"TableName": "t", "Item": item, **total}),
        ("put_item", {"TableName": "t", "Item": {**other, "n": {"N": "1"}}, "ReturnValues": "ALL_OLD"}),
        ("get_item", {"TableName": "t", "Key": key, **total}),
        ("get_item", {"TableName": "t", "Key": {"pk": {"S": "w"}, "sk": {"S": "missing"}}}),
        (
            "update_item",
            {
                "TableName": "t",
                "Key": key,
                "UpdateExpression": "SET #s = :s ADD n :one",
                "ExpressionAttributeNames": {"#s": "state"},
                "ExpressionAttributeValues": {":s": {"S": "RUNNING"}, ":one": {"N": "1"}},
                "ReturnValues": "ALL_NEW",
                "ReturnConsumedCapacity": "INDEXES",
            },
        ),
        (
            "query",
            {
                "TableName": "t",
                "KeyConditionExpression": "pk = :p",
                "ExpressionAttributeValues": {":p": {"S": "w"}},
                "Limit": 1,
            },
        ),
        (
            "query",
            {
                "TableName": "t",
                "KeyConditionExpression": "pk = :p",
                "ExpressionAttributeValues": {":p": {"S": "w"}},
                "Select": "COUNT",
            },
        ),
        ("scan", {"TableName": "t", **total}),
        ("batch_get_item", {"RequestItems": {"t": {"Keys": [key, other]}}}),
        ("transact_get_items", {"TransactItems": [{"Get": {"TableName": "t", "Key": key}}]}),
        (
            "transact_write_items",
            {"TransactItems": [{"Put": {"TableName": "t", "Item": {**other, "x": {"S": "y"}}}}], **total},
        ),
        ("batch_write_item", {"RequestItems": {"t": [{"PutRequest": {"Item": {**other, "z": {"S": "z"}}}}]}}),
        ("delete_item", {"TableName": "t", "Key": other, "ReturnValues": "ALL_OLD"}),
    ]


def _answers(monkeypatch: pytest.MonkeyPatch, serializer: Any) -> list[Any]:
    from moto.core.responses import ActionResult

    with monkeypatch.context() as patch:
        if serializer is not None:
            patch.setattr(ActionResult, "execute_result", serializer)
        with mock_aws():
            client = boto3.client("dynamodb", region_name="us-east-1")
            create_table(client, "t")
            answers = []
            for operation, params in _calls(client):
                answer = getattr(client, operation)(**params)
                answer.pop("ResponseMetadata")
                answers.append((operation, answer))
            return answers


def test_item_operations_answer_what_moto_serializer_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.core.responses import ActionResult

    moto_serializer = ActionResult.execute_result  # before local mode's patches
    with moto_patches.patched():
        fast = _answers(monkeypatch, None)
        moto = _answers(monkeypatch, moto_serializer)
    assert fast == moto
    assert fast[2][1]["Item"]["b"] == {"B": b"\x00\xffbytes"}  # what the test compares is really there


_UPDATES: list[dict[str, Any]] = [
    {
        "UpdateExpression": "SET a = :s, b = :n ADD c :one, tags :set",
        "Values": {":s": "x", ":n": 2, ":one": 1, ":set": {"t1", "t2"}},
    },
    {"UpdateExpression": "SET l = list_append(if_not_exists(l, :none), :l)", "Values": {":none": [], ":l": [1]}},
    {"UpdateExpression": "SET l = list_append(if_not_exists(l, :none), :l)", "Values": {":none": [], ":l": [2]}},
    {"UpdateExpression": "SET m = :m", "Values": {":m": {"k": {"deep": [1, "two"]}}}},
    {"UpdateExpression": "SET m.k.deep[1] = :v, #n = b + :n", "Values": {":v": "2", ":n": 3}, "Names": {"#n": "nn"}},
    {"UpdateExpression": "REMOVE a, l[0] DELETE tags :gone", "Values": {":gone": {"t1"}}},
    {"UpdateExpression": "SET b = b - :n", "Values": {":n": 1}, "Condition": "attribute_not_exists(b)"},
    {"UpdateExpression": "SET a = :s, a = :s", "Values": {":s": "y"}},  # overlapping paths
    {"UpdateExpression": "SET sk = :s", "Values": {":s": "moved"}},  # a key attribute
    {"UpdateExpression": "SET b = b + :s", "Values": {":s": "text"}},  # type mismatch
    {"UpdateExpression": "SET z = missing + :n", "Values": {":n": 1}},  # an attribute that does not exist
    {"UpdateExpression": "SET a = :s ADD c :n SET b = :n", "Values": {":s": "x", ":n": 1}},  # two SET clauses
]


def _updates(table: Any) -> list[Any]:
    answers: list[Any] = []
    for update in _UPDATES:
        params: dict[str, Any] = {
            "Key": {"pk": "u", "sk": "TASK#1"},
            "UpdateExpression": update["UpdateExpression"],
            "ExpressionAttributeValues": update["Values"],
            "ReturnValues": "ALL_NEW",
        }
        if "Names" in update:
            params["ExpressionAttributeNames"] = update["Names"]
        if "Condition" in update:
            params["ConditionExpression"] = update["Condition"]
        try:
            answers.append(table.update_item(**params)["Attributes"])
        except Exception as exc:  # the error moto answers is part of the behaviour compared
            answers.append(str(exc))
    return answers


def _fresh_table(name: str) -> Any:
    dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
    create_table(dynamodb, name)
    return dynamodb.Table(name)


def test_update_expressions_validate_and_apply_as_moto_does() -> None:
    from moto.dynamodb.parsing import ast_nodes, validators

    with mock_aws():
        plain = _updates(_fresh_table("u"))
    with moto_patches.patched(), mock_aws():
        assert ast_nodes.DepthFirstTraverser.traverse_node_recursively.__module__ == moto_dynamodb.__name__
        assert validators.deepcopy is not __import__("copy").deepcopy
        fast = [_updates(_fresh_table("u1")), _updates(_fresh_table("u2"))]  # parsed, then served from the cache
    assert fast == [plain, plain]
    assert not (
        moto_dynamodb._ast_blobs or moto_dynamodb._structure_passed or moto_dynamodb._plans
    )  # memos end with the run
    assert sum(isinstance(answer, str) for answer in plain) == 6  # the error cases really fail
    assert "t2" in plain[0]["tags"] and plain[2]["l"] == [1, 2]


def test_per_call_memos_answer_what_they_replace() -> None:
    from botocore import useragent
    from moto.core import responses
    from moto.dynamodb.responses import DynamoHandler

    sanitize, list_methods = useragent.sanitize_user_agent_string_component, responses.method_names_from_class
    snake = responses.camelcase_to_underscores
    with moto_patches.patched():
        assert useragent.sanitize_user_agent_string_component is not sanitize
        for raw in ("Boto3/1.0 md/π#x", "a b", "ok#"):
            for allow_hash in (True, False):
                assert useragent.sanitize_user_agent_string_component(raw, allow_hash) == sanitize(raw, allow_hash)
        assert responses.method_names_from_class(DynamoHandler) == list_methods(DynamoHandler)
        assert responses.method_names_from_class(DynamoHandler) is responses.method_names_from_class(DynamoHandler)
        for action in ("TransactWriteItems", "GetItem", "ListTagsOfResource", "SendTaskHeartbeat", "A", ""):
            assert responses.camelcase_to_underscores(action) == snake(action)
    assert (useragent.sanitize_user_agent_string_component, responses.method_names_from_class) == (
        sanitize,
        list_methods,
    )
    assert responses.camelcase_to_underscores is snake


def test_values_cast_as_moto_casts_them() -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType

    moto_cast = DynamoType.cast_value.fget
    values = [
        {"S": "TASK#a"},
        {"S": ""},
        {"N": "42"},
        {"N": "-1.50E+3"},
        {"B": b"\x00\xff"},
        {"BOOL": False},
        {"NULL": True},
        {"SS": ["a", "b"]},
        {"NS": ["1", "2.5"]},
        {"BS": [b"x"]},
        {"L": [{"S": "a"}, {"N": "1"}]},
        {"M": {"k": {"N": "3"}, "s": {"SS": ["z"]}}},
    ]
    with moto_patches.patched():
        assert DynamoType.cast_value.fget is not moto_cast
        for value in values:
            typed = DynamoType(value)
            assert typed.cast_value == moto_cast(typed) and type(typed.cast_value) is type(moto_cast(typed))
    assert DynamoType.cast_value.fget is moto_cast


@pytest.mark.parametrize("kind", ["S", "N", "B"])
def test_a_partition_queries_in_moto_s_order(kind: str) -> None:
    """A partition's query answers in moto's order, both ways (the patch hands moto the partition's items
    sorted by each range key's value; moto's query sorts what it keeps by range key again)."""
    import boto3
    from moto import mock_aws

    values = {
        "S": ["b", "a", "é", "Z", "a#10", "a#9", "ÿ", "zz", "ab"],
        "N": ["10", "9", "-1", "0.5", "-0.25", "1e3", "100", "2"],
        "B": [b"\x00", b"\xff", b"a", b"b", b"ab", b"\x7f"],
    }[kind]
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="ordered",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": kind},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for value in values:
            client.put_item(TableName="ordered", Item={"pk": {"S": "p"}, "sk": {kind: value}})

        def order(forward: bool) -> list[Any]:
            query = {"TableName": "ordered", "KeyConditionExpression": "pk = :p", "ScanIndexForward": forward}
            return client.query(**query, ExpressionAttributeValues={":p": {"S": "p"}})["Items"]

        expected = (order(True), order(False))
        with moto_patches.patched():
            assert (order(True), order(False)) == expected


def _attribute(rng: Any, depth: int = 0) -> dict[str, Any]:
    kinds = ["S", "N", "BOOL", "NULL", "SS", "NS", "BS", "B"] + (["L", "M"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "S":
        return {"S": "é" * rng.randrange(0, 5) + "x" * rng.randrange(0, 40)}
    if kind == "N":
        return {"N": str(rng.uniform(-1e6, 1e6))}
    if kind == "BOOL":
        return {"BOOL": rng.random() < 0.5}
    if kind == "NULL":
        return {"NULL": True}
    if kind == "SS":
        return {"SS": [f"id-{i}-{'ü' * i}" for i in range(1, rng.randrange(2, 6))]}
    if kind == "NS":
        return {"NS": [str(i * 1.5) for i in range(1, rng.randrange(2, 6))]}
    if kind in ("B", "BS"):
        blobs = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 20))) for _ in range(rng.randrange(1, 4))]
        return {"B": blobs[0]} if kind == "B" else {"BS": blobs}
    if kind == "L":
        return {"L": [_attribute(rng, depth + 1) for _ in range(rng.randrange(0, 4))]}
    return {"M": {f"k{i}": _attribute(rng, depth + 1) for i in range(rng.randrange(0, 4))}}


def test_item_sizes_are_moto_s_and_the_limit_still_refuses() -> None:
    import random

    from moto.dynamodb.models.dynamo_type import DynamoType

    rng = random.Random(7)
    attributes = [_attribute(rng) for _ in range(400)]
    expected = [DynamoType(a).size() for a in attributes]  # moto's own rules
    with moto_patches.patched():
        assert DynamoType.size.__module__ == moto_dynamodb.__name__  # the fast rules are the ones compared
        assert [DynamoType(a).size() for a in attributes] == expected
        patched_outcomes = _limit_outcomes()
    assert [DynamoType(a).size() for a in attributes] == expected
    moto_outcomes = _limit_outcomes()
    assert patched_outcomes == moto_outcomes  # the same updates accepted and refused, at the same sizes
    assert True in moto_outcomes and False in moto_outcomes  # the sizes straddle the limit


def _limit_outcomes() -> list[bool]:
    """Whether each of a series of updates near the 400 KB limit is accepted (moto's item size check)."""
    outcomes = []
    with mock_aws():
        table = _fresh_table("sized")
        for extra in range(4_940, 5_040, 10):
            table.put_item(Item={"pk": "a", "sk": "b", "big": "x" * 400_000, "n": 12, "tags": {"a", "b"}})
            try:
                table.update_item(
                    Key={"pk": "a", "sk": "b"},
                    UpdateExpression="SET more = :more, n = :n",
                    ExpressionAttributeValues={":more": "y" * extra, ":n": 13},
                )
                outcomes.append(True)
            except Exception as exc:
                assert "Item size to update has exceeded the maximum allowed size" in str(exc)
                outcomes.append(False)
    return outcomes


def _conditional_calls() -> list[tuple[str, dict[str, Any]]]:
    """Conditional writes with every ReturnValues, conditions that pass and fail (with the old item asked
    back), and transactions whose items' conditions pass and fail."""
    key = {"pk": {"S": "c"}, "sk": {"S": "TASK#1"}}
    other = {"pk": {"S": "c"}, "sk": {"S": "TASK#2"}}
    version = "attribute_not_exists(v) OR v < :v"
    calls: list[tuple[str, dict[str, Any]]] = [
        ("put_item", {"TableName": "t", "Item": {**key, "v": {"N": "1"}, "tags": {"SS": ["a"]}, "m": {"M": {}}}}),
        ("put_item", {"TableName": "t", "Item": {**other, "v": {"N": "1"}}}),
    ]
    for step, returns in enumerate(("NONE", "ALL_OLD", "UPDATED_OLD", "UPDATED_NEW", "ALL_NEW"), start=2):
        calls.append(
            (
                "update_item",
                {
                    "TableName": "t",
                    "Key": key,
                    "UpdateExpression": "SET v = :v, #s = :s, m.k = :s ADD tags :t",
                    "ConditionExpression": f"attribute_exists(pk) AND ({version})",
                    "ExpressionAttributeNames": {"#s": "state"},
                    "ExpressionAttributeValues": {
                        ":v": {"N": str(step)},
                        ":s": {"S": returns},
                        ":t": {"SS": [returns]},
                    },
                    "ReturnValues": returns,
                },
            )
        )
    stale = {":v": {"N": "1"}, ":s": {"S": "stale"}}
    for on_failure in ("ALL_OLD", "NONE"):
        calls.append(
            (
                "update_item",
                {
                    "TableName": "t",
                    "Key": key,
                    "UpdateExpression": "SET v = :v, #s = :s",
                    "ConditionExpression": version,
                    "ExpressionAttributeNames": {"#s": "state"},
                    "ExpressionAttributeValues": stale,
                    "ReturnValuesOnConditionCheckFailure": on_failure,
                },
            )
        )
    calls.append(
        (
            "delete_item",
            {
                "TableName": "t",
                "Key": other,
                "ConditionExpression": "v = :v",
                "ExpressionAttributeValues": {":v": {"N": "2"}},
            },
        )
    )
    for bound in ("9", "3"):  # the first passes; the second fails on its second item and undoes the first
        calls.append(
            (
                "transact_write_items",
                {
                    "TransactItems": [
                        {
                            "Update": {
                                "TableName": "t",
                                "Key": other,
                                "UpdateExpression": "ADD n :one",
                                "ConditionExpression": "attribute_exists(pk)",
                                "ExpressionAttributeValues": {":one": {"N": "1"}},
                            }
                        },
                        {
                            "Update": {
                                "TableName": "t",
                                "Key": key,
                                "UpdateExpression": "SET v = :v",
                                "ConditionExpression": version,
                                "ExpressionAttributeValues": {":v": {"N": bound}},
                                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                            }
                        },
                    ]
                },
            )
        )
    calls.append(("scan", {"TableName": "t", "ConsistentRead": True}))
    return calls


def _conditional_answers() -> list[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, "t")
        client.update_table(
            TableName="t", StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        )
        answers: list[Any] = []
        for operation, params in _conditional_calls():
            try:
                answer = getattr(client, operation)(**params)
                answer.pop("ResponseMetadata")
                answers.append(answer)
            except client.exceptions.ClientError as exc:  # the error, its message and reasons are compared
                answers.append({key: value for key, value in exc.response.items() if key != "ResponseMetadata"})
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.dynamodb.models import dynamodb_backends

        shard = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].tables["t"].stream_shard
        images = [
            (r.record["eventName"], r.record["dynamodb"].get("OldImage"), r.record["dynamodb"].get("NewImage"))
            for r in shard.items
        ]
        answers.append(images)
        return answers


def test_conditions_old_values_and_streams_are_moto_s() -> None:
    """A condition parsed once per text, names and values, the old item read without a deep copy, and no
    copy for a table without a stream answer what moto answers: every ReturnValues, failed conditions with
    the old item, transactions (one cancelled and undone), and a stream's old and new images."""
    plain = _conditional_answers()
    with moto_patches.patched():
        fast = [_conditional_answers(), _conditional_answers()]  # parsed, then served from the memos
    assert fast == [plain, plain]
    failures = [answer["Error"]["Code"] for answer in plain[:-1] if "Error" in answer]
    assert failures == ["ConditionalCheckFailedException"] * 3 + ["TransactionCanceledException"]
    assert plain[3]["Attributes"]["state"] == {"S": "NONE"}  # ALL_OLD: the item before the update
    assert plain[4]["Attributes"]["state"] == {"S": "ALL_OLD"}  # UPDATED_OLD: the updated attributes before
    assert plain[7]["Item"]["v"] == {"N": "6"}  # a failed condition's old item
    assert plain[11]["CancellationReasons"][1]["Item"]["v"] == {"N": "9"}
    assert any(old is not None and old != new for _, old, new in plain[-1])  # the stream saw old images


def test_results_become_the_plain_data_moto_makes() -> None:
    """The one-walk ``dynamo_to_dict`` gives what moto's gives, for items (every attribute type, binary
    included), their JSON, and the dicts, lists, datetimes and numbers a result holds."""
    import datetime
    import random
    from decimal import Decimal

    from moto.dynamodb.models import utilities
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    rng = random.Random(11)
    items = [
        Item(DynamoType({"S": f"p{i}"}), DynamoType({"S": "s"}), {f"a{j}": _attribute(rng) for j in range(12)})
        for i in range(30)
    ]
    results = [
        {"Item": items[0]},
        {"Items": items, "Count": 30, "ScannedCount": Decimal("30"), "LastEvaluatedKey": {"pk": {"S": "p1"}}},
        {"Attributes": items[1].to_json()["Attributes"], "ConsumedCapacity": {"TableName": "t", "CapacityUnits": 0.5}},
        {"Table": {"CreationDateTime": datetime.datetime(2026, 1, 2), "ItemCount": 0, "Flags": [True, None, b"x"]}},
        {"Values": [DynamoType(_attribute(rng)) for _ in range(60)]},  # bare typed values, binary ones included
    ]
    expected = [utilities.dynamo_to_dict(result) for result in results]
    with moto_patches.patched():
        assert utilities.dynamo_to_dict.__module__ == moto_dynamodb.__name__
        assert [utilities.dynamo_to_dict(result) for result in results] == expected
    assert {kind for value in expected[4]["Values"] for kind in value} >= {"S", "N", "B", "BS", "M", "L", "SS"}
    binary = [value for item in expected[1]["Items"] for value in item["Attributes"].values() if "B" in value]
    assert binary and all(isinstance(value["B"], bytes) for value in binary)  # moto's bytes, not base64 text


_TARGETS = ["a", "b", "#a", "#b", "m.k", "m.k.z", "#m.k", "l[0]", "l[7]", "c", "d", "e"]
_REFUSED_TARGETS = ["#missing", "nope.x", "pk", "#sk", "status"]  # undefined name, bad path, keys, reserved
_VALUES: list[Any] = ["", "text", 3, {"s1", "s2"}, {"k": {"deep": [1]}}, [1, "two"], None, True, b"bin"]
_OPERANDS = ["n", "a", "absent", "#a", "m.k"]  # paths read on the value side


def _random_action(rng: Any, target: str, value: str, values: dict[str, Any]) -> str:
    """One SET action, or an ADD, REMOVE or DELETE one, reading paths and functions now and then."""
    shape = rng.random()
    if shape < 0.5:
        values[value] = rng.choice(_VALUES)
        return f"SET {target} = {value}"
    values[value] = rng.choice([1, Decimal("2.5"), "x", [3]])
    operand = rng.choice(_OPERANDS)
    if shape < 0.6:
        return f"SET {target} = {operand} {rng.choice('+-')} {value}"
    if shape < 0.7:
        return f"SET {target} = if_not_exists({operand}, {value})"
    if shape < 0.75:
        values[value] = [rng.choice(_VALUES)]
        return f"SET {target} = list_append(if_not_exists(l, {value}), {value})"
    if shape < 0.85:
        values[value] = rng.choice([1, {"t9"}, "s"])
        return f"ADD {rng.choice(['n', 'tags', 'a', 'fresh'])} {value}"
    if shape < 0.95:
        del values[value]
        return f"REMOVE {target}"
    values[value] = rng.choice([{"t1"}, {"zz"}, 1])
    return f"DELETE tags {value}"


def _random_updates(rng: Any) -> list[dict[str, Any]]:
    """Update expressions of every clause (SET with values, paths, arithmetic and functions; ADD, REMOVE,
    DELETE) with placeholders, nested and indexed paths, reserved words, key attributes, undefined values,
    overlapping paths and empty strings: the cases moto's passes accept and refuse."""
    import re

    names = {"#a": "a", "#b": "b", "#m": "m", "#sk": "sk"}
    cases = []
    for _ in range(400):
        targets = list(dict.fromkeys(rng.choice(_TARGETS) for _ in range(rng.randrange(1, 5))))
        if rng.random() < 0.15:
            targets.append(rng.choice(_REFUSED_TARGETS))
        if rng.random() < 0.05:
            targets.append(rng.choice(targets))  # a path set twice
        clauses: dict[str, list[str]] = {}
        values: dict[str, Any] = {}
        for i, target in enumerate(targets):
            action = _random_action(rng, target, f":v{i}" if rng.random() > 0.05 else ":undefined", values)
            values.pop(":undefined", None)
            keyword, _, rest = action.partition(" ")
            clauses.setdefault(keyword, []).append(rest)
        expression = " ".join(f"{keyword} {', '.join(actions)}" for keyword, actions in clauses.items())
        case: dict[str, Any] = {"UpdateExpression": expression, "item": rng.random() < 0.8}
        if values:
            case["ExpressionAttributeValues"] = values
        used = {name: names[name] for name in re.findall(r"#\w+", expression) if name in names}
        if used:
            case["ExpressionAttributeNames"] = used
        cases.append(case)
    return cases


def _update_outcomes(cases: list[dict[str, Any]]) -> list[Any]:
    outcomes: list[Any] = []
    with mock_aws():
        table = _fresh_table("updates")
        for case in cases:
            key = {"pk": "w", "sk": "t"}
            table.delete_item(Key=key)
            if case["item"]:
                item = {**key, "a": 1, "n": 5, "tags": {"t1", "t2"}, "m": {"k": {"z": "old"}}, "l": [1, 2]}
                table.put_item(Item=item)
            params = {k: v for k, v in case.items() if k != "item"}
            try:
                outcomes.append(table.update_item(Key=key, ReturnValues="ALL_NEW", **params)["Attributes"])
            except Exception as exc:  # the error moto answers is part of the behaviour compared
                outcomes.append(str(exc))
    return outcomes


def test_update_expressions_validate_by_plan_as_moto_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation by plan (each pass's nodes known from the parsed tree) answers what moto's ten walks
    answer: the same new items and the same errors, over random expressions of every clause; the plans
    really ran."""
    import random

    cases = _random_updates(random.Random(5))
    plain = _update_outcomes(cases)
    planned: list[Any] = []
    plan = moto_dynamodb._validation_plan
    monkeypatch.setattr(moto_dynamodb, "_validation_plan", lambda *args: planned.append(plan(*args)) or planned[-1])
    with moto_patches.patched():
        fast = [_update_outcomes(cases), _update_outcomes(cases)]  # planned, then served from the memo
    assert fast == [plain, plain]
    assert len(planned) > 100 and any(p.functions for p in planned) and any(p.operations for p in planned)
    errors = {outcome.split("operation: ")[-1][:40] for outcome in plain if isinstance(outcome, str)}
    assert len(errors) >= 8  # undefined values, overlaps, key attributes, reserved words, bad paths, types...
    assert sum(isinstance(outcome, dict) for outcome in plain) > 60
