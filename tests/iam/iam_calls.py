"""AWS API call -> the IAM requests AWS authorises for it (action, resource ARN, condition keys).

From the AWS Service Authorization Reference ("Actions, resources, and condition keys for <service>")
and the services' own authorisation pages where one call needs several actions: HeadBucket is
s3:ListBucket with no s3:prefix; CopyObject reads the source and writes the target; a DynamoDB
transaction is authorised item by item (there is no dynamodb:TransactWriteItems action); SubmitJob
needs the job queue and the job definition; Step Functions' task-token calls have no resource type.

A call this table does not know fails loudly (``UnmappedCall``): the next new AWS call the code makes
must be added here, with its authorisation, before the tests pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

ACCOUNT = "123456789012"
REGION = "us-east-1"


class UnmappedCall(Exception):
    """An AWS call whose IAM authorisation tests/iam/iam_calls.py does not describe yet."""


@dataclass(frozen=True)
class IamRequest:
    principal: str
    action: str
    resource: str
    context: Mapping[str, str | list[str]] = field(default_factory=dict)
    call: str = ""  # "<service>.<Operation>", for messages

    def key(self) -> tuple[str, str, str, tuple[tuple[str, str], ...]]:
        context = tuple(sorted((k, str(v)) for k, v in self.context.items()))
        return (self.principal, self.action, self.resource, context)

    def as_json(self) -> dict[str, Any]:
        return {"principal": self.principal, "action": self.action, "resource": self.resource, "context": self.context}


# -- ARNs ------------------------------------------------------------------------------------------


def bucket_arn(bucket: str) -> str:
    return f"arn:aws:s3:::{bucket}"


def object_arn(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def table_arn(table: str, index: str | None = None) -> str:
    arn = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}"
    return f"{arn}/index/{index}" if index else arn


def _batch_arn(kind: str, name_or_arn: str) -> str:
    return name_or_arn if name_or_arn.startswith("arn:") else f"arn:aws:batch:{REGION}:{ACCOUNT}:{kind}/{name_or_arn}"


def job_definition_arn(name_or_arn: str) -> str:
    """A job definition given as name, name:revision or ARN; IAM checks name:revision."""
    return _batch_arn("job-definition", name_or_arn)


def _ecs_arn(kind: str, cluster: str, value: str) -> str:
    if value.startswith("arn:"):
        return value
    if kind == "cluster":
        return f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{value}"
    return f"arn:aws:ecs:{REGION}:{ACCOUNT}:{kind}/{cluster}/{value}"


def _cluster(params: Mapping[str, Any]) -> str:
    cluster = str(params.get("cluster") or "default")
    return cluster.rsplit("/", 1)[-1]


# -- per service -----------------------------------------------------------------------------------

Mapper = Callable[[Mapping[str, Any]], Iterable[tuple[str, str, dict[str, Any]]]]


def _s3_list(params: Mapping[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    # s3:prefix and s3:delimiter are in the request context only when the request carries them.
    context: dict[str, Any] = {}
    if params.get("Prefix") is not None:
        context["s3:prefix"] = str(params["Prefix"])
    if params.get("Delimiter") is not None:
        context["s3:delimiter"] = str(params["Delimiter"])
    if params.get("MaxKeys") is not None:
        context["s3:max-keys"] = str(params["MaxKeys"])
    yield "s3:ListBucket", bucket_arn(params["Bucket"]), context


def _copy_source(params: Mapping[str, Any]) -> tuple[str, str]:
    source = params["CopySource"]
    if isinstance(source, Mapping):
        return str(source["Bucket"]), str(source["Key"])
    text = unquote(str(source)).lstrip("/").split("?versionId=")[0]
    bucket, _, key = text.partition("/")
    return bucket, key


def _s3_copy(params: Mapping[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    bucket, key = _copy_source(params)
    yield "s3:GetObject", object_arn(bucket, key), {}
    yield "s3:PutObject", object_arn(params["Bucket"], params["Key"]), {}


def _s3_object(action: str) -> Mapper:
    def mapper(params: Mapping[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
        versioned = params.get("VersionId") and action in ("s3:GetObject", "s3:DeleteObject")
        yield f"{action}Version" if versioned else action, object_arn(params["Bucket"], params["Key"]), {}

    return mapper


def _s3_delete_objects(params: Mapping[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    for item in params["Delete"]["Objects"]:
        yield "s3:DeleteObject", object_arn(params["Bucket"], item["Key"]), {}


def _s3_bucket(action: str) -> Mapper:
    return lambda params: [(action, bucket_arn(params["Bucket"]), {})]


def _ddb_table(action: str) -> Mapper:
    def mapper(params: Mapping[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
        yield action, table_arn(params["TableName"], params.get("IndexName")), {}

    return mapper


# TransactWriteItems: each item is authorised as the single-item action it performs.
TRANSACT_WRITE_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}


def _ddb_transact_write(params: Mapping[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    for item in params["TransactItems"]:
        for kind, body in item.items():
            if kind not in TRANSACT_WRITE_ACTIONS:
                raise UnmappedCall(f"dynamodb.TransactWriteItems: unknown item kind {kind!r}")
            yield TRANSACT_WRITE_ACTIONS[kind], table_arn(body["TableName"]), {}


def _ddb_transact_get(params: Mapping[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    for item in params["TransactItems"]:
        yield "dynamodb:GetItem", table_arn(item["Get"]["TableName"]), {}


def _ddb_batch(action: str) -> Mapper:
    return lambda params: [(action, table_arn(table), {}) for table in params["RequestItems"]]


def _arn_param(action: str, name: str) -> Mapper:
    return lambda params: [(action, str(params[name]), {})]


def _everything(action: str) -> Mapper:
    """Actions with no resource type in the Service Authorization Reference: only "*" grants them."""
    return lambda params: [(action, "*", {})]


def tag_context(tags: Mapping[str, Any]) -> dict[str, Any]:
    """The condition keys of a request that tags what it creates (empty without tags)."""
    context: dict[str, Any] = {f"aws:RequestTag/{k}": str(v) for k, v in tags.items()}
    if tags:
        context["aws:TagKeys"] = sorted(tags)
    return context


def _batch_submit(params: Mapping[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    # SubmitJob is authorised on the job queue and on the job definition (both "required").
    tags = params.get("tags") or {}
    yield "batch:SubmitJob", _batch_arn("job-queue", str(params["jobQueue"])), tag_context(tags)
    yield "batch:SubmitJob", job_definition_arn(str(params["jobDefinition"])), tag_context(tags)
    if tags:
        # Tag-on-create needs batch:TagResource as well, on the job it creates.
        yield "batch:TagResource", _batch_arn("job", "x"), tag_context(tags)


def _batch_register(params: Mapping[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    arn = job_definition_arn(str(params["jobDefinitionName"]))
    tags = params.get("tags") or {}
    context = tag_context(tags)
    yield "batch:RegisterJobDefinition", arn, context
    if tags:
        # Tag-on-create needs batch:TagResource as well, on the revision it creates (name:revision).
        yield "batch:TagResource", f"{arn}:1", context
    # Every role the definition names is passed to Batch: the container's, or each node range's
    # container's in a multi-node definition; job role and execution role alike.
    containers = [params.get("containerProperties") or {}]
    ranges = (params.get("nodeProperties") or {}).get("nodeRangeProperties", [])
    containers += [r.get("container") or {} for r in ranges]
    roles = {str(c[k]) for c in containers for k in ("jobRoleArn", "executionRoleArn") if c.get(k)}
    for role in sorted(roles):
        yield "iam:PassRole", role, {"iam:PassedToService": "batch.amazonaws.com"}


def _batch_update_ce(params: Mapping[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    yield "batch:UpdateComputeEnvironment", _batch_arn("compute-environment", str(params["computeEnvironment"])), {}


def _ecs_cluster(action: str) -> Mapper:
    return lambda params: [(action, _ecs_arn("cluster", "", _cluster(params)), {})]


def _ecs_each(action: str, kind: str, name: str) -> Mapper:
    def mapper(params: Mapping[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
        for value in params[name]:
            yield action, _ecs_arn(kind, _cluster(params), str(value)), {}

    return mapper


def _ecs_list_tasks(params: Mapping[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    # ListTasks is authorised on the container instance (when filtered by one; else the cluster's).
    instance = params.get("containerInstance")
    if instance:
        yield "ecs:ListTasks", _ecs_arn("container-instance", _cluster(params), str(instance)), {}
    else:
        yield "ecs:ListTasks", f"arn:aws:ecs:{REGION}:{ACCOUNT}:container-instance/{_cluster(params)}/*", {}


def _put_metric_data(params: Mapping[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    yield "cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": str(params["Namespace"])}


def _logs_group(action: str) -> Mapper:
    def mapper(params: Mapping[str, Any]) -> Iterable[tuple[str, str, dict[str, Any]]]:
        group = params["logGroupName"]
        stream = params.get("logStreamName")
        arn = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{group}"
        yield action, f"{arn}:log-stream:{stream}" if stream else f"{arn}:*", {}

    return mapper


MAPPERS: dict[tuple[str, str], Mapper] = {
    # S3
    ("s3", "HeadBucket"): _s3_bucket("s3:ListBucket"),
    ("s3", "ListObjectsV2"): _s3_list,
    ("s3", "ListObjects"): _s3_list,
    ("s3", "ListObjectVersions"): lambda p: [("s3:ListBucketVersions", bucket_arn(p["Bucket"]), {})],
    ("s3", "GetBucketLocation"): _s3_bucket("s3:GetBucketLocation"),
    ("s3", "HeadObject"): _s3_object("s3:GetObject"),
    ("s3", "GetObject"): _s3_object("s3:GetObject"),
    ("s3", "PutObject"): _s3_object("s3:PutObject"),
    ("s3", "CreateMultipartUpload"): _s3_object("s3:PutObject"),
    ("s3", "UploadPart"): _s3_object("s3:PutObject"),
    ("s3", "CompleteMultipartUpload"): _s3_object("s3:PutObject"),
    ("s3", "AbortMultipartUpload"): _s3_object("s3:AbortMultipartUpload"),
    ("s3", "ListParts"): _s3_object("s3:ListMultipartUploadParts"),
    ("s3", "DeleteObject"): _s3_object("s3:DeleteObject"),
    ("s3", "DeleteObjects"): _s3_delete_objects,
    ("s3", "CopyObject"): _s3_copy,
    ("s3", "UploadPartCopy"): _s3_copy,
    # DynamoDB
    ("dynamodb", "GetItem"): _ddb_table("dynamodb:GetItem"),
    ("dynamodb", "PutItem"): _ddb_table("dynamodb:PutItem"),
    ("dynamodb", "UpdateItem"): _ddb_table("dynamodb:UpdateItem"),
    ("dynamodb", "DeleteItem"): _ddb_table("dynamodb:DeleteItem"),
    ("dynamodb", "Query"): _ddb_table("dynamodb:Query"),
    ("dynamodb", "Scan"): _ddb_table("dynamodb:Scan"),
    ("dynamodb", "DescribeTable"): _ddb_table("dynamodb:DescribeTable"),
    ("dynamodb", "TransactWriteItems"): _ddb_transact_write,
    ("dynamodb", "TransactGetItems"): _ddb_transact_get,
    ("dynamodb", "BatchWriteItem"): _ddb_batch("dynamodb:BatchWriteItem"),
    ("dynamodb", "BatchGetItem"): _ddb_batch("dynamodb:BatchGetItem"),
    # Batch
    ("batch", "SubmitJob"): _batch_submit,
    ("batch", "TerminateJob"): lambda p: [("batch:TerminateJob", _batch_arn("job", str(p["jobId"])), {})],
    ("batch", "DescribeJobs"): _everything("batch:DescribeJobs"),
    ("batch", "ListJobs"): _everything("batch:ListJobs"),
    ("batch", "DescribeComputeEnvironments"): _everything("batch:DescribeComputeEnvironments"),
    ("batch", "DescribeJobDefinitions"): _everything("batch:DescribeJobDefinitions"),
    ("batch", "DescribeJobQueues"): _everything("batch:DescribeJobQueues"),
    ("batch", "RegisterJobDefinition"): _batch_register,
    ("batch", "UpdateComputeEnvironment"): _batch_update_ce,
    # Step Functions
    ("stepfunctions", "StartExecution"): _arn_param("states:StartExecution", "stateMachineArn"),
    ("stepfunctions", "StopExecution"): _arn_param("states:StopExecution", "executionArn"),
    ("stepfunctions", "DescribeExecution"): _arn_param("states:DescribeExecution", "executionArn"),
    ("stepfunctions", "GetExecutionHistory"): _arn_param("states:GetExecutionHistory", "executionArn"),
    ("stepfunctions", "ListExecutions"): _arn_param("states:ListExecutions", "stateMachineArn"),
    ("stepfunctions", "SendTaskSuccess"): _everything("states:SendTaskSuccess"),
    ("stepfunctions", "SendTaskFailure"): _everything("states:SendTaskFailure"),
    ("stepfunctions", "SendTaskHeartbeat"): _everything("states:SendTaskHeartbeat"),
    # Lambda: the scheduler's fan-out continuations and the monitor's reports (FunctionName is an ARN)
    ("lambda", "Invoke"): _arn_param("lambda:InvokeFunction", "FunctionName"),
    # SNS, CloudWatch, Logs
    ("sns", "Publish"): _arn_param("sns:Publish", "TopicArn"),
    ("cloudwatch", "PutMetricData"): _put_metric_data,
    ("logs", "CreateLogStream"): _logs_group("logs:CreateLogStream"),
    ("logs", "PutLogEvents"): _logs_group("logs:PutLogEvents"),
    ("logs", "GetLogEvents"): _logs_group("logs:GetLogEvents"),
    # ECS (what the interruption handler reads to find the jobs on an instance)
    ("ecs", "ListContainerInstances"): _ecs_cluster("ecs:ListContainerInstances"),
    ("ecs", "DescribeContainerInstances"): _ecs_each(
        "ecs:DescribeContainerInstances", "container-instance", "containerInstances"
    ),
    ("ecs", "ListTasks"): _ecs_list_tasks,
    ("ecs", "DescribeTasks"): _ecs_each("ecs:DescribeTasks", "task", "tasks"),
    # EC2
    ("ec2", "DescribeInstances"): _everything("ec2:DescribeInstances"),
    # The cost ledger (workflow monitor): no resource-level permissions for these two.
    ("ec2", "DescribeSpotPriceHistory"): _everything("ec2:DescribeSpotPriceHistory"),
    ("ec2", "DescribeInstanceTypes"): _everything("ec2:DescribeInstanceTypes"),
    ("ec2", "DescribeSpotInstanceRequests"): _everything("ec2:DescribeSpotInstanceRequests"),
}


# SSE-KMS: S3 and SNS call KMS as the caller (the key policy leaves key use to IAM policies).
# HeadObject reads only metadata; multipart uploads decrypt the data key again for each part.
_KMS_FOR_CALL = {
    "s3.PutObject": ("kms:GenerateDataKey",),
    "s3.CreateMultipartUpload": ("kms:GenerateDataKey", "kms:Decrypt"),
    "s3.UploadPart": ("kms:GenerateDataKey", "kms:Decrypt"),
    "s3.CompleteMultipartUpload": ("kms:GenerateDataKey", "kms:Decrypt"),
    "s3.GetObject": ("kms:Decrypt",),
    "s3.CopyObject": ("kms:Decrypt", "kms:GenerateDataKey"),
    "sns.Publish": ("kms:GenerateDataKey", "kms:Decrypt"),
}


def _encrypted_with(resource: str, encryption: Mapping[str, str]) -> str | None:
    for arn, key in encryption.items():
        if resource == arn or resource.startswith(arn + "/"):
            return key
    return None


def kms_requests(requests: list[IamRequest], encryption: Mapping[str, str]) -> list[IamRequest]:
    """The KMS requests AWS makes as the caller for resources encrypted with a customer managed key."""
    extra: dict[tuple[Any, ...], IamRequest] = {}
    for request in requests:
        key = _encrypted_with(request.resource, encryption)
        if key is None:
            continue
        service = request.call.split(".", 1)[0]
        for action in _KMS_FOR_CALL.get(request.call, ()):
            via = {"kms:ViaService": f"{service}.{REGION}.amazonaws.com"}
            kms = IamRequest(request.principal, action, key, via, call=request.call)
            extra[kms.key()] = kms
    return list(extra.values())


def requests_for(
    principal: str,
    service: str,
    operation: str,
    params: Mapping[str, Any],
    encryption: Mapping[str, str] | None = None,
) -> list[IamRequest]:
    mapper = MAPPERS.get((service, operation))
    if mapper is None:
        raise UnmappedCall(
            f"{principal} called {service}.{operation}, which tests/iam/iam_calls.py does not map to IAM "
            "actions yet: add it to MAPPERS from the AWS Service Authorization Reference"
        )
    try:
        produced = list(mapper(params))
    except KeyError as exc:
        raise UnmappedCall(f"{service}.{operation}: parameter {exc} missing, cannot name the resource") from None
    requests = [
        IamRequest(principal, action, resource, context, call=f"{service}.{operation}")
        for action, resource, context in produced
    ]
    return requests + kms_requests(requests, encryption or {})


def lambda_runtime_requests(principal: str, function_name: str) -> list[IamRequest]:
    """What the Lambda service does with a function's role on every invocation: its logs (JSON log
    format to its own log group) and, with active tracing, its X-Ray segments."""
    stream = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/{function_name}:log-stream:2026/01/01/[$LATEST]x"
    return [
        IamRequest(principal, "logs:CreateLogStream", stream, {}, call="lambda runtime"),
        IamRequest(principal, "logs:PutLogEvents", stream, {}, call="lambda runtime"),
        IamRequest(principal, "xray:PutTraceSegments", "*", {}, call="lambda runtime (active tracing)"),
        IamRequest(principal, "xray:PutTelemetryRecords", "*", {}, call="lambda runtime (active tracing)"),
    ]
