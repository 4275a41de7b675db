"""Data flow between tasks: the format, every validation message (exact text), and the pure helpers."""

from __future__ import annotations

import json

import pytest

from stepspot import dataflow
from stepspot.errors import WorkflowValidationError
from stepspot.failures import classify
from stepspot.fleet import Capacity, agent_command, job_environment, needs_agent
from stepspot.plan import build_plan
from stepspot.policy import FailureClass
from stepspot.workflow import parse_workflow


def task(task_id: str, **fields) -> dict:
    return {"id": task_id, "container_image": "img:1", "command": ["run"], **fields}


def problems_of(document) -> list[str]:
    with pytest.raises(WorkflowValidationError) as info:
        parse_workflow(document)
    return [str(p) for p in info.value.problems]


def test_inputs_outputs_and_shared_filesystem_parse_and_inputs_imply_dependencies() -> None:
    workflow = parse_workflow(
        {
            "global_config": {"shared_filesystem": True},
            "tasks": [
                task("prep", outputs=["system.json", "frames/", "logs/*.txt"]),
                task(
                    "md",
                    inputs=[
                        {"from": "prep", "path": "system.json"},
                        {"from": "prep", "path": "frames/", "to": "in/"},
                        {"uri": "s3://reference-data/forcefields/", "to": "ff/"},
                    ],
                ),
            ],
        }
    ).workflow
    md = workflow.tasks[1]
    assert workflow.global_config.shared_filesystem is True
    assert md.depends_on == [] and md.all_dependencies == ["prep"]
    assert [s.to_json() for s in md.input_specs] == [
        {"from": "prep", "path": "system.json", "to": "system.json"},
        {"from": "prep", "path": "frames/", "to": "in/"},
        {"uri": "s3://reference-data/forcefields/", "to": "ff/"},
    ]
    plan = build_plan(workflow, "wf-1")
    assert plan.tasks["md"].depends_on == ["prep"] and plan.levels == [["prep"], ["md"]]
    assert plan.tasks["md"].shared_filesystem is True


def test_every_data_flow_mistake_is_reported_with_its_path_and_fix() -> None:
    document = {
        "tasks": [
            task("a", outputs=["/abs/out.txt", "../up.txt", "ok/"]),
            task(
                "b",
                inputs=[
                    {"from": "ghost", "path": "x"},
                    {"from": "a", "path": "missing.txt"},
                    {"from": "a", "path": "ok/file.dat", "to": "data"},
                    {"from": "a", "path": "ok/", "to": "data/"},
                    {"uri": "s3://reference-data/x", "to": "../escape"},
                    {"uri": "http://example.com/x", "to": "y"},
                ],
            ),
        ]
    }
    assert problems_of(document) == [
        "$.tasks[0].outputs[0] (task 'a'): output path '/abs/out.txt' is absolute: outputs are relative to the "
        "task's working directory; write e.g. 'results/summary.json'",
        "$.tasks[0].outputs[1] (task 'a'): output path '../up.txt' contains '..': outputs are relative to the "
        "task's working directory; write e.g. 'results/summary.json'",
        "$.tasks[1].inputs[5].uri (task 'b'): uri 'http://example.com/x' is not an S3 URI: write s3://bucket/key "
        "or s3://bucket/prefix/",
        "$.tasks[1].inputs[0].from (task 'b'): input from unknown task 'ghost': no task has this id; fix the id or "
        "add the task",
        "$.tasks[1].inputs[1].path (task 'b'): task 'a' does not declare 'missing.txt' as an output (it declares "
        "'/abs/out.txt', '../up.txt', 'ok/'): add it to the outputs of 'a' or fix the path",
        "$.tasks[1].inputs[3].to (task 'b'): two inputs write 'data/' (also $.tasks[1].inputs[2]): give each input "
        "its own 'to'",
        "$.tasks[1].inputs[4].to (task 'b'): to '../escape' contains '..': input paths are relative to the working "
        "directory; remove the leading '/' and any '..'",
    ]


