"""Workflow templates: parameterised Jinja2 definitions of common HPC patterns (pure; no AWS).

Each template is a directory under ``templates/workflows/``:

    <name>/template.yaml     description and parameters (type, default, description, bounds)
    <name>/workflow.yaml.j2  the definition, rendered with the parameters (StrictUndefined)

Parameter types: ``int``, ``float``, ``string``, ``bool``, ``choice`` (with ``choices``). ``--set``
values arrive as text and are converted and checked here; every problem is reported at once.
Strings reach the YAML through the ``tojson`` filter, so a value can never break the document.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError

from stepspot.errors import TemplateParameterError
from stepspot.workflow import LoadedWorkflow, parse_workflow

PARAMETER_TYPES = ("int", "float", "string", "bool", "choice")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


@dataclass(frozen=True)
class TemplateParameter:
    name: str
    type: str
    default: Any
    description: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    pattern: str | None = None

    def convert(self, text: str) -> Any:
        """Text from ``--set`` -> a checked value, or ``ValueError`` with a sentence."""
        value: Any
        if self.type == "int":
            try:
                value = int(text)
            except ValueError:
                raise ValueError(f"expects a whole number, got {text!r}") from None
        elif self.type == "float":
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"expects a number, got {text!r}") from None
        elif self.type == "bool":
            if text.lower() not in _TRUE | _FALSE:
                raise ValueError(f"expects true or false, got {text!r}")
            value = text.lower() in _TRUE
        else:
            value = text
        self.check(value)
        return value

    def check(self, value: Any) -> None:
        if self.type == "choice" and value not in self.choices:
            raise ValueError(f"must be one of {', '.join(self.choices)}, got {value!r}")
        if self.type == "string" and not str(value).strip():
            raise ValueError("must not be empty")
        if self.pattern is not None and not re.fullmatch(self.pattern, str(value)):
            raise ValueError(f"must match {self.pattern}, got {value!r}")
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"must be at least {_number(self.minimum)}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"must be at most {_number(self.maximum)}, got {value}")

    def describe_range(self) -> str:
        if self.type == "choice":
            return " | ".join(self.choices)
        if self.minimum is not None and self.maximum is not None:
            return f"{_number(self.minimum)}-{_number(self.maximum)}"
        if self.minimum is not None:
            return f">= {_number(self.minimum)}"
        if self.maximum is not None:
            return f"<= {_number(self.maximum)}"
        return ""


@dataclass(frozen=True)
class WorkflowTemplate:
    name: str
    description: str
    directory: Path
    parameters: dict[str, TemplateParameter] = field(default_factory=dict)

    def resolve(self, assignments: dict[str, str]) -> dict[str, Any]:
        """Defaults overlaid with ``assignments``; raises with every unknown or invalid one listed."""
        problems = []
        values = {name: parameter.default for name, parameter in self.parameters.items()}
        for key, text in assignments.items():
            parameter = self.parameters.get(key)
            if parameter is None:
                known = ", ".join(self.parameters) or "none"
                problems.append(f"unknown parameter {key!r} (template {self.name!r} takes: {known})")
                continue
            try:
                values[key] = parameter.convert(text)
            except ValueError as exc:
                problems.append(f"{key} {exc}")
        if problems:
            raise TemplateParameterError(
                f"Cannot render template {self.name!r}: " + "; ".join(problems) + ".",
                template=self.name,
                problems=problems,
            )
        return values

    def render_text(self, values: dict[str, Any]) -> str:
        environment = Environment(
            loader=FileSystemLoader(str(self.directory)),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            autoescape=False,  # YAML output; every string goes through `tojson` in the templates
        )
        environment.filters["shell_split"] = shlex.split
        try:
            return environment.get_template("workflow.yaml.j2").render(**values)
        except TemplateError as exc:  # a defect of the template itself, not of the user's input
            raise RuntimeError(f"template {self.name!r} is broken: {exc}") from exc

    def render(self, assignments: dict[str, str]) -> tuple[str, LoadedWorkflow]:
        """(YAML text, the validated workflow). The text is only returned when it validates."""
        text = self.render_text(self.resolve(assignments))
        return text, parse_workflow(text, source=f"template {self.name}", fmt="yaml")


def parse_assignments(items: list[str]) -> dict[str, str]:
    """``["key=value", ...]`` -> dict; a malformed item raises ``TemplateParameterError``."""
    values: dict[str, str] = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key.strip():
            raise TemplateParameterError(f"--set {item!r} is not key=value: write for example --set members=20.")
        values[key.strip()] = value
    return values


def load_template(directory: Path) -> WorkflowTemplate:
    spec = yaml.safe_load((directory / "template.yaml").read_text(encoding="utf-8")) or {}
    parameters = {}
    for name, raw in (spec.get("parameters") or {}).items():
        kind = raw.get("type", "string")
        if kind not in PARAMETER_TYPES:
            raise RuntimeError(f"template {directory.name!r}: parameter {name!r} has unknown type {kind!r}")
        parameter = TemplateParameter(
            name=name,
            type=kind,
            default=raw["default"],
            description=str(raw.get("description", "")),
            minimum=raw.get("min"),
            maximum=raw.get("max"),
            choices=tuple(str(choice) for choice in raw.get("choices", ())),
            pattern=raw.get("pattern"),
        )
        parameter.check(parameter.default)
        parameters[name] = parameter
    return WorkflowTemplate(directory.name, str(spec.get("description", "")).strip(), directory, parameters)


def discover_templates(root: Path) -> dict[str, WorkflowTemplate]:
    """Every template under ``root`` (directories holding a ``template.yaml``), by name."""
    if not root.is_dir():
        return {}
    return {path.parent.name: load_template(path.parent) for path in sorted(root.glob("*/template.yaml"))}


def as_json(text: str) -> str:
    """The rendered YAML definition as JSON (for ``-o file.json``)."""
    return json.dumps(yaml.safe_load(text), indent=2) + "\n"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
