"""The rendered state machines: valid ASL (asl-validator, pinned in tests/asl), golden snapshots,
Terraform placeholders, strict rendering, and the policy knobs reaching the definitions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jinja2
import pytest

from stepspot import asl
from stepspot.errors import ConfigurationError
from stepspot.policy import Policy, policy_from_mapping

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR_DIR = ROOT / "tests" / "asl"
VALIDATOR = VALIDATOR_DIR / "node_modules" / ".bin" / "asl-validator"
GOLDEN = Path(__file__).parent / "golden"
LOCAL_ARNS = {name: f"arn:aws:lambda:us-east-1:123456789012:function:{name}" for name in asl.ARN_VARIABLES}


@pytest.fixture(scope="session")
def asl_validator() -> Path:
    """The pinned validator; installed from the lock file if `make asl-validator` has not run yet."""
    if not VALIDATOR.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("asl-validator needs Node.js and npm: install them, then run `make asl-validator`")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=VALIDATOR_DIR, check=True, capture_output=True)
    return VALIDATOR


def _validate(validator: Path, definition: dict, tmp_path: Path, name: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"{name}.asl.json"
    path.write_text(json.dumps(definition))
    return subprocess.run([str(validator), "--json-path", str(path)], capture_output=True, text=True)


@pytest.mark.parametrize("arns", [asl.placeholder_arns(), LOCAL_ARNS], ids=["terraform", "local"])
def test_every_rendered_definition_passes_asl_validator(asl_validator, tmp_path, arns):
    for name, definition in asl.render(arns).items():
        result = _validate(asl_validator, definition, tmp_path, name)
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"


def test_asl_validator_rejects_a_broken_definition(asl_validator, tmp_path):
    # Given a definition whose StartAt names no state (proves the validator is really consulted)
    broken = asl.render(LOCAL_ARNS)["task"]
    broken["StartAt"] = "NoSuchState"
    assert _validate(asl_validator, broken, tmp_path, "broken").returncode != 0


@pytest.mark.parametrize("name", sorted(asl.STATE_MACHINES))
def test_rendering_matches_the_golden_snapshot(name):
    # Regenerate after an intended change: STEPSPOT_UPDATE_GOLDEN=1 pytest tests/unit/test_asl.py
    rendered = asl.to_text(asl.render(asl.placeholder_arns())[name])
    golden = GOLDEN / f"{name}.asl.json"
    if os.environ.get("STEPSPOT_UPDATE_GOLDEN"):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(rendered)
    assert rendered == golden.read_text(), f"{name}.asl.json changed: review, then update the golden file"


def test_terraform_output_holds_only_the_listed_placeholders(tmp_path):
    written = asl.render_for_terraform(tmp_path)
    assert sorted(p.name for p in written) == ["task.asl.json", "variables.json", "workflow.asl.json"]
    variables = json.loads((tmp_path / "variables.json").read_text())["variables"]
    assert variables == list(asl.ARN_VARIABLES)
    for name in ("task", "workflow"):
        text = (tmp_path / f"{name}.asl.json").read_text()
        for placeholder in asl.placeholder_arns().values():
            text = text.replace(placeholder, "")
        assert "${" not in text and "%{" not in text


def test_render_cli_writes_the_build_directory(tmp_path):
    assert asl.main(["render", "--out", str(tmp_path / "asl")]) == 0
    assert (tmp_path / "asl" / "task.asl.json").is_file()


def test_a_missing_arn_is_refused_with_its_name():
    arns = dict(LOCAL_ARNS)
    del arns["scheduler_arn"]
    with pytest.raises(ConfigurationError, match="no value for scheduler_arn"):
        asl.render(arns)


def test_templates_render_with_strict_undefined(tmp_path, monkeypatch):
    # Given a template that refers to a variable nobody passes
    (tmp_path / "_macros.j2").write_text((asl.templates_dir() / "_macros.j2").read_text())
    for template in asl.STATE_MACHINES.values():
        (tmp_path / template).write_text('{"Comment": {{ no_such_variable | tojson }}}')
    monkeypatch.setenv("STEPSPOT_TEMPLATES_DIR", str(tmp_path))
    # Then rendering fails instead of writing an empty value
    with pytest.raises(jinja2.UndefinedError, match="no_such_variable"):
        asl.render(LOCAL_ARNS)


def test_policy_knobs_reach_the_definitions():
    policy = policy_from_mapping(
        {"lambda_retry": {"max_attempts": 9, "interval_seconds": 4}, "submit_retry_attempts": 5}
    )
    task = asl.render(LOCAL_ARNS, policy)["task"]
    retry = task["States"]["ChooseCapacity"]["Retry"][0]
    assert (retry["MaxAttempts"], retry["IntervalSeconds"]) == (9, 4)
    assert task["States"]["RunJob"]["Retry"][0]["MaxAttempts"] == 5


def _lambda_tasks(states: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every Task state that invokes a Lambda (directly or through lambda:invoke), nested states included."""
    found = []
    for name, state in states.items():
        resource = str(state.get("Resource", ""))
        if state.get("Type") == "Task" and (
            resource in LOCAL_ARNS.values() or resource.startswith("arn:aws:states:::lambda:invoke")
        ):
            found.append((f"{path}{name}", state))
        nested = [*state.get("Branches", []), state.get("Iterator"), state.get("ItemProcessor")]
        for sub in filter(None, nested):
            found.extend(_lambda_tasks(sub["States"], f"{path}{name}/"))
    return found


