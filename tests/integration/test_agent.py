"""stepspot-agent as a real subprocess, running the example program, against a moto server and a fake IMDS."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from checkpoint_support import (
    EXAMPLE_PROGRAM,
    FakeImds,
    Store,
    run_agent,
    start_agent,
)

from stepspot.agent_exit_codes import EXIT_SPOT_NOTICE
from stepspot.checkpointing.aws.objects import CheckpointObjects
from stepspot.checkpointing.aws.table import CheckpointTable
from stepspot.checkpointing.store import CheckpointStore

pytest_plugins = ("checkpoint_support",)  # fixtures: moto_endpoint, store, imds

PROGRAM = [
    sys.executable,
    str(EXAMPLE_PROGRAM),
    "--steps",
    "300",
    "--cells",
    "60",
    "--checkpoint-every",
    "25",
    "--step-delay",
    "0.01",
]


class Lines:
    """Collects a running process's stdout and stderr lines for the test to wait on."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        for stream in (process.stdout, process.stderr):
            threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} not seen; output so far:\n" + "\n".join(self.seen))

    def finish(self, timeout: float = 30) -> int:
        code = self.process.wait(timeout=timeout)
        time.sleep(0.1)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code

    @property
    def text(self) -> str:
        return "\n".join(self.seen)


def saved_step(store: Store, workflow: str = "wf-1", task: str = "simulate") -> tuple[int, int]:
    """(sequence, program step) of the latest valid checkpoint, read back from S3."""
    cs = CheckpointStore(CheckpointObjects(store.s3, store.bucket), CheckpointTable(store.ddb, store.table))
    found, _ = cs.find_latest(workflow, task)
    assert found is not None, "no checkpoint was registered"
    entry = next(e for e in found.manifest.files if e.path == "state.json")
    body = store.s3.get_object(Bucket=store.bucket, Key=entry.key)["Body"].read()
    return found.record.sequence, json.loads(body)["step"]


@pytest.fixture(scope="module")
def reference_checksum(tmp_path_factory: pytest.TempPathFactory) -> float:
    """The checksum of an uninterrupted run, computed without the agent."""
    directory = tmp_path_factory.mktemp("reference")
    output = directory / "result.json"
    env = dict(os.environ, STEPSPOT_CHECKPOINT_DIR=str(directory / "ckpt"))
    command = [sys.executable, str(EXAMPLE_PROGRAM), "--steps", "300", "--cells", "60", "--output", str(output)]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=60)
    return float(json.loads(output.read_text())["checksum"])


def test_spot_notice_checkpoints_at_once_and_a_new_instance_resumes_from_it(
    store: Store, imds: FakeImds, tmp_path: Path, reference_checksum: float
) -> None:
    # Given the agent running the program on "instance 1", polling the fake IMDS
    env = store.env(tmp_path / "instance-1")
    env["STEPSPOT_IMDS_ENDPOINT"] = imds.endpoint
    args = ["run", "--imds-poll", "0.1", "--interval", "60", "--grace", "10", "--reclaim-wait", "3"]
    agent = Lines(start_agent([*args, "--", *PROGRAM], env))
    agent.wait_for("no checkpoint to restore")
    agent.wait_for("step 100 written")
    # When Spot posts the interruption notice mid-run
    imds.post_notice()
    noticed = time.monotonic()
    # Then the program is told, writes, and the agent uploads at once, long before the 2 minutes
    stopped_at = int(agent.wait_for("stopping at step").split("step ")[1].split()[0])
    handled = agent.wait_for("notice handled in")
    assert float(handled.split("notice handled in ")[1].split()[0]) < 10
    agent.wait_for("program exited with 143")
    # And the agent outlives the program, its checkpoint already uploaded, waiting for the host to go
    agent.wait_for("waiting up to")
    assert agent.process.poll() is None
    sequence, step = saved_step(store)
    assert step == stopped_at and 100 <= step < 300
    # And the host is not reclaimed: at the wait bound it exits with "stopped on a Spot interruption notice"
    assert agent.finish() == EXIT_SPOT_NOTICE
    assert time.monotonic() - noticed >= 2.5
    assert "host not reclaimed 3 s after the terminate notice: exiting with 79" in agent.text
    assert imds.unauthorised == 0  # every poll carried the IMDSv2 token

    # When the task starts again on "instance 2" (empty disk)
    rerun = Lines(
        start_agent(
            ["run", "--interval", "60", "--", *PROGRAM, "--output", str(tmp_path / "result.json")],
            store.env(tmp_path / "instance-2"),
        )
    )
    # Then it restores that checkpoint, resumes at the saved step and ends with the same result
    assert f"restored checkpoint {sequence}" in rerun.wait_for("restored checkpoint")
    rerun.wait_for(f"starting at step {stopped_at} of 300")
    assert rerun.finish() == 0
    assert json.loads((tmp_path / "result.json").read_text())["checksum"] == reference_checksum


