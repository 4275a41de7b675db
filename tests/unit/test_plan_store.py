"""The stored plan format (stepspot.plan_store): lossless, compact, one shard per lookup."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pytest

from stepspot.plan import build_plan
from stepspot.plan_store import (
    MAX_STORED_BYTES_PER_TASK,
    TASKS_PER_SHARD,
    PlanFormatError,
    Shard,
    decode_header,
    decode_plan,
    decode_warnings,
    encode_plan,
    shard_of,
)
from stepspot.workflow import parse_workflow
from stepspot.workflow_limits import MAX_WORKFLOW_TASKS

# The byte budget is defined on the benchmark's DAG shapes (bench/bench_planner.py): use those very shapes.
sys.path.insert(0, str(Path(__file__).parents[2]))
from bench.bench_planner import SHAPES

KEY = "workflows/wf/plan.json"
SEED = json.loads((Path(__file__).parent / "seed_sample_workflow.json").read_text())


def _plan(document):
    loaded = parse_workflow(document)
    return build_plan(loaded.workflow, "wf", loaded.warnings)


def _decoded(encoded):
    header = decode_header(json.loads(encoded.header), KEY)
    shards = [Shard(body, key) for key, body in encoded.objects.items() if not key.endswith("warnings.json.gz")]
    warnings = [decode_warnings(body) for key, body in encoded.objects.items() if key.endswith("warnings.json.gz")]
    return header, shards, (warnings[0] if warnings else [])


def test_a_plan_comes_back_equal_with_every_field():
    # The seed: multi-node tasks routed to On-Demand, environments, names, warnings, checkpoint settings.
    document = {
        **SEED,
        "tasks": [
            *SEED["tasks"],
            {"id": "named", "name": "A name", "container_image": "i", "command": ["c"], "outputs": ["o.txt"]},
            {
                "id": "reader",
                "container_image": "i",
                "command": ["c"],
                "inputs": [{"from": "named", "path": "o.txt", "to": "in.txt"}],
                "timeout": 600,
                "queue": "on-demand",
            },
        ],
    }
    plan = _plan(document)
    assert plan.warnings and any(t.multi_node for t in plan.tasks.values())

    header, shards, warnings = _decoded(encode_plan(plan, KEY))

    assert decode_plan(header, shards, warnings) == plan


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_benchmark_shapes_round_trip_within_the_byte_budget(shape):
    plan = _plan({"name": shape, "tasks": SHAPES[shape](5_000)})
    encoded = encode_plan(plan, KEY)
    header, shards, warnings = _decoded(encode_plan(plan, KEY))

    assert decode_plan(header, shards, warnings) == plan
    assert encoded.stored_bytes / len(plan.tasks) <= MAX_STORED_BYTES_PER_TASK
    assert header.shard_count == len(shards) == -(-5_000 // TASKS_PER_SHARD)
    assert max(len(s) for s in shards) < 2 * TASKS_PER_SHARD  # the hash spreads tasks evenly


def test_a_task_with_100k_dependents_is_stored_and_found_by_its_shard():
    # The widest fan-out the task limit allows: one root and MAX_WORKFLOW_TASKS - 1 dependents.
    plan = _plan({"name": "wide", "tasks": SHAPES["fan-out"](MAX_WORKFLOW_TASKS)})
    encoded = encode_plan(plan, KEY)
    header, shards, _ = _decoded(encoded)
    number = {key: int(key.rsplit("/", 1)[1].split(".")[0]) for key in encoded.objects}
    by_index = {number[key]: shard for key, shard in zip(encoded.objects, shards, strict=True)}

    root = by_index[shard_of("task-0", header.shard_count)]
    leaf = by_index[shard_of("task-99999", header.shard_count)]
    dependents = root.dependents("task-0")
    assert dependents == plan.tasks["task-0"].dependents and len(dependents) == MAX_WORKFLOW_TASKS - 1
    assert leaf.task("task-99999") == plan.tasks["task-99999"]
    assert encoded.stored_bytes / len(plan.tasks) <= MAX_STORED_BYTES_PER_TASK


def test_the_same_plan_gives_the_same_bytes_and_another_plan_other_keys():
    plan = _plan({"name": "chain", "tasks": SHAPES["chain"](600)})
    first, again = encode_plan(plan, KEY), encode_plan(plan, KEY)
    other = encode_plan(_plan({"name": "chain", "tasks": SHAPES["chain"](601)}), KEY)

    assert (first.header, first.objects, first.digest) == (again.header, again.objects, again.digest)
    assert not set(first.objects) & set(other.objects)  # a resubmitted plan never mixes shards with the old


def test_the_shard_of_a_task_does_not_depend_on_the_process():
    # CRC-32, not Python's per-process salted hash(): a reader must find what another process wrote.
    assert [shard_of(t, 196) for t in ("task-0", "task-99999", "analysis")] == [97, 94, 176]


def test_unreadable_plans_are_refused_with_what_to_do():
    encoded = encode_plan(_plan({"name": "c", "tasks": SHAPES["chain"](3)}), KEY)
    newer = {**json.loads(encoded.header), "schema_version": 3}
    with pytest.raises(PlanFormatError, match="plan format version 3, this stepspot reads version 2: deploy"):
        decode_header(newer, "s3://b/" + KEY)
    with pytest.raises(PlanFormatError, match=r"damaged plan shard .* submit the workflow again"):
        Shard(gzip.compress(b'{"tasks": 1}'), "s3://b/x.json.gz")
    with pytest.raises(PlanFormatError, match="damaged plan shard"):
        Shard(b"not gzip", "s3://b/x.json.gz")
