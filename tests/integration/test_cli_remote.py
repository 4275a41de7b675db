"""The remote commands (submit, status, watch, logs, cancel, resume, checkpoints) against moto.

The deployment comes from STEPSPOT_<OUTPUT> variables (as in CI), the resources are created in moto
with the names and key layout of docs/contracts.md. Without moto's interpreter an execution stays
RUNNING until the test ends it, which is what lets each test choose the state it needs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.stepfunctions.models import stepfunctions_backends

from stepspot.aws.cli_errors import aws_call
from stepspot.cli import main, remote_status
from stepspot.cli.remote_context import RemoteContext
from stepspot.errors import AwsCredentialsError, AwsThrottledError
from stepspot.local.resources import create_table

REGION = "us-east-1"
ROLE = f"arn:aws:iam::{DEFAULT_ACCOUNT_ID}:role/stepspot-sfn"
SEED = Path(__file__).resolve().parents[1] / "unit" / "seed_sample_workflow.json"
WORKFLOW = {
    "name": "Tiny MD",
    "tasks": [
        {"id": "prep", "container_image": "busybox", "command": ["true"]},
        {"id": "run", "container_image": "busybox", "command": ["true"], "depends_on": ["prep"]},
        {"id": "analyse", "container_image": "busybox", "command": ["true"], "depends_on": ["run"]},
    ],
}


class Env:
    """Handles to the moto resources of one deployed environment."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.s3 = boto3.client("s3", region_name=REGION)
        self.ddb = boto3.client("dynamodb", region_name=REGION)
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.logs = boto3.client("logs", region_name=REGION)
        self.bucket = "stepspot-dev-data"
        self.s3.create_bucket(Bucket=self.bucket)
        for table in ("stepspot-dev-state", "stepspot-dev-checkpoints"):
            create_table(self.ddb, table)
        definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
        self.workflow_sm = self.sfn.create_state_machine(
            name="stepspot-dev-workflow", definition=definition, roleArn=ROLE
        )["stateMachineArn"]
        self.task_sm = self.sfn.create_state_machine(name="stepspot-dev-task", definition=definition, roleArn=ROLE)[
            "stateMachineArn"
        ]
        self.log_group = "/aws/batch/stepspot-dev"
        self.logs.create_log_group(logGroupName=self.log_group)

    def outputs(self) -> dict[str, str]:
        return {
            "region": REGION,
            "environment": "dev",
            "workflow_state_machine_arn": self.workflow_sm,
            "task_state_machine_arn": self.task_sm,
            "bucket_name": self.bucket,
            "state_table_name": "stepspot-dev-state",
            "checkpoint_table_name": "stepspot-dev-checkpoints",
            "spot_job_queue_arn": f"arn:aws:batch:{REGION}:{DEFAULT_ACCOUNT_ID}:job-queue/spot",
            "ondemand_job_queue_arn": f"arn:aws:batch:{REGION}:{DEFAULT_ACCOUNT_ID}:job-queue/ondemand",
            "workflow_parser_function_name": "stepspot-dev-workflow-parser",
            "batch_log_group_name": self.log_group,
        }

    def workflow_file(self, document: dict[str, Any] | None = None, name: str = "wf.json") -> Path:
        path = self.tmp_path / name
        path.write_text(json.dumps(document or WORKFLOW))
        return path

    def start(self, name: str, machine: str | None = None, **extra: Any) -> str:
        execution_input = {"workflow_id": name.split("--r")[0], **extra}
        return self.sfn.start_execution(
            stateMachineArn=machine or self.workflow_sm, name=name, input=json.dumps(execution_input)
        )["executionArn"]

    def set_status(self, execution_arn: str, status: str, error: str | None = None) -> None:
        backend = stepfunctions_backends[DEFAULT_ACCOUNT_ID][REGION]
        execution = backend.describe_execution(execution_arn)
        execution.status = status
        execution.stop_date = datetime.now(UTC)
        execution.error = error

    def put_task(self, workflow_id: str, task_id: str, **attributes: Any) -> None:
        item = {"pk": f"WF#{workflow_id}", "sk": f"TASK#{task_id}", **attributes}
        boto3.resource("dynamodb", region_name=REGION).Table("stepspot-dev-state").put_item(Item=item)

    def put_checkpoint(self, workflow_id: str, task_id: str, sequence: int, latest: bool = False) -> None:
        table = boto3.resource("dynamodb", region_name=REGION).Table("stepspot-dev-checkpoints")
        pk = f"{workflow_id}#{task_id}"
        table.put_item(
            Item={
                "pk": pk,
                "sk": f"SEQ#{sequence:012d}",
                "sequence": sequence,
                "status": "COMPLETE",
                "created_at": f"2026-11-22T00:0{sequence}:00Z",
                "file_count": 3,
                "total_bytes": 5 * 1024 * 1024,
            }
        )
        if latest:
            table.put_item(Item={"pk": pk, "sk": "LATEST", "sequence": sequence})

    def executions(self) -> list[dict[str, Any]]:
        return self.sfn.list_executions(stateMachineArn=self.workflow_sm)["executions"]

    def execution_input(self, name: str) -> dict[str, Any]:
        arn = next(e["executionArn"] for e in self.executions() if e["name"] == name)
        return json.loads(self.sfn.describe_execution(executionArn=arn)["input"])


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.chdir(tmp_path)  # no terraform/ above: only the variables describe the deployment
    with mock_aws():
        environment = Env(tmp_path)
        for name, value in environment.outputs().items():
            monkeypatch.setenv(f"STEPSPOT_{name.upper()}", value)
        monkeypatch.setattr(remote_status, "sleep", lambda seconds: None)
        yield environment