def test_sigterm_after_a_spot_notice_ends_the_wait_with_the_spot_notice_code(
    store: Store, imds: FakeImds, tmp_path: Path
) -> None:
    # Given the agent waiting for the reclaim after a notice stopped the program
    env = {**store.env(tmp_path / "ckpt"), "STEPSPOT_IMDS_ENDPOINT": imds.endpoint, "STEPSPOT_RECLAIM_WAIT": "60"}
    agent = Lines(start_agent(["run", "--imds-poll", "0.1", "--interval", "60", "--", *PROGRAM], env))
    agent.wait_for("step 50 written")
    imds.post_notice()
    agent.wait_for("waiting up to")
    # When ECS drains the instance (SIGTERM to the container's main process)
    agent.process.send_signal(signal.SIGTERM)
    # Then the agent stops waiting at once and says it stopped on a Spot notice, not the program's 143
    assert agent.finish(timeout=10) == EXIT_SPOT_NOTICE
    assert "SIGTERM after the Spot interruption notice" in agent.text


def test_a_program_that_fails_without_a_notice_gets_its_own_code_at_once(
    store: Store, imds: FakeImds, tmp_path: Path
) -> None:
    # Given IMDS polled but no notice posted, and a program that fails
    env = {**store.env(tmp_path / "d"), "STEPSPOT_IMDS_ENDPOINT": imds.endpoint}
    script = "import sys; sys.exit(143)"
    started = time.monotonic()
    result = run_agent(["run", "--imds-poll", "0.1", "--", sys.executable, "-c", script], env)
    # Then the agent does not wait for a reclaim: the code is the program's
    assert result.returncode == 143, result.stderr
    assert time.monotonic() - started < 20
    assert "waiting up to" not in result.stderr


def test_sigterm_to_the_agent_checkpoints_and_stops_the_program(store: Store, tmp_path: Path) -> None:
    # Given the agent running the program (IMDS off), as Batch runs it
    agent = Lines(start_agent(["run", "--interval", "60", "--", *PROGRAM], store.env(tmp_path / "ckpt")))
    agent.wait_for("step 50 written")
    # When Batch stops the job (SIGTERM to the container's main process)
    agent.process.send_signal(signal.SIGTERM)
    # Then the program's final state is uploaded and its exit code forwarded
    stopped_at = int(agent.wait_for("stopping at step").split("step ")[1].split()[0])
    assert agent.finish() == 143
    assert saved_step(store)[1] == stopped_at


def test_periodic_checkpoints_survive_a_hard_kill(store: Store, tmp_path: Path) -> None:
    # Given the agent checkpointing every 0.3 s
    agent = Lines(start_agent(["run", "--interval", "0.3", "--", *PROGRAM], store.env(tmp_path / "one")))
    child_pid = int(agent.wait_for("started ").split("(pid ")[1].split(")")[0])
    agent.wait_for("step 150 written")
    agent.wait_for("checkpoint ")
    # When the instance vanishes without notice (the agent is killed; the program must not outlive it)
    agent.process.kill()
    agent.finish()
    deadline = time.monotonic() + 5
    while Path(f"/proc/{child_pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{child_pid}").exists() or "Z" in Path(f"/proc/{child_pid}/stat").read_text().split()[2]
    # Then a restart resumes from the last periodic checkpoint, not from zero
    _, step = saved_step(store)
    assert step >= 25
    rerun = Lines(start_agent(["run", "--interval", "60", "--", *PROGRAM], store.env(tmp_path / "two")))
    rerun.wait_for(f"starting at step {step} of 300")
    assert rerun.finish() == 0


