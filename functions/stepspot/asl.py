"""Renders the state machines (``templates/*.asl.json.j2``) into Amazon States Language.

The same templates serve AWS and local mode: resource ARNs are inputs. Terraform renders them once more
with ``templatefile()``, so ``render --out DIR`` (the build step) fills every ARN with the literal
``${name}`` placeholder and writes the list of placeholder names to ``variables.json``; local mode
passes real (moto) ARNs. Jinja2 runs with ``StrictUndefined`` and every value goes through ``tojson``.

    python -m stepspot.asl render --out build/asl [--policy policy.yaml]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2

from stepspot.errors import ConfigurationError, RetryableError
from stepspot.policy import DEFAULT_POLICY, Policy, load_policy_file
from stepspot.transient_errors import BATCH_API_ERRORS, LAMBDA_TIMEOUT_ERRORS, LAMBDA_TRANSIENT_ERRORS

# The template inputs that are resource ARNs (Terraform placeholders). docs/contracts.md lists them.
ARN_VARIABLES = ("workflow_parser_arn", "scheduler_arn", "checkpoint_manager_arn", "attempt_manager_arn")
STATE_MACHINES = {"workflow": "workflow.asl.json.j2", "task": "task.asl.json.j2"}


def templates_dir() -> Path:
    """``templates/`` of the repository (``STEPSPOT_TEMPLATES_DIR`` overrides it)."""
    override = os.environ.get("STEPSPOT_TEMPLATES_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "templates"


def retryable_error_names() -> list[str]:
    """Every ``RetryableError`` subclass name: the ASL error names a Lambda retry must match exactly."""
    found: set[str] = set()
    pending = list(RetryableError.__subclasses__())
    while pending:
        cls = pending.pop()
        found.add(cls.__name__)
        pending.extend(cls.__subclasses__())
    return sorted(found | {"RetryableError"})


def placeholder_arns() -> dict[str, str]:
    return {name: "${" + name + "}" for name in ARN_VARIABLES}


def _tojson(value: Any) -> str:
    """JSON for one template value; an undefined value fails the render with its name."""
    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    return json.dumps(value)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters["tojson"] = _tojson  # plain JSON (no HTML escaping), strict about undefined values
    return env


def render(arns: Mapping[str, str], policy: Policy = DEFAULT_POLICY) -> dict[str, dict[str, Any]]:
    """Render every state machine; returns ``{"workflow": definition, "task": definition}``."""
    missing = [name for name in ARN_VARIABLES if not arns.get(name)]
    if missing:
        raise ConfigurationError(f"cannot render the state machines: no value for {', '.join(missing)}")
    context = {
        **{name: arns[name] for name in ARN_VARIABLES},
        "policy": policy,
        "retryable_errors": retryable_error_names(),
        "lambda_transient_errors": list(LAMBDA_TRANSIENT_ERRORS),
        "lambda_timeout_errors": list(LAMBDA_TIMEOUT_ERRORS),
        "batch_api_errors": list(BATCH_API_ERRORS),
    }
    env = _environment()
    rendered: dict[str, dict[str, Any]] = {}
    for name, template in STATE_MACHINES.items():
        text = env.get_template(template).render(**context)
        try:
            rendered[name] = json.loads(text)
        except json.JSONDecodeError as exc:  # a template bug, not user input
            raise RuntimeError(f"{template} rendered invalid JSON: {exc}") from exc
    return rendered


def to_text(definition: Mapping[str, Any]) -> str:
    return json.dumps(definition, indent=2, sort_keys=False) + "\n"


def render_for_terraform(out: Path, policy: Policy = DEFAULT_POLICY) -> list[Path]:
    """Write ``<name>.asl.json`` with ``${arn}`` placeholders, and ``variables.json``."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, definition in render(placeholder_arns(), policy).items():
        text = to_text(definition)
        _check_only_placeholders(name, text)
        path = out / f"{name}.asl.json"
        path.write_text(text, encoding="utf-8")
        written.append(path)
    variables = out / "variables.json"
    variables.write_text(json.dumps({"variables": list(ARN_VARIABLES)}, indent=2) + "\n", encoding="utf-8")
    written.append(variables)
    return written


def _check_only_placeholders(name: str, text: str) -> None:
    """Terraform's templatefile() would interpret any other ``${`` or ``%{``: refuse to write one."""
    stripped = text
    for placeholder in placeholder_arns().values():
        stripped = stripped.replace(placeholder, "")
    if "${" in stripped or "%{" in stripped:
        raise RuntimeError(f"{name} state machine contains a '${{' or '%{{' that Terraform would interpret")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stepspot.asl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    render_cmd = sub.add_parser("render", help="render the state machines with Terraform placeholders")
    render_cmd.add_argument("--out", type=Path, default=Path("build/asl"), help="output directory")
    render_cmd.add_argument("--policy", type=Path, help="JSON or YAML file overriding policy knobs")
    args = parser.parse_args(argv)
    try:
        policy = load_policy_file(args.policy) if args.policy else DEFAULT_POLICY
        for path in render_for_terraform(args.out, policy):
            print(path)
    except ConfigurationError as exc:
        print(f"stepspot: {exc.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
