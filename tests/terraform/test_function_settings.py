"""The environment Terraform gives each Lambda is what its settings class reads.

Read from the root module's offline plan (tests/terraform/conftest.py ``root_plan``): the planned
``environment.variables`` of every function, for a deployment without the optional parts (staging) and
one with all of them (dev + fixtures/all-switches.tfvars: GPU queues, EFS at a non-default path, EFA).
Values known only after apply (ARNs, names) get a well-formed stand-in; known values are checked as
planned. Every variable a handler requires must be there, and every variable a function gets beyond
the common ones must be read by its handler.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from stepspot import capacity
from stepspot.handlers import (
    attempt_manager,
    checkpoint_manager,
    interruption_handler,
    scheduler,
    workflow_monitor,
    workflow_parser,
)
from stepspot.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = ROOT / "functions" / "stepspot" / "handlers"
COMMON = {"STEPSPOT_BUCKET", "STEPSPOT_STATE_TABLE", "STEPSPOT_ENVIRONMENT"} | {
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
}
PLANS = ("staging", "dev-all-switches")

LOADERS: dict[str, Callable[[Mapping[str, str]], Any]] = {
    "workflow_parser": lambda env: load_settings(workflow_parser.ParserSettings, env),
    "checkpoint_manager": lambda env: load_settings(checkpoint_manager.CheckpointManagerSettings, env),
    "interruption_handler": lambda env: load_settings(interruption_handler.InterruptionSettings, env),
    "workflow_monitor": lambda env: load_settings(workflow_monitor.MonitorSettings, env),
    "scheduler": lambda env: load_settings(scheduler.SchedulerSettings, env),
    "attempt_manager": lambda env: load_settings(attempt_manager.AttemptManagerSettings, env),
}


def _stand_in(name: str) -> str:
    if name.endswith("_ARN"):
        return f"arn:aws:service:eu-west-1:123456789012:resource/{name.lower()}"
    return f"stepspot-test-{name.lower().replace('_', '-')}"


def planned_environment(plan: Mapping[str, Any], function: str) -> dict[str, str]:
    """The function's environment variables as planned (unknown values: stand-ins), plus what Lambda sets."""
    address = f'module.functions.aws_lambda_function.this["{function}"]'
    change = next(r["change"] for r in plan["resource_changes"] if r["address"] == address)
    known: dict[str, str] = change["after"]["environment"][0].get("variables") or {}
    unknown = change["after_unknown"].get("environment", [{}])[0].get("variables", {})
    assert unknown is not True, f"{function}: the whole environment is unknown at plan time; its names must be known"
    env = dict(known) | {name: _stand_in(name) for name, is_unknown in unknown.items() if is_unknown}
    return env | {"AWS_REGION": "eu-west-1"}