def test_a_cycle_made_by_data_edges_is_printed_like_a_dependency_cycle() -> None:
    document = {
        "tasks": [
            task("a", outputs=["a.txt"], inputs=[{"from": "b", "path": "b.txt"}]),
            task("b", outputs=["b.txt"], depends_on=["a"]),
        ]
    }
    assert problems_of(document) == [
        "$.tasks[0].depends_on (task 'a'): dependency cycle a -> b -> a: a workflow must be acyclic; remove one "
        "of these dependencies"
    ]


def test_unknown_fields_of_an_input_name_the_right_model() -> None:
    document = {"tasks": [task("a", outputs=["x"]), task("b", inputs=[{"from": "a", "pth": "x"}])]}
    assert problems_of(document) == [
        "$.tasks[1].inputs[0].path (task 'b'): required field \"path\" is missing: add it",
        "$.tasks[1].inputs[0].pth (task 'b'): unknown field \"pth\": remove it or fix its spelling (did you mean "
        '"path"?)',
    ]


@pytest.mark.parametrize(
    ("declared", "path", "covered"),
    [
        ("out/", "out/a/b.dat", True),
        ("out/", "out", True),
        ("frames/*.xyz", "frames/1.xyz", True),
        ("frames/*.xyz", "frames/sub/1.xyz", False),
        ("frames/*.xyz", "frames/*.xyz", True),
        ("a.txt", "b.txt", False),
    ],
)
def test_an_input_path_must_be_covered_by_a_declared_output(declared: str, path: str, covered: bool) -> None:
    assert dataflow.covered_by([declared], path) is covered


def test_destinations_keep_the_tree_below_the_declared_directory() -> None:
    files = [
        dataflow.InputSpec(to="in/", source="p", path="frames/*.xyz"),
        dataflow.InputSpec(to="x", source="p", path="d"),
    ]
    assert dataflow.destination(files[0], "frames/1.xyz") == "in/1.xyz"
    assert dataflow.destination(files[1], "d/q/r.dat") == "x/q/r.dat"
    same = dataflow.InputSpec(to="frames/", source="p", path="frames/")
    assert dataflow.destination(same, "frames/a/b") == "frames/a/b"


def test_the_agent_wraps_tasks_with_data_and_gets_their_declarations() -> None:
    workflow = parse_workflow(
        {"tasks": [task("a", outputs=["r.json"]), task("b", inputs=[{"from": "a", "path": "r.json"}]), task("c")]}
    ).workflow
    plan = build_plan(workflow, "wf-1")
    a, b, c = (plan.tasks[t] for t in "abc")
    assert [needs_agent(t) for t in (a, b, c)] == [True, True, False]
    assert agent_command(["run"], needs_agent(c)) == ["run"]
    env = {e["Name"]: e["Value"] for e in job_environment("wf-1", b, 1, Capacity.SPOT)}
    assert json.loads(env["STEPSPOT_INPUTS"]) == [{"from": "a", "path": "r.json", "to": "r.json"}]
    assert (env["STEPSPOT_WORK_DIR"], env["STEPSPOT_CHECKPOINT_ENABLED"]) == ("/scratch/stepspot/work", "false")
    assert "STEPSPOT_OUTPUTS" not in env and "STEPSPOT_SHARED_DIR" not in env


def _failed(exit_code: int, command: list[str]) -> str:
    return json.dumps(
        {
            "JobId": "j-1",
            "Status": "FAILED",
            "StatusReason": "Essential container in task exited",
            "Attempts": [{"Container": {"ExitCode": exit_code}, "StatusReason": "Essential container in task exited"}],
            "Container": {"Command": command},
        }
    )


# The runner's own exit codes (stepspot.agent_exit_codes) and what each means for a job the runner wraps.
RUNNER_EXITS = {
    74: (
        FailureClass.INFRA_TRANSIENT,
        "exit code 74: a declared input is missing or corrupt (the job log names the file); retried",
    ),
    73: (
        FailureClass.APP_ERROR,
        "exit code 73: the program exited 0 but a declared output was not produced (the job log names the path)",
    ),
    # A `uri` input (or the checkpoint store) the job role may not read: retrying cannot help, the reason says
    # what to change (the job log has the agent's sentence naming the task and the bucket)
    77: (
        FailureClass.MISCONFIGURATION,
        "exit code 77: the stepspot runner was denied an S3 or DynamoDB request (the job log names it): for a "
        "`uri` input add its bucket to input_bucket_arns in the environment's tfvars and run `make deploy`, "
        "otherwise grant the request to the job role",
    ),
    # S3 or DynamoDB out of reach (throttled, a network blip) after the runner's own retries: retried
    75: (
        FailureClass.INFRA_TRANSIENT,
        "exit code 75: the stepspot runner could not reach S3 or DynamoDB after its retries (the job log says "
        "which); retried",
    ),
}


