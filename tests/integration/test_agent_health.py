"""The runner's checkpoint health reports as a real subprocess against a moto server (stepspot.run_health)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from boto3.dynamodb.types import TypeDeserializer
from checkpoint_support import FakeImds, Store, run_agent

from stepspot.checkpointing.aws.table import CheckpointTable
from stepspot.run_health import CHECKPOINT_EMPTY_MESSAGE, run_sk

pytest_plugins = ("checkpoint_support",)  # fixtures: moto_endpoint, store

_plain = TypeDeserializer().deserialize


def run_record(store: Store, job_id: str, workflow: str = "wf-1", task: str = "simulate") -> dict[str, Any]:
    item = store.ddb.get_item(
        TableName=store.table, Key={"pk": {"S": f"{workflow}#{task}"}, "sk": {"S": run_sk(job_id)}}
    ).get("Item")
    assert item is not None, "the runner wrote no run record"
    return {name: _plain(value) for name, value in item.items()}


def test_a_checkpointed_program_that_writes_nothing_is_flagged_once(store: Store, tmp_path: Path) -> None:
    # Given a checkpointed program that never writes into $STEPSPOT_CHECKPOINT_DIR
    env = {**store.env(tmp_path / "empty"), "AWS_BATCH_JOB_ID": "job-empty", "STEPSPOT_ENVIRONMENT": "prod"}
    program = [sys.executable, "-c", "import time; time.sleep(2.0)"]
    # When it runs for more than two intervals
    result = run_agent(["run", "--interval", "0.3", "--", *program], env)
    # Then the task still succeeds, with one warning, one metric line and the flag on its run record
    assert result.returncode == 0, result.stderr
    assert result.stderr.count(CHECKPOINT_EMPTY_MESSAGE) == 1
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert len(events) == 1
    assert events[0]["stepspot_event"] == "checkpoint_empty"
    assert (events[0]["environment"], events[0]["task_id"]) == ("prod", "simulate")
    assert events[0]["waited_seconds"] >= 0.6
    record = run_record(store, "job-empty")
    assert record["checkpoint_empty"] is True
    assert record["job_id"] == "job-empty"
    assert "checkpoint interval 0.3 s (fixed)" in result.stderr


def test_a_program_that_writes_is_not_flagged_and_its_saves_and_restore_are_recorded(
    store: Store, tmp_path: Path
) -> None:
    # Given a program that writes its state at once and keeps running
    script = (
        "import os,time; open(os.environ['STEPSPOT_CHECKPOINT_DIR']+'/state.json','w').write('{\"step\": 1}'); "
        "time.sleep(1.5)"
    )
    env = {**store.env(tmp_path / "one"), "AWS_BATCH_JOB_ID": "job-a"}
    result = run_agent(["run", "--interval", "0.3", "--", sys.executable, "-c", script], env)
    assert result.returncode == 0, result.stderr
    assert CHECKPOINT_EMPTY_MESSAGE not in result.stderr
    first = run_record(store, "job-a")
    assert "checkpoint_empty" not in first
    assert first["program_started_epoch"] <= first["last_saved_epoch"]
    assert "restored_sequence" not in first
    # When the next attempt starts on an empty disk
    again = run_agent(
        ["run", "--interval", "60", "--", sys.executable, "-c", "pass"],
        {**store.env(tmp_path / "two"), "AWS_BATCH_JOB_ID": "job-b"},
    )
    assert again.returncode == 0, again.stderr
    # Then its run record says what it restored and how long that took
    second = run_record(store, "job-b")
    assert second["restored_sequence"] >= 1
    assert 0 <= float(second["restore_seconds"]) < 10


def test_auto_interval_uses_the_interruptions_observed_on_its_instance_type_and_zone(
    store: Store, tmp_path: Path
) -> None:
    # Given 10 interruption notices in 10 hours of runs on c7i.xlarge in us-east-1a
    table = CheckpointTable(store.ddb, store.table)
    table.add_interruption_exposure("c7i.xlarge", "us-east-1a", 36000.0, 10)
    imds = FakeImds(placement=("c7i.xlarge", "us-east-1a"))
    try:
        env = {**store.env(tmp_path / "d"), "AWS_BATCH_JOB_ID": "job-mtbi", "STEPSPOT_IMDS_ENDPOINT": imds.endpoint}
        # When a task with the 'auto' interval runs there
        result = run_agent(["run", "--", sys.executable, "-c", "import time; time.sleep(0.5)"], env)
    finally:
        imds.close()
    # Then the runner takes M = 36000 s / 10 = 3600 s and says where it came from
    assert result.returncode == 0, result.stderr
    assert (
        "mean time between interruptions for 'auto': 3600 s "
        "(observed: 10 notices in 10.0 h on c7i.xlarge in us-east-1a)" in result.stderr
    )
    # And it added its own running time (no notice) to the statistics, and its placement to its run record
    exposure, notices = table.interruption_stats("c7i.xlarge", "us-east-1a")
    assert notices == 10
    assert 36000.4 <= exposure < 36010
    record = run_record(store, "job-mtbi")
    assert (record["instance_type"], record["availability_zone"]) == ("c7i.xlarge", "us-east-1a")


def test_without_a_placement_the_fixed_mtbi_is_used(store: Store, tmp_path: Path) -> None:
    env = {**store.env(tmp_path / "d"), "AWS_BATCH_JOB_ID": "job-fixed"}  # IMDS off: not on EC2
    result = run_agent(["run", "--", sys.executable, "-c", "pass"], env)
    assert result.returncode == 0, result.stderr
    assert "mean time between interruptions for 'auto': 21600 s (fixed)" in result.stderr
