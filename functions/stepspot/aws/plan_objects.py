"""S3 I/O of stored plans (format: ``stepspot.plan_store``): write a plan's shards and header, read a header,
a shard, or (the CLI report) the whole plan.

Plans written by stepspot before the sharded format (version 1: the whole plan as one JSON document at
the same key) are still read, whole: a workflow that was running when its deployment was upgraded must
finish on the new Lambdas. Only those pay the old cost (the whole plan parsed on a cold start).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydantic import ValidationError

from stepspot.aws.s3 import DocumentStore, parse_s3_uri
from stepspot.plan import Plan, plan_from_json
from stepspot.plan_store import (
    EncodedPlan,
    PlanFormatError,
    PlanHeader,
    Shard,
    decode_header,
    decode_plan,
    decode_warnings,
    is_sharded,
)

_WRITERS = 16  # concurrent PutObject calls: ~200 shards of a 100k-task plan in a few seconds


def write_plan(documents: DocumentStore, plan_key: str, encoded: EncodedPlan) -> str:
    """Shards and warnings first, the header last: a header never names objects that are not there.
    The keys depend only on the plan's content, so a retry after a crash rewrites the same objects."""
    items = list(encoded.objects.items())
    with ThreadPoolExecutor(max_workers=min(_WRITERS, len(items) or 1)) as pool:
        list(pool.map(lambda item: documents.put(item[0], item[1], content_type="application/gzip"), items))
    return documents.put(plan_key, encoded.header)


def sibling_uri(plan_uri: str, key: str) -> str:
    bucket, _ = parse_s3_uri(plan_uri)
    return f"s3://{bucket}/{key}"


def plan_key_of(plan_uri: str) -> str:
    return parse_s3_uri(plan_uri)[1]


def read_plan_document(documents: DocumentStore, plan_uri: str) -> PlanHeader | Plan:
    """The header of a sharded plan, or the whole ``Plan`` of a version-1 plan."""
    body = documents.read(plan_uri)
    try:
        data: Any = json.loads(body)
    except ValueError:
        raise PlanFormatError(f"{plan_uri} is not JSON: not a stepspot plan; submit the workflow again") from None
    if isinstance(data, dict) and is_sharded(data):
        return decode_header(data, plan_uri)
    if isinstance(data, dict) and data.get("schema_version") == 1 and "tasks" in data:
        try:
            return plan_from_json(body)
        except ValidationError as exc:
            raise PlanFormatError(f"{plan_uri} is not a valid plan: {exc.errors()[0]['msg']}") from exc
    raise PlanFormatError(f"{plan_uri} is not a stepspot plan (neither format 1 nor 2): submit the workflow again")


def read_shard(documents: DocumentStore, plan_uri: str, header: PlanHeader, shard: int) -> Shard:
    uri = sibling_uri(plan_uri, header.shard_key(plan_key_of(plan_uri), shard))
    return Shard(documents.read(uri), uri)


def read_whole_plan(documents: DocumentStore, plan_uri: str) -> Plan:
    """Every task (the CLI report draws the DAG): header, all shards and the warnings."""
    document = read_plan_document(documents, plan_uri)
    if isinstance(document, Plan):
        return document
    shards = [read_shard(documents, plan_uri, document, n) for n in range(document.shard_count)]
    warnings = []
    if document.warning_count:
        warnings = decode_warnings(documents.read(sibling_uri(plan_uri, document.warnings_key(plan_key_of(plan_uri)))))
    return decode_plan(document, shards, warnings)