def test_program_exit_code_is_forwarded_and_state_kept_for_the_retry(store: Store, tmp_path: Path) -> None:
    # Given a program that writes progress and then fails
    script = (
        "import os,sys; open(os.environ['STEPSPOT_CHECKPOINT_DIR']+'/state.json','w').write('{\"step\": 9}'); "
        "sys.exit(3)"
    )
    result = run_agent(["run", "--interval", "60", "--", sys.executable, "-c", script], store.env(tmp_path / "d"))
    # Then the agent exits 3 and the state was checkpointed on the way out
    assert result.returncode == 3, result.stderr
    assert saved_step(store) == (1, 9)


def test_failed_save_prints_the_line_the_checkpoints_failed_metric_filter_counts(store: Store, tmp_path: Path) -> None:
    # Given a program that writes progress, then loses the checkpoint table, then fails
    script = (
        "import boto3,os,sys; open(os.environ['STEPSPOT_CHECKPOINT_DIR']+'/state.json','w').write('{\"step\": 9}'); "
        "boto3.client('dynamodb').delete_table(TableName=os.environ['STEPSPOT_CHECKPOINT_TABLE']); sys.exit(3)"
    )
    env = {**store.env(tmp_path / "d"), "STEPSPOT_ENVIRONMENT": "prod"}
    # When the agent checkpoints on the way out
    result = run_agent(["run", "--interval", "60", "--", sys.executable, "-c", script], env)
    # Then it still forwards the exit code, and prints one JSON line on stderr for the metric filter
    # ({ $.stepspot_event = "checkpoint_failed" }, dimension environment = $.environment)
    assert result.returncode == 3, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert events == [
        {
            "stepspot_event": "checkpoint_failed",
            "environment": "prod",
            "workflow_id": "wf-1",
            "task_id": "simulate",
            "trigger": "program exited with 3",
            "reason": events[0]["reason"],
        }
    ]
    assert f"Checkpoint table '{store.table}' does not exist" in events[0]["reason"]


@pytest.mark.parametrize(
    ("change", "args", "code", "message"),
    [
        (
            {"STEPSPOT_WORKFLOW_ID": ""},
            [],
            64,
            "stepspot-agent: error: The workflow id is missing: pass --workflow-id or set STEPSPOT_WORKFLOW_ID.",
        ),
        (
            {"STEPSPOT_TASK_ID": "bad/id"},
            [],
            64,
            "stepspot-agent: error: Task id 'bad/id' is not valid: use 1-80 characters from letters, digits, "
            "'-' and '_'.",
        ),
        (
            {"STEPSPOT_BUCKET": "no-such-bucket"},
            [],
            69,
            "stepspot-agent: error: Checkpoint bucket 'no-such-bucket' does not exist: create the bucket or set "
            "STEPSPOT_BUCKET to an existing bucket.",
        ),
        (
            {"STEPSPOT_CHECKPOINT_TABLE": "no-such-table"},
            [],
            69,
            "stepspot-agent: error: Checkpoint table 'no-such-table' does not exist: create the table or set "
            "STEPSPOT_CHECKPOINT_TABLE to an existing table.",
        ),
        (
            {"STEPSPOT_CHECKPOINT_INTERVAL": "often"},
            [],
            64,
            "stepspot-agent: error: STEPSPOT_CHECKPOINT_INTERVAL / --interval: checkpoint interval 'often' is "
            "neither a number of seconds nor 'auto'.",
        ),
        (
            {},
            ["--signal", "NOPE"],
            64,
            "stepspot-agent: error: Unknown signal 'NOPE': use a name such as TERM, USR1, INT or a number.",
        ),
    ],
)
def test_bad_input_gets_one_clear_sentence_and_a_distinct_exit_code(
    store: Store, tmp_path: Path, change: dict[str, str], args: list[str], code: int, message: str
) -> None:
    env = store.env(tmp_path / "ckpt")
    env.update(change)
    result = run_agent(["run", *args, "--", "true"], env)
    assert (result.returncode, result.stderr.strip()) == (code, message)
    assert "Traceback" not in result.stderr


