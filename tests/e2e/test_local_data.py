"""Local mode is as strict as AWS about data: private directories, declared inputs, the shared file system."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from local_helpers import PY

from stepspot.cli import main
from stepspot.cli.data_checks import planned_shared_filesystem

pytestmark = pytest.mark.slow

WRITE = "import os; os.makedirs('data', exist_ok=True); open('data/out.txt', 'w').write('42')"
READ = "print(open('data/out.txt').read())"


def task(task_id: str, code: str, **fields) -> dict:
    return {"id": task_id, "container_image": "python:3.12", "command": [PY, "-c", code], "retry_attempts": 0, **fields}


def test_a_task_reading_an_undeclared_file_fails_and_the_summary_names_the_input(run_local, write_workflow):
    # Given 'use' reads what 'make' wrote, with only a dependency (as if they shared a directory)
    path = write_workflow([task("make", WRITE), task("use", READ, depends_on=["make"])], "undeclared")
    summary = run_local(path)
    # Then it fails as it would on AWS, and the summary says which input to declare
    assert summary.status == "FAILED"
    assert summary.data_problems == [
        "task 'use' read 'data/out.txt', which task 'make' wrote, without declaring it as an input (each task "
        'runs in its own directory, as on AWS): add {"from": "make", "path": "data/out.txt"} to the inputs of '
        "'use' and 'data/out.txt' to the outputs of 'make'"
    ]


def test_declared_data_flows_through_s3_and_the_shared_file_system_only_when_enabled(run_local, write_workflow):
    check = "import sys; sys.exit(0 if open('in.txt').read() == '42' else 9)"
    shared = "open('/mnt/efs/note.txt', 'w').write('hello')"
    tasks = [
        task("make", f"{WRITE}; {shared}", outputs=["data/"]),
        task(
            "use",
            f"{check}; print(open('/mnt/efs/note.txt').read())",
            inputs=[{"from": "make", "path": "data/out.txt", "to": "in.txt"}],
        ),
    ]
    summary = run_local(write_workflow(tasks, "declared", shared_filesystem=True))
    assert summary.status == "SUCCEEDED", summary.cause
    assert (Path(summary.run_dir) / "shared" / "note.txt").read_text() == "hello"
    logs = "\n".join(p.read_text() for p in Path(summary.run_dir).glob("tasks/*/attempt-*/output.log"))
    assert "published 1 output files (2 bytes; 1 objects uploaded, 0 reused)" in logs
    assert "staged 1 input files (2 bytes)" in logs
    # Without the shared file system the same workflow cannot write /mnt/efs (as on a deployment without EFS)
    summary = run_local(write_workflow(tasks, "no-efs"))
    assert summary.status == "FAILED"


def test_the_recipes_sample_runs_locally_on_the_shared_file_system(run_local):
    # Given the runnable twin of tests/unit/seed_sample_workflow.json (its /mnt/efs paths, stand-in programs)
    twin = Path(__file__).resolve().parents[2] / "examples" / "seed-sample" / "workflow.json"
    summary = run_local(twin)
    # Then every stage read the previous one's files from the shared file system
    assert summary.status == "SUCCEEDED", summary.cause
    result = json.loads((Path(summary.run_dir) / "shared" / "results" / "summary.json").read_text())
    assert result["steps"] == 60


def test_local_outputs_say_where_each_task_published_its_files(run_local):
    from local_helpers import MD_EXAMPLE

    summary = run_local(MD_EXAMPLE, time_scale=1800)
    assert summary.status == "SUCCEEDED", summary.cause
    recorded = json.loads((Path(summary.run_dir) / "outputs.json").read_text())["tasks"]
    assert [f["path"] for f in recorded["analysis"]["files"]] == ["results/summary.json"]
    assert (Path(recorded["analysis"]["work_dir"]) / "results" / "summary.json").is_file()
    rows = {row["task_id"]: row for row in summary.per_task}
    assert rows["equilibration"]["output_files"] == 1 and rows["equilibration"]["output_bytes"] > 0


def test_a_shared_file_system_the_environment_lacks_is_refused_before_anything_starts(write_workflow, tmp_path, capsys):
    # Given prod's Terraform variables leave the shared file system off (dev's switch it on)
    assert (planned_shared_filesystem("prod"), planned_shared_filesystem("dev")) == (False, True)
    workdir = tmp_path / ".stepspot"
    path = write_workflow([task("a", "pass")], "efs", shared_filesystem=True)
    # Then local mode refuses what `stepspot submit --env prod` would refuse, before any run directory exists
    assert main(["local", str(path), "--env", "prod", "--no-progress", "--workdir", str(workdir)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"stepspot: {path}: global_config.shared_filesystem is true but environment 'prod' has no shared file "
        "system: set shared_filesystem_enabled = true in terraform/environments/prod.tfvars and run `make deploy "
        "ENV=prod`, or pass data with tasks[].inputs and tasks[].outputs instead."
    )
    assert not workdir.exists()
