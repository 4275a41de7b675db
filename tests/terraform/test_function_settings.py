"""The environment Terraform gives each Lambda (terraform/main.tf) is what its settings class reads.

Read from the HCL text (no toolchain needed): ``common_environment`` plus the function's own
``environment`` map. Every variable a handler requires must be there, and every variable a function
gets beyond the common ones must be read by its handler. scheduler and fleet_manager are not listed
yet: their handlers land with the orchestration branch.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from stepspot.handlers import (
    checkpoint_manager,
    fleet_manager,
    interruption_handler,
    scheduler,
    workflow_monitor,
    workflow_parser,
)
from stepspot.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
MAIN_TF = (ROOT / "terraform" / "main.tf").read_text()
HANDLERS = ROOT / "functions" / "stepspot" / "handlers"

LOADERS: dict[str, Callable[[Mapping[str, str]], Any]] = {
    "workflow_parser": lambda env: load_settings(workflow_parser.ParserSettings, env),
    "checkpoint_manager": checkpoint_manager.Settings.from_env,
    "interruption_handler": lambda env: load_settings(interruption_handler.InterruptionSettings, env),
    "workflow_monitor": lambda env: load_settings(workflow_monitor.MonitorSettings, env),
    "scheduler": lambda env: load_settings(scheduler.SchedulerSettings, env),
    "fleet_manager": lambda env: load_settings(fleet_manager.FleetSettings, env),
}


def _block(text: str, opening: str, indent: str) -> str:
    match = re.search(rf"^{indent}{re.escape(opening)}\n(.*?)^{indent}\}}", text, re.MULTILINE | re.DOTALL)
    assert match, f"{opening!r} not found in terraform/main.tf"
    return match.group(1)


def _names(block: str) -> set[str]:
    return set(re.findall(r"^\s*([A-Z][A-Z0-9_]+)\s*=", block, re.MULTILINE))


def _environment(function: str) -> tuple[set[str], set[str]]:
    common = _names(_block(MAIN_TF, "common_environment = {", "  "))
    body = _block(MAIN_TF, f"{function} = {{", "    ")
    own = re.search(r"environment = \{\n(.*?)^      \}", body, re.MULTILINE | re.DOTALL)
    return common, _names(own.group(1)) if own else set()


def _value(name: str) -> str:
    if name.endswith("_ARN"):
        return "arn:aws:service:eu-west-1:123456789012:resource/stepspot-test"
    if name.endswith(("_DAYS", "_LAST")):
        return "3"
    return "stepspot-test-value"


@pytest.mark.parametrize("function", sorted(LOADERS))
def test_terraform_sets_every_variable_the_handler_requires(function: str) -> None:
    # Given exactly the variables Terraform sets on the function (plus what Lambda itself sets)
    common, own = _environment(function)
    env = {name: _value(name) for name in common | own} | {"AWS_REGION": "eu-west-1"}
    # When the handler checks its settings at cold start, Then nothing is missing or malformed
    LOADERS[function](env)


@pytest.mark.parametrize("function", sorted(LOADERS))
def test_every_variable_of_the_function_is_read_by_its_handler(function: str) -> None:
    _, own = _environment(function)
    source = (HANDLERS / f"{function}.py").read_text()
    unread = sorted(name for name in own if f'"{name}"' not in source)
    assert not unread, f"terraform/main.tf sets {unread} on {function}, which its handler never reads"