def test_unknown_command_and_unknown_workflow_are_refused_before_anything_runs(store: Store, tmp_path: Path) -> None:
    env = store.env(tmp_path / "ckpt")
    result = run_agent(["run", "--", "no-such-program-xyz"], env)
    assert (result.returncode, result.stderr.strip()) == (
        127,
        (
            "stepspot-agent: error: Command 'no-such-program-xyz' was not found on PATH: check the task's command "
            "and the image's PATH."
        ),
    )
    # Given a state table that does not know the workflow
    from checkpoint_support import create_table

    create_table(store.ddb, f"{store.table}-state")
    # (through the environment, as Batch sets it, so the IAM evaluation knows it is the state table)
    result = run_agent(["run", "--", "true"], {**env, "STEPSPOT_STATE_TABLE": f"{store.table}-state"})
    assert (result.returncode, result.stderr.strip()) == (
        65,
        (
            "stepspot-agent: error: Workflow 'wf-1' is unknown to state table '" + store.table + "-state': "
            "check STEPSPOT_WORKFLOW_ID (or --workflow-id) against `stepspot` output."
        ),
    )


def test_checkpoint_directory_that_cannot_be_created_is_refused(store: Store, tmp_path: Path) -> None:
    # Given a checkpoint directory path below a regular file
    (tmp_path / "file").write_text("not a directory")
    result = run_agent(["run", "--", "true"], store.env(tmp_path / "file" / "ckpt"))
    assert (result.returncode, result.stderr.strip()) == (
        66,
        (
            f"stepspot-agent: error: The checkpoint directory '{tmp_path}/file/ckpt' cannot be created "
            "(Not a directory): point STEPSPOT_CHECKPOINT_DIR at a writable directory."
        ),
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any directory")
def test_unreadable_checkpoint_directory_is_refused(store: Store, tmp_path: Path) -> None:
    locked = tmp_path / "ckpt"
    locked.mkdir()
    locked.chmod(0o000)
    try:
        result = run_agent(["run", "--", "true"], store.env(locked))
    finally:
        locked.chmod(0o755)
    assert (result.returncode, result.stderr.strip()) == (
        66,
        (
            f"stepspot-agent: error: The checkpoint directory '{locked}' is not readable and writable by this "
            "user: point STEPSPOT_CHECKPOINT_DIR at a writable directory."
        ),
    )


def test_save_and_restore_subcommands_print_json(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "state.json").write_text('{"step": 4}')
    saved = run_agent(["save"], store.env(source))
    assert saved.returncode == 0, saved.stderr
    assert json.loads(saved.stdout)["sequence"] == 1
    restored = run_agent(["restore"], store.env(tmp_path / "dst"))
    document = json.loads(restored.stdout)
    assert document["found"] is True and document["uri"] == (
        f"s3://{store.bucket}/checkpoints/wf-1/simulate/000000000001/manifest.json"
    )
    assert (tmp_path / "dst" / "state.json").read_text() == '{"step": 4}'


REQUESTING_PROGRAM = """
import json, os, signal, time
directory, agent = os.environ["STEPSPOT_CHECKPOINT_DIR"], int(os.environ["STEPSPOT_AGENT_PID"])
signal.signal(signal.SIGUSR2, lambda *_: None)

def write(state):
    with open(directory + "/.state.tmp", "w") as f:
        f.write(json.dumps(state))
    os.replace(directory + "/.state.tmp", directory + "/state.json")

for step in range(5):
    write({"step": step})
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
    os.kill(agent, signal.SIGUSR1)
    assert signal.sigtimedwait({signal.SIGUSR2}, 10) is not None, "the agent did not answer"
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR2})
    write({"step": step, "scratch": True})  # what a timer would catch if it were still on
    time.sleep(0.3)
"""


def test_a_program_that_asks_for_its_checkpoints_gets_exactly_those(store: Store, tmp_path: Path) -> None:
    # Given a program that asks for a checkpoint five times, and a timer that would fire every 0.1 s
    command = ["run", "--interval", "0.1", "--", sys.executable, "-c", REQUESTING_PROGRAM]
    result = run_agent(command, store.env(tmp_path / "d"))
    # Then every request was answered (no deadlock between the request signal and the agent's wait),
    # and only the requested states were saved: five checkpoints, the last one of step 4, no scratch
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("(requested by the program)") == 5
    assert "(periodic)" not in result.stderr
    assert saved_step(store) == (5, 4)
