"""Local mode and the emulated deployment's capacity: a task too big is refused before anything starts,
an out-of-memory attempt is retried with more memory, a multi-node task runs one process per node."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from local_helpers import MD_EXAMPLE, PY

from stepspot.cli import main

pytestmark = pytest.mark.slow


def test_a_task_too_big_for_the_emulated_deployment_is_refused_before_anything_starts(write_workflow, tmp_path, capsys):
    workdir = tmp_path / ".stepspot"
    task = {"id": "huge", "container_image": "python:3.12", "command": [PY, "-c", "pass"], "memory": 600_000}
    path = write_workflow([task])
    code = main(["local", str(path), "--env", "dev", "--no-progress", "--workdir", str(workdir)])
    assert code == 2
    err = capsys.readouterr().err
    assert "task 'huge' asks for 1 vCPU and 600000 MiB per node, more than any instance type of queue 'spot'" in err
    assert not workdir.exists()  # no run directory, nothing registered, no job started


def test_an_out_of_memory_task_succeeds_on_its_second_attempt_with_more_memory(run_local, write_workflow):
    # Given a program that holds ~300 MiB in a task that asks for 256 MiB
    hold = "import time; block = b'x' * (300 * 2**20); time.sleep(1.5)"
    task = {"id": "hungry", "container_image": "python:3.12", "command": [PY, "-c", hold], "memory": 256}
    summary = run_local(write_workflow([task]))
    # Then the first attempt is killed for memory (137) and the retry gets 1.5x as much and succeeds
    assert summary.status == "SUCCEEDED", summary.cause
    (row,) = summary.per_task
    assert row["attempts"] == 2
    assert row["memory_mib"] == [256, 384]
    assert summary.app_failures == 1


def test_each_task_attempt_is_a_new_batch_job_whose_batch_attempt_is_1(run_local, write_workflow):
    # Given a program that fails its first task attempt and reports both attempt variables
    report = (
        "import os, sys; print('attempts', os.environ['STEPSPOT_ATTEMPT'], os.environ['AWS_BATCH_JOB_ATTEMPT']);"
        " sys.exit(3 if os.environ['STEPSPOT_ATTEMPT'] == '1' else 0)"
    )
    task = {"id": "twice", "container_image": "python:3.12", "command": [PY, "-c", report], "retry_attempts": 2}
    summary = run_local(write_workflow([task]))
    assert summary.status == "SUCCEEDED", summary.cause
    run = Path(summary.run_dir)
    # Then the task's attempt counts up, while each job (a new SubmitJob, as in AWS) is on its first Batch attempt
    assert "attempts 1 1" in (run / "tasks/twice/attempt-1/output.log").read_text()
    assert "attempts 2 1" in (run / "tasks/twice/attempt-2/output.log").read_text()


def test_the_multi_node_task_runs_with_one_rank_per_node(run_local, tmp_path):
    # Given the MD example, whose replica runs on 2 nodes
    summary = run_local(MD_EXAMPLE, time_scale=1800)
    assert summary.status == "SUCCEEDED", summary.cause
    run = Path(summary.run_dir)
    (replica_file,) = run.glob("tasks/production-replica/attempt-*/work/production/replica.json")
    replica = json.loads(replica_file.read_text())
    # Then the main node's program computed with 2 ranks, the second one served by node 1 over TCP
    assert replica["ranks"] == 2
    node_logs = list(run.glob("tasks/*/attempt-*/node-1.log"))
    assert len(node_logs) == 1
    text = node_logs[0].read_text()
    assert "md.py rank 1/2: computed forces for 600 steps" in text
    assert "the main node ended (exit code 0)" in text
    hostfile = (node_logs[0].parent / "hostfile").read_text().splitlines()
    assert hostfile == ["127.0.0.1 slots=16", "127.0.0.1 slots=16"]


def test_a_misconfigured_task_fails_at_once_without_retries(run_local, write_workflow):
    # Given a task the runner wraps (it checkpoints) ending with the runner's misconfiguration code 78 (what
    # the container command's shell gives an image without python3), with retries left
    task = {
        "id": "broken",
        "container_image": "python:3.12",
        "command": [PY, "-c", "import sys; sys.exit(78)"],
        "checkpoint_enabled": True,
        "retry_attempts": 3,
    }
    summary = run_local(write_workflow([task]))
    # Then one attempt, no retry, the reason says what to change, and its own metric counts it once
    assert summary.status == "FAILED"
    (row,) = summary.per_task
    assert (row["state"], row["attempts"]) == ("FAILED", 1)
    assert "misconfiguration" in (summary.cause or "")
    assert "use an image with python3" in (summary.cause or "")
    assert summary.metrics.get("MisconfigurationFailures") == 1
    assert not summary.metrics.get("ApplicationFailures")
