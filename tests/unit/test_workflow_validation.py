"""Workflow definitions: the seed format, YAML, and every validation problem with its location."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from stepspot.errors import WorkflowValidationError
from stepspot.workflow import RANGES, load_workflow_file, parse_workflow

SEED = Path(__file__).with_name("seed_sample_workflow.json")


def seed() -> dict:
    return json.loads(SEED.read_text())


def problems_of(document) -> list[str]:
    with pytest.raises(WorkflowValidationError) as info:
        parse_workflow(document)
    return [str(p) for p in info.value.problems]


def task(task_id: str, **fields) -> dict:
    return {"id": task_id, "container_image": "img:1", "command": ["run"], **fields}


def test_seed_sample_is_valid_and_warns_about_multi_node_spot():
    loaded = load_workflow_file(SEED)

    assert [t.id for t in loaded.workflow.tasks] == [
        "data-preprocessing",
        "equilibration",
        "production-run",
        "analysis",
    ]
    spot = [w.location for w in loaded.warnings if "cannot use Spot" in w.message]
    assert spot == [
        "$.tasks[1] (task 'equilibration')",
        "$.tasks[2] (task 'production-run')",
        "$.tasks[3] (task 'analysis')",
    ]
    assert all("On-Demand" in w.message for w in loaded.warnings if "cannot use Spot" in w.message)
    # its tasks read and write /mnt/efs without asking for the shared file system: said once per task
    shared = [str(w) for w in loaded.warnings if "/mnt/efs" in w.message]
    assert len(shared) == 4
    assert shared[0] == (
        "$.tasks[0] (task 'data-preprocessing'): uses paths under /mnt/efs but global_config.shared_filesystem is "
        "false: set it to true (the deployment needs a shared file system) or pass the files as inputs/outputs"
    )


def test_yaml_and_json_give_the_same_workflow(tmp_path):
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(seed()))

    assert load_workflow_file(path).workflow == load_workflow_file(SEED).workflow


def test_seed_defaults_are_applied():
    workflow = parse_workflow({"tasks": [task("a")]}).workflow

    only = workflow.tasks[0]
    assert (only.vcpus, only.memory, only.nodes, only.spot_enabled, only.checkpoint_enabled) == (
        1,
        1024,
        1,
        True,
        False,
    )
    assert workflow.global_config.max_retry_attempts == 3 and only.backoff_multiplier == 2.0


@pytest.mark.parametrize(
    ("text", "location", "fragment"),
    [
        ('{"name": "x",\n  "tasks": [,]}', "line 2, column 13", "malformed JSON"),
        ("name: x\ntasks:\n  - id: a\n   bad: [", "line 4", "malformed YAML"),
    ],
)
def test_malformed_text_reports_line_and_column(text, location, fragment):
    (problem,) = problems_of(text)

    assert problem.startswith(location) and fragment in problem


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([], '$: the top level must be an object with "name" and "tasks", found list'),
        ({"name": "x"}, "$.tasks: missing: add"),
        ({"tasks": []}, "$.tasks: no tasks: a workflow needs at least one task"),
        ({"tasks": [{"container_image": "i", "command": ["c"]}]}, '$.tasks[0].id: required field "id" is missing'),
        ({"tasks": "all"}, "$.tasks: tasks must be a list"),
    ],
)
def test_wrong_shapes(document, expected):
    assert any(p.startswith(expected) for p in problems_of(document)), problems_of(document)


def test_every_problem_is_reported_at_once_in_document_order():
    document = {
        "global_config": {"spot_strategy": "cheap", "checkpoint_interval": 5},
        "tasks": [
            task("a", depends_on=["c"], vcpus=0, memory="4GB", nodes=True, environment={"A": 1}, depend_on=[]),
            task("b c", command=[], depends_on=["a", "zz"]),
            task("c", depends_on=["a", "c"], retry_attempts=11, backoff_multiplier=0.5),
            task("a"),
        ],
    }

    problems = problems_of(document)

    assert problems == [
        "$.global_config.checkpoint_interval: checkpoint_interval is 5: use a whole number of seconds (60-86400) "
        'or "auto"',
        "$.global_config.spot_strategy: spot_strategy is 'cheap': use one of 'diversified', 'capacity-optimized' or "
        "'on-demand-only'",
        "$.tasks[0].vcpus (task 'a'): vcpus is 0, out of range: use 1 to 192 vCPUs per node (the largest Batch "
        "instance types have 192)",
        "$.tasks[0].memory (task 'a'): memory must be a whole number, found str '4GB'",
        "$.tasks[0].nodes (task 'a'): nodes must be a whole number, found bool True",
        "$.tasks[0].environment.A (task 'a'): environment variable A must be a string: quote the value (1)",
        "$.tasks[0].depend_on (task 'a'): unknown field \"depend_on\": remove it or fix its spelling (did you mean "
        '"depends_on"?)',
        "$.tasks[0].depends_on (task 'a'): dependency cycle a -> c -> a: a workflow must be acyclic; remove one of "
        "these dependencies",
        "$.tasks[1].id (task 'b c'): task id 'b c' cannot be used in S3 keys or Step Functions execution names: use "
        "only letters, digits, '-' and '_', at most 80 characters (for example 'b-c')",
        "$.tasks[1].command (task 'b c'): command is empty: give at least one item",
        "$.tasks[1].depends_on[1] (task 'b c'): unknown dependency 'zz': no task has this id; fix the id or add the "
        "task",
        "$.tasks[2].retry_attempts (task 'c'): retry_attempts is 11, out of range: use 0 to 10 retries after the "
        "first attempt",
        "$.tasks[2].backoff_multiplier (task 'c'): backoff_multiplier is 0.5, out of range: use 1.0 to 10.0 the "
        "factor by which the wait between retries grows",
        "$.tasks[2].depends_on[1] (task 'c'): task 'c' depends on itself: remove 'c' from depends_on",
        "$.tasks[3].id: duplicate task id 'a' (also used by $.tasks[0]): give every task its own id",
    ]


def test_each_independent_cycle_is_printed():
    document = {
        "tasks": [
            task("a", depends_on=["c"]),
            task("b", depends_on=["a"]),
            task("c", depends_on=["b"]),
            task("x", depends_on=["y"]),
            task("y", depends_on=["x"]),
            task("free"),
        ]
    }

    cycles = [p for p in problems_of(document) if "cycle" in p]

    assert len(cycles) == 2
    assert any("a -> b -> c -> a" in p for p in cycles)
    assert any("x -> y -> x" in p for p in cycles)


@pytest.mark.parametrize("bad_id", ["has/slash", "x" * 81, "dots.in.id", "ümlaut", ""])
def test_ids_unsafe_for_s3_keys_or_execution_names_are_rejected(bad_id):
    (problem,) = problems_of({"tasks": [task(bad_id)]})

    assert "cannot be used in S3 keys or Step Functions execution names" in problem


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("vcpus", 193),
        ("memory", 64),
        ("nodes", 0),
        ("nodes", 257),
        ("gpus", -1),
        ("retry_attempts", -1),
        ("backoff_multiplier", 11),
        ("timeout", 30),
    ],
)
def test_out_of_range_numbers_name_the_allowed_range(field, value):
    # pydantic rejects the value (Field(ge=..., le=...)); ours is the sentence: the range and its unit
    low, high, unit = RANGES[field]
    (problem,) = problems_of({"tasks": [task("a", **{field: value})]})

    assert problem == f"$.tasks[0].{field} (task 'a'): {field} is {value!r}, out of range: use {low} to {high} {unit}"


def test_an_out_of_range_checkpoint_interval_names_its_range_and_auto():
    (problem,) = problems_of({"tasks": [task("a", checkpoint_interval=86_401)]})

    assert problem == (
        "$.tasks[0].checkpoint_interval (task 'a'): checkpoint_interval is 86401: use a whole number of seconds "
        '(60-86400) or "auto"'
    )


def test_checkpoint_interval_accepts_auto_and_global_max_retry_range():
    workflow = parse_workflow({"global_config": {"checkpoint_interval": "auto"}, "tasks": [task("a")]}).workflow
    assert workflow.global_config.checkpoint_interval == "auto"

    (problem,) = problems_of({"global_config": {"max_retry_attempts": 99}, "tasks": [task("a")]})
    assert problem.startswith("$.global_config.max_retry_attempts: max_retry_attempts is 99, out of range")


def test_timeout_shorter_than_estimate_is_a_warning():
    loaded = parse_workflow({"tasks": [task("a", timeout=60, estimated_runtime=3600)]})

    assert [w.severity for w in loaded.warnings] == ["warning"]
    assert "stopped before they are expected to finish" in loaded.warnings[0].message


def test_missing_file_and_directory_are_clear(tmp_path):
    for path, fragment in ((tmp_path / "nope.json", "file not found"), (tmp_path, "is a directory")):
        with pytest.raises(WorkflowValidationError) as info:
            load_workflow_file(path)
        assert fragment in str(info.value.problems[0])


def test_validation_does_not_mutate_the_input():
    document = seed()
    before = copy.deepcopy(document)

    parse_workflow(document)

    assert document == before


def test_published_schema_matches_the_model():
    from stepspot.cli.schema import schema_text

    committed = Path(__file__).parents[2] / "schema" / "workflow.schema.json"
    assert committed.read_text() == schema_text(), "run: .venv/bin/stepspot schema -o schema/workflow.schema.json"


def test_a_dependency_listed_twice_is_reported():
    (problem,) = problems_of({"tasks": [task("a"), task("b", depends_on=["a", "a"])]})

    assert problem == "$.tasks[1].depends_on[1] (task 'b'): 'a' is listed twice in depends_on: list it once"


def _one_task(**fields):
    return {"name": "w", "tasks": [{"id": "sim", "container_image": "img", "command": ["run"], **fields}]}


def test_environment_names_reserved_by_batch_are_refused_with_path_and_fix():
    with pytest.raises(WorkflowValidationError) as caught:
        parse_workflow(_one_task(environment={"AWS_BATCH_JOB_ID": "x", "OK": "y"}))
    (problem,) = caught.value.problems
    assert problem.location == "$.tasks[0].environment.AWS_BATCH_JOB_ID (task 'sim')"
    assert "reserved by AWS Batch" in problem.message and "rename the variable" in problem.message


def test_a_submit_request_over_30_kib_is_refused_naming_the_task():
    from stepspot.fleet import SUBMIT_JOB_MAX_BYTES

    # Given a command just small enough, and one a little larger
    parse_workflow(_one_task(command=["run", "x" * 20_000]))
    with pytest.raises(WorkflowValidationError) as caught:
        parse_workflow(_one_task(command=["run", "x" * 10_000], environment={"BIG": "y" * SUBMIT_JOB_MAX_BYTES}))
    (problem,) = caught.value.problems
    assert problem.location == "$.tasks[0] (task 'sim')"
    assert "SubmitJob request would be" in problem.message and "30,720-byte limit" in problem.message


@pytest.mark.parametrize("task_id", ["_private", "-dash", "9lives", "ok"])
def test_batch_job_names_start_with_a_letter_or_digit(task_id):
    from stepspot.aws.batch import job_name

    name = job_name("wf-1", task_id, 2)
    assert name[0].isalnum() and len(name) <= 128
    assert task_id.lstrip("_-") in name
