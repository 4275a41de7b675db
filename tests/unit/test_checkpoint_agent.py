"""Agent pieces without AWS: settings from flags and environment, directory scanning, interval choice."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from stepspot import agent
from stepspot.checkpointing.files import DirectoryScanner, check_directory


def settings(monkeypatch: pytest.MonkeyPatch, *argv: str, **env: str) -> agent.AgentSettings:
    for name in list(os.environ):
        if name.startswith("STEPSPOT_"):
            monkeypatch.delenv(name)
    base = {
        "STEPSPOT_WORKFLOW_ID": "wf",
        "STEPSPOT_TASK_ID": "t",
        "STEPSPOT_BUCKET": "b",
        "STEPSPOT_CHECKPOINT_TABLE": "c",
        "STEPSPOT_CHECKPOINT_DIR": "/tmp/ckpt",
    }
    for name, value in {**base, **env}.items():
        monkeypatch.setenv(name, value)
    return agent.settings_from(agent.build_parser().parse_args(["run", *argv, "--", "true"]))


def test_flags_override_environment_and_defaults_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(
        monkeypatch, "--task-id", "other", "--interval", "30", "--signal", "usr1", STEPSPOT_CHECKPOINT_GRACE="15"
    )
    assert (s.workflow_id, s.task_id, s.interval, s.notice_signal, s.notice_grace) == (
        "wf",
        "other",
        30.0,
        signal.SIGUSR1,
        15.0,
    )
    assert (s.imds_endpoint, s.imds_poll, s.mtbi) == ("http://169.254.169.254", 5.0, 6 * 3600.0)
    assert settings(monkeypatch).interval is None  # 'auto' by default
    assert settings(monkeypatch, STEPSPOT_IMDS_ENDPOINT="off").imds_endpoint is None
    # After a Spot notice the agent waits 150 s (Spot's 120 s and slack) for the reclaim, unless told otherwise
    assert settings(monkeypatch).reclaim_wait == 150.0
    assert settings(monkeypatch, "--reclaim-wait", "5", STEPSPOT_RECLAIM_WAIT="9").reclaim_wait == 5.0
    assert settings(monkeypatch, STEPSPOT_RECLAIM_WAIT="9").reclaim_wait == 9.0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"STEPSPOT_BUCKET": ""}, "The checkpoint bucket is missing: pass --bucket or set STEPSPOT_BUCKET."),
        (
            {"STEPSPOT_CHECKPOINT_DIR": ""},
            "The checkpoint directory is missing: pass --checkpoint-dir or set STEPSPOT_CHECKPOINT_DIR.",
        ),
        (
            {"STEPSPOT_IMDS_POLL_INTERVAL": "0"},
            "STEPSPOT_IMDS_POLL_INTERVAL / --imds-poll must be at least 0.05 seconds, got '0'.",
        ),
        ({"STEPSPOT_CHECKPOINT_MTBI": "x"}, "STEPSPOT_CHECKPOINT_MTBI / --mtbi must be a number of seconds, got 'x'."),
        (
            {"STEPSPOT_RECLAIM_WAIT": "-1"},
            "STEPSPOT_RECLAIM_WAIT / --reclaim-wait must be at least 0 seconds, got '-1'.",
        ),
        (
            {"STEPSPOT_OUTPUTS": '["/abs"]'},
            "STEPSPOT_INPUTS / STEPSPOT_OUTPUTS: output path '/abs' is absolute: use a path relative to the "
            "working directory.",
        ),
        (
            {"STEPSPOT_INPUTS": "[{"},
            "STEPSPOT_INPUTS is not valid JSON (Expecting property name enclosed in "
            "double quotes): set it as stepspot does.",
        ),
        (
            {"STEPSPOT_INPUTS": '[{"from": "a", "path": "x", "to": "../../etc/cron.d/x"}]'},
            "STEPSPOT_INPUTS / STEPSPOT_OUTPUTS: input to '../../etc/cron.d/x' contains '..': use a path relative "
            "to the working directory.",
        ),
        ({"STEPSPOT_CHECKPOINT_ENABLED": "maybe"}, "STEPSPOT_CHECKPOINT_ENABLED must be true or false, got 'maybe'."),
    ],
)
def test_bad_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str) -> None:
    with pytest.raises(agent.AgentExit) as caught:
        settings(monkeypatch, **env)
    assert (caught.value.code, caught.value.message) == (agent.EXIT_USAGE, message)


def test_auto_interval_uses_the_measured_checkpoint_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(monkeypatch, "--mtbi", "7200")
    runner = agent.Agent(s, store=object())  # type: ignore[arg-type]
    assert runner.next_interval() == agent.AUTO_FIRST_CHECKPOINT_SECONDS
    assert runner.checkpoints is not None
    runner.checkpoints.cost = 2.0
    assert runner.next_interval() == pytest.approx((2 * 2.0 * 7200) ** 0.5)  # 169.7 s


def test_scanner_hashes_once_and_skips_agent_files_and_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("hello")
    (tmp_path / ".stepspot-staging").mkdir()
    (tmp_path / ".stepspot-staging" / "x").write_text("private")
    (tmp_path / "link").symlink_to("/etc/hostname")
    scanner = DirectoryScanner(tmp_path)
    first = scanner.scan()
    assert [(f.path, f.size) for f in first] == [("sub/a.txt", 5)]
    assert first[0].sha256 == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    reads: list[Any] = []
    monkeypatch.setattr("stepspot.checkpointing.files.sha256_file", lambda p: reads.append(p) or ("x", 0))
    assert scanner.scan() == first and reads == []  # unchanged stat: not read again


def test_directory_check_explains_the_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert check_directory(tmp_path / "new") is None and (tmp_path / "new").is_dir()
    monkeypatch.setattr(os, "access", lambda *_: False)
    assert check_directory(tmp_path) == f"checkpoint directory '{tmp_path}' is not readable and writable by this user"


def test_exit_status_maps_signals_like_a_shell() -> None:
    assert agent._exit_status(-15) == 143 and agent._exit_status(3) == 3


def test_an_unexpected_exception_prints_its_traceback_and_exits_internal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A bug in the agent must be told apart from the program's own exit 1 (the documented 70).
    def broken(_args: Any) -> int:
        raise RuntimeError("agent bug")

    monkeypatch.setattr("stepspot.agent.cli._execute", broken)
    assert agent.main(["run", "--", "true"]) == agent.EXIT_INTERNAL == 70
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "RuntimeError: agent bug" in err


class _FailingStore:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def save(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (
            agent.CheckpointStoreUnavailable("The checkpoint store cannot be reached: throttled."),
            "The checkpoint store cannot be reached: throttled.",
        ),
        (
            PermissionError(13, "Permission denied"),
            "could not read the checkpoint directory: [Errno 13] Permission denied",
        ),
    ],
)
def test_failed_checkpoint_prints_one_json_line_for_the_metric_filter(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str], error: Exception, reason: str
) -> None:
    # Given an agent in the prod environment whose store fails
    s = settings(monkeypatch, STEPSPOT_ENVIRONMENT="prod", STEPSPOT_CHECKPOINT_DIR=str(tmp_path))
    runner = agent.Agent(s, _FailingStore(error))  # type: ignore[arg-type]
    # When a periodic checkpoint is due
    assert runner.checkpoint("periodic") is None
    # Then stderr has exactly the line the Terraform metric filter matches, nothing on stdout
    captured = capsys.readouterr()
    assert captured.out == ""
    assert [json.loads(line) for line in captured.err.splitlines()] == [
        {
            "stepspot_event": "checkpoint_failed",
            "environment": "prod",
            "workflow_id": "wf",
            "task_id": "t",
            "trigger": "periodic",
            "reason": reason,
        }
    ]


def test_environment_defaults_to_unknown_so_the_metric_keeps_its_dimension(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings(monkeypatch).environment == "unknown"
    assert settings(monkeypatch, STEPSPOT_ENVIRONMENT="staging").environment == "staging"


def test_lifecycle_applies_posted_notices_in_its_own_loop() -> None:
    clock = iter([10.0, 11.0]).__next__
    life = agent.Lifecycle(clock=clock)
    # A Spot notice posted from the IMDS thread changes nothing until the supervisor applies it
    life.post(agent.Notice("spot interruption notice", spot_document='{"action": "stop"}'))
    assert life.state is agent.AgentState.RUNNING and life.wake.is_set()
    assert life.apply_pending() is agent.AgentState.NOTICE_RECEIVED
    assert (life.notice_reason, life.spot_action, life.spot_notice_at) == ("spot interruption notice", "stop", 10.0)
    # The checkpoint is written: without SIGTERM the program keeps running
    assert life.notice_handled() is agent.AgentState.NOTICE_HANDLED
    # A SIGTERM afterwards (ECS draining) stops it; a second notice does not restart the notice handling
    life.post(agent.Notice("received SIGTERM", stop=True))
    life.post(agent.Notice("spot interruption notice again", spot_document="{}"))
    assert life.apply_pending() is agent.AgentState.STOPPING
    assert life.notice_reason == "spot interruption notice" and life.spot_notice_at == 10.0
    life.program_ended_after_notice()
    assert life.state is agent.AgentState.RECLAIMED
    life.post(agent.Notice("late SIGINT", stop=True))
    assert life.apply_pending() is agent.AgentState.RECLAIMED  # nothing leaves the end state


def test_sigterm_before_any_notice_takes_the_checkpoint_then_stops() -> None:
    life = agent.Lifecycle()
    life.post(agent.Notice("received SIGTERM", stop=True))
    assert life.apply_pending() is agent.AgentState.NOTICE_RECEIVED
    assert life.notice_handled() is agent.AgentState.STOPPING
    assert life.spot_notice_at is None  # not a Spot notice: the program's own exit code is forwarded
