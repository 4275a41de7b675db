"""scripts/run-workflow.sh: flags, exit codes and the CLI command each mode runs.

The script runs in a copy of the repository layout whose Makefile `venv` target installs a stub
`stepspot` that records its arguments, so the tests see exactly what the wrapper would run.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "run-workflow.sh"

STUB_MAKEFILE = """\
venv:
\tmkdir -p .venv/bin
\tcp stub-stepspot .venv/bin/stepspot
\tchmod +x .venv/bin/stepspot
\ttouch venv-was-made
"""
STUB_CLI = """#!/usr/bin/env bash
printf '%s\\n' "$@" > "$(dirname "$0")/../../cli-args"
exit "${STUB_EXIT:-0}"
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPT, tmp_path / "scripts" / "run-workflow.sh")
    (tmp_path / "Makefile").write_text(STUB_MAKEFILE)
    (tmp_path / "stub-stepspot").write_text(STUB_CLI)
    (tmp_path / "wf.json").write_text('{"name": "x", "tasks": []}')
    return tmp_path


def run(repo: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(repo / "scripts" / "run-workflow.sh"), *args],
        cwd=repo,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        timeout=30,
    )


def cli_args(repo: Path) -> list[str]:
    return (repo / "cli-args").read_text().splitlines()


def test_help_lists_every_flag_and_exits_zero(repo: Path) -> None:
    result = run(repo, "--help")
    assert result.returncode == 0
    for flag in ("--workflow-file", "--execution-name", "--env", "--dry-run", "--local", "--watch"):
        assert flag in result.stdout
    assert not (repo / "venv-was-made").exists()


def test_unknown_flag_is_named_and_exits_2(repo: Path) -> None:
    result = run(repo, "--workflow-file", "wf.json", "--turbo")
    assert result.returncode == 2
    assert "unknown option '--turbo'" in result.stderr
    assert "--help" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "--workflow-file is required."),
        (("--workflow-file",), "--workflow-file needs a value."),
        (("--workflow-file", "missing.json"), "workflow file 'missing.json' does not exist."),
        (("--workflow-file", "wf.json", "--dry-run", "--local"), "--dry-run and --local cannot be used together."),
        (("--workflow-file", "wf.json", "--env", "qa"), "unknown environment 'qa': choose dev, staging or prod."),
        (("--workflow-file", "wf.json", "--execution-name", "a b"), "must be 1-64 characters"),
        (("--workflow-file", "wf.json", "--local", "--watch"), "--watch only applies when submitting"),
    ],
)
def test_bad_usage_exits_2_with_a_sentence(repo: Path, args: tuple[str, ...], message: str) -> None:
    result = run(repo, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert not (repo / "cli-args").exists()


def test_first_run_creates_the_venv_then_submits_to_the_default_environment(repo: Path) -> None:
    result = run(repo, "--workflow-file", "wf.json", "--execution-name", "md-run-1")
    assert result.returncode == 0, result.stderr
    assert (repo / "venv-was-made").exists()
    assert "creating the virtualenv" in result.stderr
    assert cli_args(repo) == ["submit", "wf.json", "--env", "dev", "--execution-name", "md-run-1"]


def test_existing_venv_is_reused(repo: Path) -> None:
    run(repo, "--workflow-file", "wf.json")
    (repo / "venv-was-made").unlink()
    result = run(repo, "--workflow-file", "wf.json", "--env", "prod", "--watch")
    assert result.returncode == 0
    assert not (repo / "venv-was-made").exists()
    assert cli_args(repo) == ["submit", "wf.json", "--env", "prod", "--watch"]


def test_environment_defaults_to_stepspot_env(repo: Path) -> None:
    run(repo, "--workflow-file", "wf.json", env={"STEPSPOT_ENV": "staging"})
    assert cli_args(repo) == ["submit", "wf.json", "--env", "staging"]


def test_dry_run_runs_plan(repo: Path) -> None:
    result = run(repo, "--workflow-file=wf.json", "--dry-run")
    assert result.returncode == 0
    assert cli_args(repo) == ["plan", "wf.json", "--env", "dev"]


def test_local_runs_local_and_passes_extra_arguments(repo: Path) -> None:
    result = run(repo, "--workflow-file", "wf.json", "--local", "--execution-name", "x", "--", "--seed", "7")
    assert result.returncode == 0
    assert cli_args(repo) == ["local", "wf.json", "--env", "dev", "--seed", "7"]
    assert "--execution-name only names executions submitted to AWS" in result.stderr


def test_cli_exit_code_is_passed_through(repo: Path) -> None:
    result = run(repo, "--workflow-file", "wf.json", env={"STUB_EXIT": "3"})
    assert result.returncode == 3