def test_lambda_retries_match_every_retryable_error_class():
    # The classes the Lambdas raise as retryable, found here independently of asl.retryable_error_names().
    from stepspot import errors

    retryable = {
        cls.__name__
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.RetryableError)
    }
    assert {"RetryableError", "AwsThrottledError", "StateWriteContendedError"} <= retryable
    checked = 0
    for kind, definition in asl.render(LOCAL_ARNS).items():
        for name, state in _lambda_tasks(definition["States"]):
            rules = [set(rule["ErrorEquals"]) for rule in state.get("Retry", [])]
            assert any(retryable <= rule for rule in rules), f"{kind}.{name} retries {rules}, not all of {retryable}"
            checked += 1
    assert checked >= 8  # every orchestration Lambda call of both state machines


def test_only_ids_and_uris_travel_into_task_executions():
    # The scheduler's task input and the ASL parameters name ids, the plan URI and small flags only.
    from stepspot.scheduler import task_input

    assert set(task_input("wf", "t", "s3://b/workflows/wf/plan.json")) == {
        "workflow_id",
        "task_id",
        "plan_uri",
        "attempt",
        "on_demand",
    }


def test_templates_use_jsonpath_only_so_moto_needs_no_jsonata():
    for definition in asl.render(LOCAL_ARNS).values():
        assert "QueryLanguage" not in json.dumps(definition)


def test_default_policy_is_valid_and_documented():
    policy = Policy()
    readme = (ROOT / "templates" / "README.md").read_text()
    for knob in ("base_seconds", "failure_threshold", "cooldown_seconds", "max_running_tasks", "max_retries"):
        assert knob in readme
    assert policy.for_class(policy.failure_classes.__iter__().__next__()).max_retries >= 0


def _lambda_states(definition: dict) -> dict[str, dict]:
    return {
        name: state
        for name, state in definition["States"].items()
        if state["Type"] == "Task"
        and ":function:"
        in json.dumps(state.get("Resource", "")) + json.dumps(state.get("Parameters", {}).get("FunctionName", ""))
    }


def test_every_lambda_task_retries_lambda_timeouts_and_service_errors():
    wanted = {
        "Lambda.ClientExecutionTimeoutException",
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
        "StateWriteContendedError",
        # The function's own timeout: Lambda.Unknown (Step Functions' guide, "Handle Lambda service
        # exceptions"), Sandbox.Timedout (the errorType of current runtimes). Retried everywhere, also
        # in StartWorkflow: a scheduler that timed out on "start" is run again (it is idempotent).
        "Lambda.Unknown",
        "Sandbox.Timedout",
    }
    for machine, definition in asl.render(LOCAL_ARNS).items():
        for name, state in _lambda_states(definition).items():
            retried = {e for rule in state["Retry"] for e in rule["ErrorEquals"]}
            assert wanted <= retried, f"{machine}.{name} does not retry {wanted - retried}"
            if name != "StartWorkflow":  # its own timeout is the workflow's deadline: caught, not retried
                assert "States.Timeout" in retried, f"{machine}.{name}"


def test_a_lost_callback_cannot_hang_the_workflow():
    machines = asl.render(LOCAL_ARNS)
    start = machines["workflow"]["States"]["StartWorkflow"]
    # The wait for the scheduler's answer has a heartbeat and a deadline from the plan ...
    assert start["HeartbeatSecondsPath"] == "$.limits.heartbeat_seconds"
    assert start["TimeoutSecondsPath"] == "$.limits.timeout_seconds"
    assert machines["workflow"]["States"]["ParseWorkflow"]["ResultSelector"]["limits.$"] == "$.limits"
    assert not any("States.Timeout" in rule["ErrorEquals"] for rule in start["Retry"])
    assert any(c["ErrorEquals"] == ["States.ALL"] for c in start["Catch"])
    # ... and every callback state of the task machine ends the execution (FAILED) instead of hanging
    for name in ("TaskSucceeded", "TaskFailed", "TaskErrored"):
        catch = machines["task"]["States"][name]["Catch"]
        assert catch and machines["task"]["States"][catch[0]["Next"]]["Type"] == "Fail", name


def test_submit_job_retries_long_enough_for_an_account_wide_burst():
    run_job = asl.render(LOCAL_ARNS)["task"]["States"]["RunJob"]["Retry"][0]
    assert {"Batch.AWSBatchException", "Batch.TooManyRequestsException"} <= set(run_job["ErrorEquals"])
    assert run_job["BackoffRate"] == 2 and run_job["JitterStrategy"] == "FULL"
    assert run_job["MaxDelaySeconds"] >= 30
    # The retries cover minutes, not the 14 s that 3 retries from 2 s gave
    window = sum(
        min(run_job["MaxDelaySeconds"], run_job["IntervalSeconds"] * 2**n) for n in range(run_job["MaxAttempts"])
    )
    assert window >= 120
