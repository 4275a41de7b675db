"""The container command that runs the task runner bundle with the image's own python3."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stepspot.agent_exit_codes import EXIT_MISCONFIGURATION
from stepspot.fleet import AGENT_BUNDLE_IN_CONTAINER, agent_command, runner_program


def test_a_wrapped_command_carries_the_task_command_unchanged() -> None:
    task = ["python", "md.py", "--name", "a b", "$HOME", "'quoted'"]
    command = agent_command(task, wrapped=True)
    assert command[:2] == ["/bin/sh", "-c"]
    assert f'exec python3 -I {AGENT_BUNDLE_IN_CONTAINER} run -- "$@"' in command[2]
    assert runner_program(command) == task
    assert agent_command(task, wrapped=False) == task and runner_program(task) is None


def test_an_image_without_python3_fails_as_misconfiguration_with_what_it_needs(tmp_path: Path) -> None:
    result = subprocess.run(
        agent_command(["true"], wrapped=True), env={"PATH": str(tmp_path)}, capture_output=True, text=True
    )
    assert result.returncode == EXIT_MISCONFIGURATION
    assert result.stderr.strip() == (
        "stepspot: the image has no python3 on its PATH; the task runner needs python3 >= 3.9 in the image: "
        "install it or use an image that has it"
    )


@pytest.mark.skipif(Path(AGENT_BUNDLE_IN_CONTAINER).exists(), reason="this machine has the bundle installed")
def test_a_host_without_the_bundle_fails_as_misconfiguration(tmp_path: Path) -> None:
    (tmp_path / "python3").symlink_to("/bin/true")
    result = subprocess.run(
        agent_command(["true"], wrapped=True), env={"PATH": str(tmp_path)}, capture_output=True, text=True
    )
    assert result.returncode == EXIT_MISCONFIGURATION
    assert f"stepspot: {AGENT_BUNDLE_IN_CONTAINER} is missing on this host" in result.stderr