@pytest.fixture(scope="module", params=PLANS)
def environments(request: pytest.FixtureRequest, root_plan: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    plan = root_plan(request.param)
    return {"plan": request.param, **{f: planned_environment(plan, f) for f in LOADERS}}


@pytest.mark.parametrize("function", sorted(LOADERS))
def test_terraform_sets_every_variable_the_handler_requires(environments: dict[str, Any], function: str) -> None:
    # Given exactly the variables Terraform plans for the function (plus what Lambda itself sets)
    # When the handler checks its settings at cold start, Then nothing is missing or malformed
    LOADERS[function](environments[function])


@pytest.mark.parametrize("function", sorted(LOADERS))
def test_every_variable_of_the_function_is_read_by_its_handler(environments: dict[str, Any], function: str) -> None:
    own = set(environments[function]) - COMMON - {"AWS_REGION"}
    source = (HANDLERS / f"{function}.py").read_text()
    unread = sorted(name for name in own if f'"{name}"' not in source)
    assert not unread, f"terraform/main.tf sets {unread} on {function}, which its handler never reads"


def test_attempt_manager_gets_the_gpu_queues_exactly_when_the_deployment_has_them(environments: dict[str, Any]) -> None:
    settings = LOADERS["attempt_manager"](environments["attempt_manager"])
    gpu = environments["plan"] == "dev-all-switches"
    # Absent (not empty) without GPUs: the attempt manager's sentence names gpu_enabled.
    assert ("STEPSPOT_GPU_SPOT_QUEUE_ARN" in environments["attempt_manager"]) is gpu
    assert (settings.gpu_spot_queue_arn is not None, settings.gpu_ondemand_queue_arn is not None) == (gpu, gpu)


def test_attempt_manager_gets_instance_types_under_the_workflow_queue_names(environments: dict[str, Any]) -> None:
    settings = LOADERS["attempt_manager"](environments["attempt_manager"])
    assert settings.instance_types_json is not None, "known at plan time: the tfvars' lists"
    by_queue = capacity.instance_types_from_json(settings.instance_types_json)
    gpu = environments["plan"] == "dev-all-switches"
    expected = set(capacity.QUEUE_NAMES) if gpu else {capacity.SPOT, capacity.ON_DEMAND, capacity.MNP}
    assert set(by_queue) == expected
    assert "r7i.16xlarge" in by_queue[capacity.SPOT] and "r7i.16xlarge" in by_queue[capacity.ON_DEMAND]
    if gpu:
        assert by_queue[capacity.MNP] == ["c7i.48xlarge"] and by_queue[capacity.GPU_SPOT]


def test_attempt_manager_gets_the_shared_mount_path(environments: dict[str, Any]) -> None:
    settings = LOADERS["attempt_manager"](environments["attempt_manager"])
    assert settings.shared_mount_path == ("/mnt/shared" if environments["plan"] == "dev-all-switches" else "/mnt/efs")


def test_workflow_monitor_knows_the_gpu_pair_when_there_is_one(environments: dict[str, Any]) -> None:
    settings = LOADERS["workflow_monitor"](environments["workflow_monitor"])
    gpu = environments["plan"] == "dev-all-switches"
    assert (settings.gpu_spot_queue is not None, settings.gpu_ondemand_queue is not None) == (gpu, gpu)


def test_workflow_monitor_can_report_lost_task_executions_to_the_scheduler(environments: dict[str, Any]) -> None:
    # Without the scheduler's ARN the monitor drops the report, and a task execution that ended
    # abnormally leaves its workflow waiting until the StartWorkflow heartbeat gives up.
    settings = LOADERS["workflow_monitor"](environments["workflow_monitor"])
    assert settings.scheduler_function is not None and settings.scheduler_function.startswith("arn:")


def test_scheduler_hands_the_rest_of_a_fan_out_to_itself(
    environments: dict[str, Any], root_plan: Callable[[str], dict[str, Any]]
) -> None:
    # The scheduler's continuation target is itself (the ARN the monitor reports to), and a continuation
    # that fails every attempt goes to the alerts topic rather than vanishing.
    own = LOADERS["scheduler"](environments["scheduler"]).scheduler_function
    assert own == environments["workflow_monitor"]["STEPSPOT_SCHEDULER_FUNCTION_ARN"]
    changes = {r["address"]: r["change"] for r in root_plan(environments["plan"])["resource_changes"]}
    name = changes['module.functions.aws_lambda_function.this["scheduler"]']["after"]["function_name"]
    if not own.startswith("arn:aws:service:"):  # known at plan time (not a stand-in)
        assert own.endswith(f":function:{name}")
    config = changes["aws_lambda_function_event_invoke_config.scheduler"]
    assert config["after"]["function_name"] == name and config["after"]["maximum_retry_attempts"] == 2
    destination = config["after"]["destination_config"][0]["on_failure"][0]["destination"]
    assert destination.endswith(":" + name.removesuffix("-scheduler") + "-alerts")
    # A chain of more than 16 self-invocations (a fan-out wider than 16 slices) must not be stopped.
    assert changes["aws_lambda_function_recursion_config.scheduler"]["after"]["recursive_loop"] == "Allow"
