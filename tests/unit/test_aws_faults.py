"""The AWS fault injector of local mode: seeded, per call key, bounded streaks, real error shapes."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from stepspot.local.aws_faults import MAX_CONSECUTIVE, SDK_ATTEMPTS, AwsFaults


def _decisions(faults: AwsFaults, n: int = 200) -> list[bool]:
    return [faults.decide("lambda", f"key-{i % 7}") for i in range(n)]


def test_decisions_depend_on_the_seed_and_call_number_only():
    assert _decisions(AwsFaults(rate=0.3, seed=1)) == _decisions(AwsFaults(rate=0.3, seed=1))
    assert _decisions(AwsFaults(rate=0.3, seed=1)) != _decisions(AwsFaults(rate=0.3, seed=2))
    share = sum(_decisions(AwsFaults(rate=0.3, seed=3), 2000)) / 2000
    assert 0.2 < share < 0.35


def test_a_key_never_fails_more_than_a_bounded_streak():
    faults = AwsFaults(rate=0.99, seed=0)
    results = [faults.decide("dynamodb.transaction", "same") for _ in range(30)]
    streak = longest = 0
    for failed in results:
        streak = streak + 1 if failed else 0
        longest = max(longest, streak)
    assert longest == MAX_CONSECUTIVE


def test_off_by_default():
    assert not AwsFaults().decide("lambda", "k")


def test_a_transaction_is_cancelled_with_cancellation_reasons_as_dynamodb_does():
    faults = AwsFaults(rate=0.99, seed=0)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        faults.install([client])
        with pytest.raises(ClientError) as caught:
            client.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": "t", "Item": {"pk": {"S": "a"}, "sk": {"S": "b"}}}},
                    {"Delete": {"TableName": "t", "Key": {"pk": {"S": "c"}, "sk": {"S": "d"}}}},
                ]
            )
    assert caught.value.response["Error"]["Code"] == "TransactionCanceledException"
    codes = [r["Code"] for r in caught.value.response["CancellationReasons"]]
    assert sorted(codes)[0] == "None" and {c for c in codes if c != "None"} <= {
        "TransactionConflict",
        "ThrottlingError",
    }
    assert faults.summary() == {"dynamodb.transaction": 1}


class _CountingLambdas:
    def __init__(self) -> None:
        self.ran = 0

    def invoke(self, **_: object) -> dict:
        self.ran += 1
        return {"StatusCode": 200, "Payload": b"{}"}


def test_lambda_faults_are_throttles_lost_responses_and_function_timeouts():
    # A throttle never ran the handler; a client timeout and the function's own timeout ran it (its
    # effects stay, as on AWS): the state machine's retry must be harmless.
    import json

    faults = AwsFaults(rate=0.99, seed=4)
    errors: dict[str, list[int]] = {}
    for i in range(60):
        lambdas = _CountingLambdas()
        answer = faults.lambda_client(lambdas).invoke(FunctionName="arn:aws:lambda:r:1:function:f", Payload=f"{i}")
        if "FunctionError" in answer:
            errors.setdefault(json.loads(answer["Payload"].read())["errorType"], []).append(lambdas.ran)
    assert set(errors) == {
        "Lambda.TooManyRequestsException",
        "Lambda.ClientExecutionTimeoutException",
        "Sandbox.Timedout",
    }
    assert set(errors["Lambda.TooManyRequestsException"]) == {0}
    assert set(errors["Lambda.ClientExecutionTimeoutException"]) == set(errors["Sandbox.Timedout"]) == {1}


def test_a_throttled_single_write_is_retried_as_the_sdk_retries_it():
    # botocore (standard mode) retries ProvisionedThroughputExceededException itself; an injected fault
    # skips its retry handler, so the hook plays the SDK: the write goes through after the throttles.
    faults = AwsFaults(rate=0.99, seed=0)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        faults.install([client])
        client.put_item(TableName="t", Item={"pk": {"S": "a"}})
        assert client.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"]
    assert faults.summary() == {"dynamodb.throttle": MAX_CONSECUTIVE}
    assert SDK_ATTEMPTS["dynamodb"] > MAX_CONSECUTIVE  # a bounded streak never outlasts the SDK
