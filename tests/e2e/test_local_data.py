"""Local mode is as strict as AWS about data: private directories, declared inputs, the shared file system."""

from __future__ import annotations

from pathlib import Path

import pytest
from local_helpers import PY

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
    logs = "\n".join(p.read_text() for p in Path(summary.run_dir).glob("jobs/*/output.log"))
    assert "published 1 output files (2 bytes; 1 uploaded, 0 reused)" in logs
    assert "staged 1 input files (2 bytes)" in logs
    # Without the shared file system the same workflow cannot write /mnt/efs (as on a deployment without EFS)
    summary = run_local(write_workflow(tasks, "no-efs"))
    assert summary.status == "FAILED"
