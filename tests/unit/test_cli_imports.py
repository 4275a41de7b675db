"""The CLI imports only what the chosen command needs (issue 16: `stepspot --help` starts at once).

Each check runs in a fresh interpreter: what a command imports is a property of a process, not of this
test session (which has imported everything already)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stepspot.cli import build_parser, resolve_handler

HEAVY = ("boto3", "botocore", "rich", "pydantic", "pydantic_core", "yaml", "jinja2", "moto")


def modules_after(argv: list[str]) -> set[str]:
    """The modules a fresh `stepspot ARGV` process has imported when it exits."""
    script = (
        "import json, sys\n"
        "from stepspot.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "sys.__stdout__.write('\\n' + json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["local", "--help"], ["submit", "--help"], []])
def test_help_and_usage_import_no_subcommand_module_and_no_heavy_library(argv: list[str]) -> None:
    modules = modules_after(argv)
    assert heavy(modules) == []
    assert sorted(m for m in modules if m.startswith("stepspot")) == [
        "stepspot",
        "stepspot.cli",
        "stepspot.cli.commands",
        "stepspot.environments",
    ]


def test_validate_imports_neither_boto3_nor_the_other_commands(tmp_path: Path) -> None:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps({"name": "w", "tasks": [{"id": "a", "container_image": "i", "command": ["true"]}]}))
    modules = modules_after(["validate", str(path)])
    assert "stepspot.cli.validate" in modules  # the check ran
    assert not {m for m in modules if m.split(".")[0] in ("boto3", "botocore", "moto")}
    assert not {"stepspot.cli.local", "stepspot.cli.remote", "stepspot.cli.remote_status"} & modules


def test_every_command_names_a_handler_that_exists() -> None:
    """The handlers are "module:function" strings until a command runs: check that each resolves."""
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    references = {name: sub.get_default("handler") for name, sub in subparsers.choices.items()}  # type: ignore[attr-defined]
    assert len(references) >= 16
    for name, reference in references.items():
        assert isinstance(reference, str), name
        assert callable(resolve_handler(reference)), f"{name}: {reference}"
