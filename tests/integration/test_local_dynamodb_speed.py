"""Local mode's DynamoDB speed-ups (stepspot.local.moto_patches) answer exactly what moto answers: a
table query that reads only its partition, an update expression parsed once."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto import mock_aws

from stepspot.local import moto_patches


@pytest.fixture
def table() -> Any:
    moto_patches.install()
    with mock_aws():
        dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
        created = dynamodb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
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
