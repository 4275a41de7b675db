"""The IAM evaluation itself: call mapping, Terraform's policies, the state machine role, the evaluator."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import pytest
from iam_calls import IamRequest, UnmappedCall, requests_for
from iam_evaluator import Evaluator, name_map, requests_from_log, terraform
from iam_plugin import record_verdicts
from iam_states import state_machine_requests

from stepspot.local.lambdas import FUNCTIONS, lambda_principal
from stepspot.local.resources import LocalResources

LOCAL = LocalResources()


@pytest.fixture(scope="module")
def evaluator():
    evaluator = Evaluator()
    yield evaluator
    evaluator.close()


def _actions(principal, service, operation, params):
    return [(r.action, r.resource, dict(r.context)) for r in requests_for(principal, service, operation, params)]


# -- mapping ---------------------------------------------------------------------------------------


def test_head_bucket_is_list_bucket_without_a_prefix_and_a_listing_carries_its_prefix():
    assert _actions("job", "s3", "HeadBucket", {"Bucket": "b"}) == [("s3:ListBucket", "arn:aws:s3:::b", {})]
    assert _actions("job", "s3", "ListObjectsV2", {"Bucket": "b", "Prefix": "checkpoints/", "MaxKeys": 1}) == [
        ("s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "checkpoints/", "s3:max-keys": "1"})
    ]


def test_objects_copies_and_batch_deletes_are_authorised_per_object():
    assert _actions("job", "s3", "HeadObject", {"Bucket": "b", "Key": "k"}) == [
        ("s3:GetObject", "arn:aws:s3:::b/k", {})
    ]
    assert _actions("job", "s3", "CopyObject", {"Bucket": "t", "Key": "n", "CopySource": "s/o%20k"}) == [
        ("s3:GetObject", "arn:aws:s3:::s/o k", {}),
        ("s3:PutObject", "arn:aws:s3:::t/n", {}),
    ]
    deleted = _actions(
        "job", "s3", "DeleteObjects", {"Bucket": "b", "Delete": {"Objects": [{"Key": "1"}, {"Key": "2"}]}}
    )
    assert deleted == [("s3:DeleteObject", "arn:aws:s3:::b/1", {}), ("s3:DeleteObject", "arn:aws:s3:::b/2", {})]


def test_a_transaction_is_authorised_item_by_item_and_a_query_on_an_index_on_the_index():
    items = [
        {"Put": {"TableName": "t"}},
        {"Update": {"TableName": "t"}},
        {"Delete": {"TableName": "u"}},
        {"ConditionCheck": {"TableName": "t"}},
    ]
    table = "arn:aws:dynamodb:us-east-1:123456789012:table/"
    assert [a[:2] for a in _actions("p", "dynamodb", "TransactWriteItems", {"TransactItems": items})] == [
        ("dynamodb:PutItem", table + "t"),
        ("dynamodb:UpdateItem", table + "t"),
        ("dynamodb:DeleteItem", table + "u"),
        ("dynamodb:ConditionCheckItem", table + "t"),
    ]
    assert _actions("p", "dynamodb", "Query", {"TableName": "t", "IndexName": "i"})[0][1] == table + "t/index/i"


def test_task_token_calls_have_no_resource_and_submit_job_needs_queue_and_definition():
    assert _actions("p", "stepfunctions", "SendTaskSuccess", {"taskToken": "x"}) == [
        ("states:SendTaskSuccess", "*", {})
    ]
    assert [a[1] for a in _actions("p", "batch", "SubmitJob", {"jobQueue": "q", "jobDefinition": "d:3"})] == [
        "arn:aws:batch:us-east-1:123456789012:job-queue/q",
        "arn:aws:batch:us-east-1:123456789012:job-definition/d:3",
    ]


def test_encrypted_bucket_and_topic_need_the_key_as_the_caller():
    key = "arn:aws:kms:us-east-1:123456789012:key/k"
    produced = requests_for("p", "s3", "GetObject", {"Bucket": "b", "Key": "k"}, {"arn:aws:s3:::b": key})
    assert [(r.action, r.resource) for r in produced] == [("s3:GetObject", "arn:aws:s3:::b/k"), ("kms:Decrypt", key)]
    head = requests_for("p", "s3", "HeadObject", {"Bucket": "b", "Key": "k"}, {"arn:aws:s3:::b": key})
    assert [r.action for r in head] == ["s3:GetObject"]


def test_an_unknown_call_fails_loudly_naming_the_call_and_the_file_to_extend():
    with pytest.raises(UnmappedCall, match=r"lambda:scheduler called s3\.PutBucketPolicy.*iam_calls\.py"):
        requests_for("lambda:scheduler", "s3", "PutBucketPolicy", {"Bucket": "b"})


def test_a_tests_own_names_are_mapped_to_terraforms_and_calls_without_principal_are_not_evaluated():
    environment = terraform().environment
    line = {
        "principal": "lambda:attempt_manager",
        "service": "batch",
        "operation": "RegisterJobDefinition",
        "params": {"jobDefinitionName": "base-0123456789"},
        "names": {"STEPSPOT_JOB_DEFINITION_ARN": "arn:aws:batch:us-east-1:123456789012:job-definition/base:1"},
    }
    anonymous = {**line, "principal": None}
    requests, unmapped = requests_from_log([json.dumps(line), json.dumps(anonymous)], environment)
    assert unmapped == []
    first = requests[0]
    assert (first.principal, first.action, first.resource) == (
        "lambda:attempt_manager",
        "batch:RegisterJobDefinition",
        "arn:aws:batch:us-east-1:123456789012:job-definition/stepspot-local-job-0123456789",
    )
    # and what the Lambda runtime does with the role: its own log group, X-Ray
    assert {r.action for r in requests[1:]} == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }
    assert name_map({"STEPSPOT_BUCKET": "mine"}, environment) == {"mine": LOCAL.bucket}


# -- Terraform's policies --------------------------------------------------------------------------


def test_every_local_function_has_terraforms_policy_with_local_names():
    found = terraform()
    assert set(found.policies) == {lambda_principal(key) for key in FUNCTIONS} | {"job", "states"}
    assert found.environment["STEPSPOT_BUCKET"] == LOCAL.bucket
    assert found.environment["STEPSPOT_STATE_TABLE"] == LOCAL.state_table
    assert found.environment["STEPSPOT_CHECKPOINT_TABLE"] == LOCAL.checkpoint_table
    listing = next(s for s in found.policies["job"]["Statement"] if s["Action"] == ["s3:ListBucket"])
    assert "checkpoints/*" in listing["Condition"]["StringLike"]["s3:prefix"]


# -- evaluation ------------------------------------------------------------------------------------


def test_the_agents_head_bucket_would_be_refused_by_the_job_role_and_its_listing_allowed(evaluator):
    # The defect of issue 12 (1): HeadBucket has no s3:prefix, the job role lists only under checkpoints/.
    policies = terraform().policies
    head = requests_for("job", "s3", "HeadBucket", {"Bucket": LOCAL.bucket})
    listing = requests_for(
        "job", "s3", "ListObjectsV2", {"Bucket": LOCAL.bucket, "Prefix": "checkpoints/", "MaxKeys": 1}
    )
    elsewhere = requests_for("job", "s3", "ListObjectsV2", {"Bucket": LOCAL.bucket, "Prefix": "workflows/"})
    verdicts = evaluator.evaluate(head + listing + elsewhere, policies)
    assert [v.result for v in verdicts] == ["ImplicitlyDenied", "Allowed", "ImplicitlyDenied"]
    assert "s3.HeadBucket needs s3:ListBucket on arn:aws:s3:::stepspot-local-bucket with no condition keys" in (
        verdicts[0].explain()
    )


def test_the_state_machine_role_allows_every_service_integration_of_the_rendered_definitions(evaluator):
    found = terraform()
    requests = state_machine_requests(found.environment, found.function_arns)
    assert {r.action for r in requests} >= {"lambda:InvokeFunction", "batch:SubmitJob", "events:PutRule"}
    # Both submitJob states tag the job on submission (the cost allocation tags, stepspot.fleet.job_tags)
    tagging = sorted(r.call for r in requests if r.action == "batch:TagResource")
    assert tagging == ["task.RunJob", "task.RunMultiNodeJob"]
    assert all(len(r.context["aws:TagKeys"]) == 4 for r in requests if r.action == "batch:TagResource")
    verdicts = evaluator.evaluate(requests, found.policies)
    denied = [v.explain() for v in verdicts if not v.allowed]
    assert not denied, "\n".join(denied)
    record_verdicts(verdicts)


def test_the_evaluator_and_its_sibling_packages_are_pinned_exactly():
    # AGPL-3.0 tool, test-only: pinned so that a new release cannot change a verdict unnoticed.
    from pathlib import Path

    here = Path(__file__).resolve().parent
    declared = json.loads((here / "package.json").read_text())["devDependencies"]
    locked = json.loads((here / "package-lock.json").read_text())["packages"]
    for name, version in declared.items():
        assert version[0].isdigit(), f"{name} {version}: pin an exact version"
        assert locked[f"node_modules/{name}"]["version"] == version
    assert set(declared) >= {f"@cloud-copilot/{p}" for p in ("iam-simulate", "iam-policy", "iam-data", "iam-utils")}


def test_a_tagged_registration_needs_tag_resource_on_the_new_revision():
    produced = _actions("p", "batch", "RegisterJobDefinition", {"jobDefinitionName": "d", "tags": {"k": "v"}})
    arn = "arn:aws:batch:us-east-1:123456789012:job-definition/d"
    context = {"aws:RequestTag/k": "v", "aws:TagKeys": ["k"]}
    assert produced == [("batch:RegisterJobDefinition", arn, context), ("batch:TagResource", arn + ":1", context)]


def test_a_tagged_submission_needs_tag_resource_on_the_new_job():
    produced = _actions(
        "p", "batch", "SubmitJob", {"jobName": "n", "jobQueue": "q", "jobDefinition": "d:1", "tags": {"k": "v"}}
    )
    context = {"aws:RequestTag/k": "v", "aws:TagKeys": ["k"]}
    assert produced[-1] == ("batch:TagResource", "arn:aws:batch:us-east-1:123456789012:job/x", context)
    # The state machine's SubmitJob carries the attempt manager's tags ("Tags.$"): the same request
    found = terraform()
    tagging = [
        r for r in state_machine_requests(found.environment, found.function_arns) if r.action == "batch:TagResource"
    ]
    assert {r.call for r in tagging} == {"task.RunJob", "task.RunMultiNodeJob"}
    assert all("stepspot:workflow" in r.context["aws:TagKeys"] for r in tagging)


def test_the_state_machine_role_tags_jobs_only_with_stepspot_tags(evaluator):
    found = terraform()
    job = "arn:aws:batch:us-east-1:123456789012:job/x"
    ours = IamRequest("states", "batch:TagResource", job, {"aws:TagKeys": ["stepspot:task"]}, call="t")
    theirs = IamRequest("states", "batch:TagResource", job, {"aws:TagKeys": ["stepspot:task", "owner"]}, call="t")
    assert [v.result for v in evaluator.evaluate([ours, theirs], found.policies)] == ["Allowed", "ImplicitlyDenied"]


# -- Terraform's policies against the Service Authorization Reference (iam-data) -------------------

IAM_DATA = Path(__file__).resolve().parent / "node_modules" / "@cloud-copilot" / "iam-data" / "data"


def _iam_data(kind: str, service: str) -> dict:
    path = IAM_DATA / kind / f"{service}.json"
    if not (IAM_DATA / kind).is_dir():
        pytest.fail("the IAM evaluator is not installed: run `make iam-simulator` (npm ci in tests/iam)")
    return json.loads(path.read_text()) if path.exists() else {}


def _statements():
    found = terraform()
    documents = [*found.policies.items(), *found.resource_policies.items()]
    for owner, document in documents:
        for statement in document["Statement"]:
            yield owner, statement


def test_every_action_terraform_grants_exists():
    # IAM accepts a policy naming an action that does not exist (dynamodb:TransactWriteItems: a
    # transaction is authorised item by item): such a grant does nothing and misleads the reader.
    unknown = []
    for owner, statement in _statements():
        actions = statement.get("Action", [])
        for action in [actions] if isinstance(actions, str) else actions:
            if action == "*":
                continue
            service, name = action.split(":", 1)
            known = _iam_data("actions", service)
            if not any(fnmatch.fnmatchcase(candidate, name.lower()) for candidate in known):
                unknown.append(f"{owner} {statement.get('Sid', '')}: {action}")
    assert unknown == []


def test_every_condition_key_terraform_uses_exists():
    # A condition on a key the service never sends (batch:CreateAction: only EC2, ECS and a few others
    # have a CreateAction key) never matches: the statement silently grants nothing on AWS.
    unknown = []
    for owner, statement in _statements():
        for operator, keys in statement.get("Condition", {}).items():
            for key in keys:
                service = key.split(":", 1)[0].lower()
                if service == "aws":
                    continue  # global condition keys
                # iam-data lists keys lower-cased, with ${TagKey}-style placeholders for any text
                patterns = [
                    ".+".join(map(re.escape, re.split(r"\$\{[^}]*\}", k))) for k in _iam_data("conditionKeys", service)
                ]
                if not any(re.fullmatch(p, key.lower()) for p in patterns):
                    unknown.append(f"{owner} {statement.get('Sid', '')}: {operator} {key}")
    assert unknown == []


def test_a_registration_passes_every_role_it_names_also_in_a_multi_node_definition():
    role = "arn:aws:iam::123456789012:role/job"
    nodes = {"nodeRangeProperties": [{"targetNodes": "0:", "container": {"jobRoleArn": role, "image": "i"}}]}
    produced = _actions("p", "batch", "RegisterJobDefinition", {"jobDefinitionName": "d", "nodeProperties": nodes})
    assert ("iam:PassRole", role, {"iam:PassedToService": "batch.amazonaws.com"}) in produced