# --------------------------------------------------------------------------- submit


def test_submit_uploads_the_definition_and_starts_the_workflow(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    path = env.workflow_file()
    assert main(["submit", str(path), "--execution-name", "md-1"]) == 0
    out = capsys.readouterr().out
    stored = json.loads(env.s3.get_object(Bucket=env.bucket, Key="workflows/md-1/definition.json")["Body"].read())
    assert stored == WORKFLOW
    assert env.execution_input("md-1") == {
        "workflow_id": "md-1",
        "definition_uri": f"s3://{env.bucket}/workflows/md-1/definition.json",
    }
    assert f"arn:aws:states:{REGION}:{DEFAULT_ACCOUNT_ID}:execution:stepspot-dev-workflow:md-1" in out
    assert f"https://{REGION}.console.aws.amazon.com/states/home?region={REGION}#/v2/executions/details/" in out
    assert "stepspot watch md-1 --env dev" in out


def test_submit_accepts_yaml_and_generates_a_safe_workflow_id(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    path = env.tmp_path / "wf.yaml"
    path.write_text(
        "name: 'Tiny MD: run #2'\ntasks:\n  - id: a\n    container_image: busybox\n    command: [\"true\"]\n"
    )
    assert main(["submit", str(path)]) == 0
    (execution,) = env.executions()
    assert execution["name"].startswith("tiny-md-run-2-")
    assert len(execution["name"]) <= 64
    key = f"workflows/{execution['name']}/definition.json"
    assert json.loads(env.s3.get_object(Bucket=env.bucket, Key=key)["Body"].read())["name"] == "Tiny MD: run #2"


def test_submit_of_an_invalid_workflow_exits_2_and_touches_nothing(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = {"name": "x", "tasks": [{"id": "a", "container_image": "i", "command": ["c"], "depends_on": ["ghost"]}]}
    assert main(["submit", str(env.workflow_file(bad)), "--execution-name", "bad"]) == 2
    assert "ghost" in capsys.readouterr().err
    assert env.executions() == []
    assert env.s3.list_objects_v2(Bucket=env.bucket).get("KeyCount", 0) == 0


def test_submit_of_a_task_that_fits_no_queue_exits_2_and_touches_nothing(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    huge = {"name": "x", "tasks": [{"id": "huge", "container_image": "i", "command": ["c"], "memory": 900_000}]}
    assert main(["submit", str(env.workflow_file(huge)), "--env", "dev", "--execution-name", "huge"]) == 2
    assert "task 'huge' asks for 1 vCPU and 900000 MiB per node" in capsys.readouterr().err
    assert env.executions() == []
    assert env.s3.list_objects_v2(Bucket=env.bucket).get("KeyCount", 0) == 0


def test_submit_with_a_used_execution_name_says_what_to_do(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    path = env.workflow_file()
    assert main(["submit", str(path), "--execution-name", "md-1"]) == 0
    assert main(["submit", str(path), "--execution-name", "md-1"]) == 1
    assert "An execution named 'md-1' already exists: pick another --execution-name" in capsys.readouterr().err


def test_submit_rejects_an_unsafe_execution_name(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["submit", str(env.workflow_file()), "--execution-name", "md 1"]) == 2
    assert "--execution-name 'md 1' must be 1-64 letters" in capsys.readouterr().err


def test_submit_without_a_deployment_says_what_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(WORKFLOW))
    assert main(["submit", str(path), "--env", "staging"]) == 3
    err = capsys.readouterr().err
    assert "No Terraform directory found for environment 'staging'" in err
    assert "make deploy ENV=staging" in err


def test_submit_without_credentials_says_how_to_log_in(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = env.workflow_file()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(env.tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(env.tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    assert main(["submit", str(path), "--execution-name", "md-1"]) == 3
    assert "No usable AWS credentials to check the execution name: run `aws sso login`" in capsys.readouterr().err


def test_expired_and_throttled_calls_become_sentences() -> None:
    def failing(code: str) -> None:
        raise ClientError({"Error": {"Code": code, "Message": "m"}}, "StartExecution")

    with pytest.raises(AwsCredentialsError, match="have expired"), aws_call("start the workflow execution"):
        failing("ExpiredTokenException")
    with pytest.raises(AwsThrottledError, match="try again"), aws_call("list"):
        failing("ThrottlingException")


# --------------------------------------------------------------------------- status and watch


def seed_progress(env: Env, workflow_id: str = "md-1") -> str:
    arn = env.start(workflow_id, definition_uri="s3://x")
    env.put_task(workflow_id, "prep", state="SUCCEEDED", attempts=1, interruptions=0, queue="spot")
    env.put_task(
        workflow_id,
        "run",
        state="RUNNING",
        attempts=2,
        interruptions=1,
        queue="spot",
        last_failure_class="spot_reclaim",
    )
    env.put_task(workflow_id, "analyse", state="PENDING", attempts=0, interruptions=0, remaining_deps=1)
    env.put_checkpoint(workflow_id, "run", 1)
    env.put_checkpoint(workflow_id, "run", 2, latest=True)
    return arn


def test_status_shows_every_task_with_attempts_interruptions_and_checkpoints(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_progress(env)
    assert main(["status", "md-1", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["status"] == "RUNNING"
    assert document["counts"] == {"SUCCEEDED": 1, "RUNNING": 1, "PENDING": 1}
    run = next(task for task in document["tasks"] if task["id"] == "run")
    assert (run["attempts"], run["interruptions"], run["checkpoints"]) == (2, 1, 2)
    assert run["last_failure_class"] == "spot_reclaim"

    assert main(["status", "md-1"]) == 0
    out = capsys.readouterr().out
    assert "3 tasks: 1 succeeded, 1 running, 1 pending" in out
    assert "spot_reclaim" in out


def test_status_counts_ready_tasks(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a task whose dependencies are done but which waits READY for a free slot
    seed_progress(env)
    env.put_task("md-1", "report", state="READY", attempts=0, interruptions=0, remaining_deps=0)
    assert main(["status", "md-1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["READY"] == 1
    # Then the summary line counts it, so the parts add up to the total
    assert main(["status", "md-1"]) == 0
    assert "4 tasks: 1 succeeded, 1 running, 1 ready, 1 pending" in capsys.readouterr().out


def test_status_flags_an_empty_checkpoint_directory_and_shows_lost_work(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    from decimal import Decimal

    seed_progress(env)
    # Given "run" lost 42.5 s to its reclaim and restored in 1.5 s (workflow monitor), and "prep"'s runner
    # flagged its checkpoint directory as empty while the job still runs (its run record, live)
    env.put_task(
        "md-1",
        "run",
        state="RUNNING",
        attempts=2,
        interruptions=1,
        lost_work_seconds=[Decimal("42.5")],
        restore_seconds=[Decimal("1.5")],
    )
    boto3.resource("dynamodb", region_name=REGION).Table("stepspot-dev-checkpoints").put_item(
        Item={"pk": "md-1#prep", "sk": "RUN#job-9", "checkpoint_empty": True}
    )
    assert main(["status", "md-1", "--json"]) == 0
    tasks = {task["id"]: task for task in json.loads(capsys.readouterr().out)["tasks"]}
    assert (tasks["run"]["lost_work_seconds"], tasks["run"]["restore_seconds"]) == ([42.5], [1.5])
    assert (tasks["prep"]["checkpoint_empty"], tasks["run"]["checkpoint_empty"]) == (True, False)
    assert tasks["run"]["checkpoints"] == 2  # run records are not checkpoints

    assert main(["status", "md-1"]) == 0
    out = capsys.readouterr().out
    assert "warning: prep: checkpointing enabled but nothing saved" in out
    run_row = next(line for line in out.splitlines() if line.lstrip().startswith("run "))
    assert "42.5" in run_row and "1.5" in run_row


def test_status_shows_the_memory_each_attempt_had(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    seed_progress(env)
    # Given "run" ran out of memory with 4096 MiB and its second attempt got 6144 MiB (attempt manager)
    env.put_task(
        "md-1", "run", state="RUNNING", attempts=2, interruptions=0, base_memory=4096, memory_escalations=[[2, 6144]]
    )
    assert main(["status", "md-1", "--json"]) == 0
    tasks = {task["id"]: task for task in json.loads(capsys.readouterr().out)["tasks"]}
    assert tasks["run"]["memory_mib"] == [4096, 6144]
    assert main(["status", "md-1"]) == 0
    run_row = next(line for line in capsys.readouterr().out.splitlines() if line.lstrip().startswith("run "))
    assert "4096, 6144" in run_row


def test_status_accepts_the_execution_arn(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    arn = seed_progress(env)
    assert main(["status", arn, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["workflow_id"] == "md-1"


def test_status_of_an_unknown_workflow_exits_2(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "nope"]) == 2
    assert "No workflow execution 'nope' in this environment: `stepspot status` lists" in capsys.readouterr().err
    assert main(["status", "bad id!"]) == 1
    assert "'bad id!' is not a workflow id" in capsys.readouterr().err


def test_status_without_a_workflow_lists_recent_ones(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    env.start("md-1")
    env.set_status(env.start("md-2"), "FAILED")
    assert main(["status", "--json"]) == 0
    listing = {item["name"]: item["status"] for item in json.loads(capsys.readouterr().out)}
    assert listing == {"md-1": "RUNNING", "md-2": "FAILED"}


def test_watch_prints_changes_until_success_and_exits_0(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = seed_progress(env)
    polls = []

    def progress(seconds: float) -> None:  # stands for the time between two polls
        polls.append(seconds)
        for task in ("run", "analyse"):
            env.put_task("md-1", task, state="SUCCEEDED", attempts=1, interruptions=0)
        env.set_status(arn, "SUCCEEDED")

    monkeypatch.setattr(remote_status, "sleep", progress)
    assert main(["watch", "md-1", "--interval", "3"]) == 0
    out = capsys.readouterr().out
    assert polls == [3.0]
    assert "run: RUNNING (attempts 2, interruptions 1)" in out
    assert "analyse: SUCCEEDED (attempts 1, interruptions 0)" in out
    assert "workflow md-1: SUCCEEDED" in out
    assert "Workflow md-1 succeeded." in out


def test_watch_of_a_failed_workflow_exits_1_and_suggests_resume(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    env.set_status(seed_progress(env), "FAILED", error="TaskFailed")
    assert main(["watch", "md-1"]) == 1
    assert "Workflow md-1 ended FAILED: TaskFailed. Details: stepspot status md-1; retry: stepspot resume md-1" in (
        capsys.readouterr().err
    )


# --------------------------------------------------------------------------- logs


class FakeBatch:
    def __init__(self, streams: list[str]) -> None:
        self.streams = streams

    def describe_jobs(self, jobs: list[str]) -> dict[str, Any]:
        if jobs != ["job-42"]:
            return {"jobs": []}
        attempts = [{"container": {"logStreamName": stream}} for stream in self.streams]
        return {"jobs": [{"jobId": "job-42", "status": "RUNNING", "attempts": attempts, "container": {}}]}


@pytest.fixture
def batch_logs(env: Env, monkeypatch: pytest.MonkeyPatch) -> Env:
    # moto's Batch needs Docker to run jobs; the log side is real moto CloudWatch Logs.
    original = RemoteContext.client
    fake = FakeBatch(["md/default/attempt-1", "md/default/attempt-2"])
    monkeypatch.setattr(
        RemoteContext, "client", lambda self, service: fake if service == "batch" else original(self, service)
    )
    now_ms = int(datetime.now(UTC).timestamp() * 1000)  # CloudWatch drops events older than 14 days
    for attempt in (1, 2):
        stream = f"md/default/attempt-{attempt}"
        env.logs.create_log_stream(logGroupName=env.log_group, logStreamName=stream)
        env.logs.put_log_events(
            logGroupName=env.log_group,
            logStreamName=stream,
            logEvents=[{"timestamp": now_ms + i, "message": f"attempt {attempt} line {i}"} for i in range(3)],
        )
    env.start("md-1")
    env.put_task("md-1", "run", state="RUNNING", attempts=2, job_id="job-42")
    env.put_task("md-1", "analyse", state="PENDING", attempts=0)
    return env


def test_logs_prints_the_latest_attempt_or_the_one_asked_for(
    batch_logs: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["logs", "md-1", "run"]) == 0
    captured = capsys.readouterr()
    assert "attempt 2 line 0" in captured.out and "attempt 1" not in captured.out
    assert "md/default/attempt-2" in captured.err
    assert main(["logs", "md-1", "run", "--attempt", "1", "--tail", "2"]) == 0
    out = capsys.readouterr().out
    assert "attempt 1 line 2" in out and "attempt 1 line 0" not in out


def test_status_shows_a_failed_tasks_cause_and_log_tail(batch_logs: Env, capsys: pytest.CaptureFixture[str]) -> None:
    batch_logs.put_task(
        "md-1",
        "run",
        state="FAILED",
        attempts=2,
        job_id="job-42",
        last_failure_class="app_error",
        last_failure="app_error: exit code 2",
    )
    assert main(["status", "md-1"]) == 0
    out = capsys.readouterr().out
    assert "task run failed: app_error: exit code 2" in out
    assert "last lines of md/default/attempt-2:" in out
    assert "attempt 2 line 2" in out and "attempt 1 line" not in out


def test_watch_stops_watching_on_ctrl_c_and_exits_130(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = env.start("md-1")
    env.put_task("md-1", "run", state="RUNNING", attempts=1)

    def interrupted(_seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(remote_status, "sleep", interrupted)
    assert main(["watch", "md-1"]) == 130
    err = capsys.readouterr().err
    assert "stopped watching; workflow md-1 keeps running" in err
    assert env.sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"  # watching stopped, not the run


def test_logs_error_paths(batch_logs: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["logs", "md-1", "ghost"]) == 2
    assert "Workflow 'md-1' has no task 'ghost': its tasks are analyse, run." in capsys.readouterr().err
    assert main(["logs", "md-1", "analyse"]) == 2
    assert "task 'analyse' has not started a Batch job yet (state PENDING)" in capsys.readouterr().err
    assert main(["logs", "md-1", "run", "--attempt", "5"]) == 1
    assert "Job job-42 has 2 attempt(s); --attempt 5 does not exist." in capsys.readouterr().err
    assert main(["logs", "other", "run"]) == 2
    assert "No workflow 'other' in dev" in capsys.readouterr().err


def test_logs_follow_stops_when_the_task_has_ended(
    batch_logs: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        remote_status, "sleep", lambda s: batch_logs.put_task("md-1", "run", state="SUCCEEDED", job_id="job-42")
    )
    assert main(["logs", "md-1", "run", "-f"]) == 0
    assert capsys.readouterr().out.count("attempt 2 line") == 3


# --------------------------------------------------------------------------- cancel


def test_cancel_stops_the_workflow_and_its_running_task_executions(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    workflow_arn = env.start("md-1")
    task_arn = env.start("md-1-run-1", machine=env.task_sm)
    env.put_task("md-1", "run", state="RUNNING", execution_arn=task_arn)
    env.put_task("md-1", "prep", state="SUCCEEDED", execution_arn="arn:already-done")
    assert main(["cancel", "md-1", "--yes"]) == 0
    assert env.sfn.describe_execution(executionArn=workflow_arn)["status"] == "ABORTED"
    assert env.sfn.describe_execution(executionArn=task_arn)["status"] == "ABORTED"
    out = capsys.readouterr().out
    assert "1 running task execution(s) stopped; checkpoints kept" in out
    assert "stepspot resume md-1 --env dev" in out


def test_cancel_needs_yes_without_a_terminal_and_is_a_no_op_when_finished(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = env.start("md-1")
    assert main(["cancel", "md-1"]) == 2
    assert "cancel needs --yes when not run from a terminal" in capsys.readouterr().err
    assert env.sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"
    env.set_status(arn, "SUCCEEDED")
    assert main(["cancel", "md-1", "--yes"]) == 0
    assert "already ended SUCCEEDED: nothing to cancel" in capsys.readouterr().out
    assert main(["cancel", "ghost", "--yes"]) == 2


# --------------------------------------------------------------------------- resume


def test_resume_redrives_a_recently_failed_execution(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    arn = env.start("md-1")
    env.set_status(arn, "FAILED", error="States.TaskFailed")
    redriven: list[str] = []
    original = RemoteContext.client

    def client(self: RemoteContext, service: str) -> Any:
        real = original(self, service)
        if service == "stepfunctions":
            # moto 5.2.5 does not implement RedriveExecution: record the call the CLI makes.
            real.redrive_execution = lambda executionArn: redriven.append(executionArn) or {}
        return real

    monkeypatch.setattr(RemoteContext, "client", client)
    assert main(["resume", "md-1"]) == 0
    assert redriven == [arn]
    assert "redriven" in capsys.readouterr().out
    assert len(env.executions()) == 1


def test_resume_resubmit_keeps_the_workflow_id_and_skips_finished_tasks(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    env.set_status(env.start("md-1"), "ABORTED")
    env.put_task("md-1", "prep", state="SUCCEEDED")
    env.put_task("md-1", "run", state="FAILED")
    env.put_task("md-1", "analyse", state="SKIPPED")
    assert main(["resume", "md-1", "--resubmit"]) == 0
    assert env.execution_input("md-1--r1") == {
        "workflow_id": "md-1",
        "definition_uri": f"s3://{env.bucket}/workflows/md-1/definition.json",
        "skip_tasks": ["prep"],
        "resubmission": 1,
    }
    assert "skipping   1 finished task(s)" in capsys.readouterr().out
    # The resubmission is now the workflow's latest execution: a second one gets the next number.
    env.set_status(next(e["executionArn"] for e in env.executions() if e["name"] == "md-1--r1"), "FAILED")
    assert main(["resume", "md-1--r1", "--resubmit"]) == 0
    assert env.execution_input("md-1--r2")["workflow_id"] == "md-1"
    assert env.execution_input("md-1--r2")["resubmission"] == 2


def test_resume_resubmit_with_a_fixed_definition_uploads_it(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    env.set_status(env.start("md-1"), "FAILED")
    env.put_task("md-1", "prep", state="SUCCEEDED")
    env.put_task("md-1", "gone", state="SUCCEEDED")
    fixed = env.workflow_file({**WORKFLOW, "description": "fixed"}, name="fixed.json")
    assert main(["resume", "md-1", "--resubmit", "--definition", str(fixed)]) == 0
    stored = json.loads(env.s3.get_object(Bucket=env.bucket, Key="workflows/md-1/definition.json")["Body"].read())
    assert stored["description"] == "fixed"
    assert env.execution_input("md-1--r1")["skip_tasks"] == ["prep"]
    assert "not in the new definition, so not skipped: gone" in capsys.readouterr().err


def test_resume_error_paths(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    arn = env.start("md-1")
    assert main(["resume", "md-1"]) == 2
    assert "workflow md-1 is still running" in capsys.readouterr().err
    env.set_status(arn, "SUCCEEDED")
    assert main(["resume", "md-1"]) == 0
    assert "already succeeded: nothing to resume" in capsys.readouterr().out
    assert main(["resume", "md-1", "--definition", "x.json"]) == 2
    assert "--definition only applies with --resubmit" in capsys.readouterr().err
    assert main(["resume", "ghost"]) == 2


# --------------------------------------------------------------------------- checkpoints


def test_checkpoints_lists_each_task_and_marks_the_resume_point(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    seed_progress(env)
    assert main(["checkpoints", "md-1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["task_id"], r["sequence"], r["latest"]) for r in rows] == [("run", 1, False), ("run", 2, True)]
    # The URI must be the real S3 prefix (12-digit sequence), openable with `aws s3 ls`.
    assert rows[1]["uri"] == f"s3://{env.bucket}/checkpoints/md-1/run/000000000002/"
    assert main(["checkpoints", "md-1", "--task", "run"]) == 0
    out = capsys.readouterr().out
    assert "5.0 MiB" in out and "*" in out
    assert main(["checkpoints", "md-1", "--task", "prep"]) == 0
    assert "No checkpoints for task 'prep' yet." in capsys.readouterr().out


def test_checkpoints_error_paths(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    seed_progress(env)
    assert main(["checkpoints", "md-1", "--task", "ghost"]) == 2
    assert "Workflow 'md-1' has no task 'ghost': its tasks are analyse, prep, run." in capsys.readouterr().err
    assert main(["checkpoints", "nope"]) == 2
    assert "No workflow 'nope' in dev" in capsys.readouterr().err


def test_watch_on_a_terminal_redraws_one_table_until_the_end(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    screen = io.StringIO()
    monkeypatch.setattr(remote_status, "console", Console(file=screen, force_terminal=True, width=120))
    arn = seed_progress(env)
    monkeypatch.setattr(remote_status, "sleep", lambda seconds: env.set_status(arn, "ABORTED"))
    assert main(["watch", "md-1"]) == 1
    drawn = screen.getvalue()
    assert "ABORTED" in drawn and "spot_reclaim" in drawn
    assert "\x1b[" in drawn  # colours and cursor movement on a terminal


def test_watch_on_a_terminal_stops_on_ctrl_c_and_gives_the_cursor_back(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    from rich.console import Console

    screen = io.StringIO()
    monkeypatch.setattr(remote_status, "console", Console(file=screen, force_terminal=True, width=120))
    arn = seed_progress(env)

    def interrupted(_seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(remote_status, "sleep", interrupted)
    assert main(["watch", "md-1"]) == 130
    drawn = screen.getvalue()
    assert "spot_reclaim" in drawn  # the live table was drawn, then the live display ended
    assert drawn.rfind("\x1b[?25h") > drawn.rfind("\x1b[?25l") >= 0
    assert "stopped watching; workflow md-1 keeps running" in capsys.readouterr().err
    assert env.sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"


# --------------------------------------------------------------------------- outputs


def publish_outputs(env: Env, workflow_id: str, task_id: str, files: dict[str, bytes]) -> None:
    """What the agent leaves after a successful attempt: content-addressed objects, then the manifest."""
    import hashlib

    from stepspot.dataflow import OutputFile, manifest_document, output_manifest_key, output_object_key

    entries = []
    for path, data in files.items():
        sha = hashlib.sha256(data).hexdigest()
        env.s3.put_object(Bucket=env.bucket, Key=output_object_key(workflow_id, task_id, sha), Body=data)
        entries.append(OutputFile(path, len(data), sha))
    body = manifest_document(workflow_id, task_id, "1", entries, list(files))
    env.s3.put_object(Bucket=env.bucket, Key=output_manifest_key(workflow_id, task_id), Body=body)


def test_outputs_lists_and_downloads_what_tasks_published(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_progress(env)
    publish_outputs(env, "md-1", "prep", {"system.json": b'{"atoms": 3}', "frames/1.xyz": b"xyz"})
    assert main(["outputs", "md-1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["task_id"], r["path"], r["size"]) for r in rows] == [
        ("prep", "system.json", 12),
        ("prep", "frames/1.xyz", 3),
    ]
    assert main(["outputs", "md-1", "prep", "--download", str(tmp_path / "dl")]) == 0
    assert (tmp_path / "dl" / "prep" / "frames" / "1.xyz").read_bytes() == b"xyz"
    assert f"downloaded 2 files (15 bytes) into {tmp_path / 'dl'}" in capsys.readouterr().out
    # status shows what each succeeded task published
    assert main(["status", "md-1", "--json"]) == 0
    tasks = {t["id"]: t for t in json.loads(capsys.readouterr().out)["tasks"]}
    assert (tasks["prep"]["outputs"], tasks["run"]["outputs"]) == ({"files": 2, "bytes": 15}, None)
    # a task that published nothing is bad input, with the way to find out why
    assert main(["outputs", "md-1", "run"]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            "task 'run' of workflow 'md-1' has published no outputs in dev (it has not succeeded, or declares no "
            "outputs): `stepspot status` shows its state."
        )
    )


def test_a_tampered_output_is_refused_on_download(env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import hashlib

    from stepspot.dataflow import output_object_key

    seed_progress(env)
    publish_outputs(env, "md-1", "prep", {"a.txt": b"right"})
    key = output_object_key("md-1", "prep", hashlib.sha256(b"right").hexdigest())
    env.s3.put_object(Bucket=env.bucket, Key=key, Body=b"wrong")  # a file published as its own object
    assert main(["outputs", "md-1", "--download", str(tmp_path / "dl")]) == 1
    assert "Output 'a.txt' of task 'prep' does not match its manifest" in capsys.readouterr().err
    assert not (tmp_path / "dl" / "prep" / "a.txt").exists()


def test_submit_refuses_a_shared_file_system_the_deployment_lacks(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps({**WORKFLOW, "global_config": {"shared_filesystem": True}}))
    assert main(["submit", str(path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"stepspot: {path}: global_config.shared_filesystem is true but environment 'dev' has no shared file "
        "system: set shared_filesystem_enabled = true in terraform/environments/dev.tfvars and run `make deploy "
        "ENV=dev`, or pass data with tasks[].inputs and tasks[].outputs instead."
    )
    assert env.sfn.list_executions(stateMachineArn=env.workflow_sm)["executions"] == []


def test_resume_with_a_definition_needing_a_shared_file_system_the_deployment_lacks_exits_2(
    env: Env, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A resubmitted definition is a new submission: the same refusal, before anything is uploaded or started
    path = tmp_path / "wf.json"
    path.write_text(json.dumps({**WORKFLOW, "global_config": {"shared_filesystem": True}}))
    assert main(["resume", "md-9", "--resubmit", "--definition", str(path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"stepspot: {path}: global_config.shared_filesystem is true but environment 'dev' has no shared file "
        "system: set shared_filesystem_enabled = true in terraform/environments/dev.tfvars and run `make deploy "
        "ENV=dev`, or pass data with tasks[].inputs and tasks[].outputs instead."
    )
    assert env.s3.list_objects_v2(Bucket=env.bucket).get("KeyCount", 0) == 0
    assert env.sfn.list_executions(stateMachineArn=env.workflow_sm)["executions"] == []


# --------------------------------------------------------------------------- cleanup-job-definitions


def test_cleanup_job_definitions_deregisters_only_this_environments_derived_ones(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    from stepspot.aws.batch import Batch

    batch = boto3.client("batch", region_name=REGION)
    container = {"image": "base", "command": ["false"], "vcpus": 1, "memory": 512}
    bases = {
        name: batch.register_job_definition(jobDefinitionName=name, type="container", containerProperties=container)
        for name in ("stepspot-dev-container", "stepspot-prod-container")
    }
    derived_dev = Batch(batch).definition_for_image(bases["stepspot-dev-container"]["jobDefinitionArn"], "repo/a:1")
    derived_prod = Batch(batch).definition_for_image(bases["stepspot-prod-container"]["jobDefinitionArn"], "repo/a:1")
    assert main(["cleanup-job-definitions", "--env", "dev"]) == 0
    active = {d["jobDefinitionArn"] for d in batch.describe_job_definitions(status="ACTIVE")["jobDefinitions"]}
    assert derived_dev not in active and derived_prod in active
    assert bases["stepspot-dev-container"]["jobDefinitionArn"] in active
    assert "1 derived job definition(s) of dev deregistered" in capsys.readouterr().out


URI_WORKFLOW = {
    "name": "uri inputs",
    "tasks": [
        {
            "id": "prep",
            "container_image": "busybox",
            "command": ["true"],
            "inputs": [
                {"uri": "s3://shared-reference-data/genomes/", "to": "ref/"},
                {"uri": "s3://lab-raw-2026/run1/reads.fq", "to": "reads.fq"},
            ],
        },
    ],
}


def test_submit_refuses_a_uri_input_in_a_bucket_the_deployment_cannot_read(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a deployment whose jobs may read one extra bucket (Terraform output input_bucket_arns)
    monkeypatch.setenv("STEPSPOT_INPUT_BUCKET_ARNS", '["arn:aws:s3:::shared-reference-data"]')
    path = env.workflow_file(URI_WORKFLOW)
    # When a workflow reads from that bucket and from another one, Then nothing is uploaded or started
    assert main(["submit", str(path), "--execution-name", "uri-1"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"stepspot: {path}: task 'prep' reads input s3://lab-raw-2026/run1/reads.fq but environment 'dev' cannot "
        "read bucket 'lab-raw-2026': add \"arn:aws:s3:::lab-raw-2026\" to input_bucket_arns in "
        "terraform/environments/dev.tfvars and run `make deploy ENV=dev`."
    )
    assert env.executions() == []
    assert env.s3.list_objects_v2(Bucket=env.bucket).get("KeyCount", 0) == 0
    # And with the bucket added (a wildcard as IAM allows it), the same workflow starts
    monkeypatch.setenv("STEPSPOT_INPUT_BUCKET_ARNS", '["arn:aws:s3:::shared-reference-data", "arn:aws:s3:::lab-raw-*"]')
    assert main(["submit", str(path), "--execution-name", "uri-1"]) == 0


def test_submit_lets_a_deployment_that_does_not_say_decide_on_aws(env: Env) -> None:
    # A deployment older than the input_bucket_arns output: nothing to check against (AWS denies then).
    assert main(["submit", str(env.workflow_file(URI_WORKFLOW)), "--execution-name", "uri-2"]) == 0


def test_resume_with_a_definition_reading_an_unreadable_bucket_exits_2(
    env: Env, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STEPSPOT_INPUT_BUCKET_ARNS", "[]")
    path = env.workflow_file(URI_WORKFLOW)
    assert main(["resume", "md-9", "--resubmit", "--definition", str(path)]) == 2
    err = capsys.readouterr().err
    assert "task 'prep' reads input s3://shared-reference-data/genomes/ but environment 'dev' cannot read" in err
    assert "task 'prep' reads input s3://lab-raw-2026/run1/reads.fq" in err
    assert env.s3.list_objects_v2(Bucket=env.bucket).get("KeyCount", 0) == 0