def test_staging_exit_codes_are_classified_only_for_agent_jobs() -> None:
    agent = agent_command(["md"], wrapped=True)  # the container command the attempt manager submits
    for code, expected in RUNNER_EXITS.items():
        found = classify("States.TaskFailed", _failed(code, agent))
        assert (found.failure_class, found.reason) == expected
        # the same code from a program the runner does not wrap keeps the program's own meaning
        assert classify("States.TaskFailed", _failed(code, ["md"])).failure_class is FailureClass.APP_ERROR


@pytest.mark.parametrize(
    "log",
    [
        "FileNotFoundError: [Errno 2] No such file or directory: 'data/out.txt'",
        "cat: data/out.txt: No such file or directory",
        "open data/out.txt: no such file or directory",
        "FileNotFoundError: [Errno 2] No such file or directory: '/w/work/data/out.txt'",
    ],
)
def test_missing_files_are_recognised_in_the_usual_error_forms(log: str) -> None:
    from pathlib import Path

    from stepspot.local.undeclared import missing_paths

    assert missing_paths(log, Path("/w/work")) == ["data/out.txt"]


def test_advice_names_a_declared_output_without_asking_to_declare_it_again() -> None:
    from stepspot.local.undeclared import Attempt, advice

    failed = Attempt("use", True, "cat: r/a.json: No such file or directory", None)
    assert advice([failed], {"make": ["r/"], "use": []}) == [
        "task 'use' read 'r/a.json', which task 'make' declares as an output, without declaring it as an input "
        '(each task runs in its own directory, as on AWS): add {"from": "make", "path": "r/a.json"} to the inputs '
        "of 'use'"
    ]
    assert advice([failed], {"make": ["other.txt"], "use": []}) == []  # nobody wrote or declares it


def test_uri_inputs_the_job_role_cannot_read_are_named_with_their_task() -> None:
    def uri(u: str) -> dataflow.InputSpec:
        return dataflow.InputSpec(to="x", uri=u)

    tasks = [
        ("a", [uri("s3://refs/genome.fa"), dataflow.InputSpec(to="r", source="p", path="r")]),
        ("b", [uri("s3://own-bucket/runs/wf/p/outputs/objects/abc"), uri("s3://own-bucket/workflows/wf/plan.json")]),
        ("c", [uri("s3://lab-raw-2026/reads.fq"), uri("s3://other/x")]),
    ]
    problems = dataflow.unreadable_uri_inputs(tasks, "own-bucket", ["arn:aws:s3:::refs", "arn:aws:s3:::lab-raw-*"])
    # The deployment's own bucket is readable under runs/ only (the job role's RunObjects statement).
    assert problems == [
        dataflow.UnreadableInput("b", "s3://own-bucket/workflows/wf/plan.json", "own-bucket"),
        dataflow.UnreadableInput("c", "s3://other/x", "other"),
    ]
    assert dataflow.unreadable_uri_inputs(tasks[:1], "own-bucket", []) == [
        dataflow.UnreadableInput("a", "s3://refs/genome.fa", "refs")
    ]


def test_jobs_get_the_shared_directory_where_the_deployment_mounts_it() -> None:
    workflow = parse_workflow({"global_config": {"shared_filesystem": True}, "tasks": [task("a")]}).workflow
    a = build_plan(workflow, "wf-1").tasks["a"]
    assert {"Name": "STEPSPOT_SHARED_DIR", "Value": "/mnt/efs"} in job_environment("wf-1", a, 1, Capacity.SPOT)
    env = job_environment("wf-1", a, 1, Capacity.SPOT, shared_mount_path="/shared")
    assert {"Name": "STEPSPOT_SHARED_DIR", "Value": "/shared"} in env
