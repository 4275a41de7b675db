"""`stepspot templates` and `stepspot new`: start a workflow from a template of a common pattern."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rich.table import Table

from stepspot.cli.output import console, err_console, print_problems
from stepspot.errors import TemplateParameterError, WorkflowValidationError
from stepspot.workflow_templates import WorkflowTemplate, as_json, discover_templates, parse_assignments

EXIT_OK, EXIT_USAGE = 0, 2


def templates_root() -> Path:
    """``STEPSPOT_TEMPLATES_DIR``, else ``templates/workflows`` of the checkout this package runs from."""
    configured = os.environ.get("STEPSPOT_TEMPLATES_DIR", "").strip()
    if configured:
        return Path(configured)
    checkout = Path(__file__).resolve().parents[3] / "templates" / "workflows"
    if checkout.is_dir():
        return checkout
    return Path.cwd() / "templates" / "workflows"


def run_templates(args: argparse.Namespace) -> int:
    templates = discover_templates(templates_root())
    if not templates:
        err_console.print(f"No workflow templates found in {templates_root()} (set STEPSPOT_TEMPLATES_DIR).")
        return EXIT_USAGE
    if args.json:
        document = {
            name: {
                "description": template.description,
                "parameters": {
                    p.name: {
                        "type": p.type,
                        "default": p.default,
                        "description": p.description,
                        "range": p.describe_range(),
                    }
                    for p in template.parameters.values()
                },
            }
            for name, template in templates.items()
        }
        print(json.dumps(document, indent=2))
        return EXIT_OK
    for template in templates.values():
        table = Table(title=f"[bold]{template.name}[/]: {template.description}", title_justify="left", expand=False)
        table.add_column("parameter", style="cyan", no_wrap=True)
        table.add_column("type")
        table.add_column("default", overflow="fold")
        table.add_column("range")
        table.add_column("description")
        for p in template.parameters.values():
            table.add_row(p.name, p.type, str(p.default), p.describe_range(), p.description)
        console.print(table)
        console.print()
    console.print("Render one with: stepspot new TEMPLATE --set key=value ... -o my-workflow.yaml")
    return EXIT_OK


def run_new(args: argparse.Namespace) -> int:
    templates = discover_templates(templates_root())
    template: WorkflowTemplate | None = templates.get(args.template)
    if template is None:
        known = ", ".join(templates) or "none"
        err_console.print(
            f"stepspot: unknown template {args.template!r}: choose one of {known}.", highlight=False, soft_wrap=True
        )
        return EXIT_USAGE
    output: Path | None = args.output
    if output is not None and output.exists() and not args.force:
        err_console.print(f"stepspot: {output} already exists: pass --force to overwrite it.", highlight=False)
        return EXIT_USAGE
    try:
        text, loaded = template.render(parse_assignments(args.assignments))
    except TemplateParameterError as exc:
        err_console.print(f"stepspot: {exc.message}", highlight=False, soft_wrap=True)
        return EXIT_USAGE
    except WorkflowValidationError as exc:  # the parameters combine into an invalid workflow
        print_problems(exc.problems, source=f"template {template.name}")
        return EXIT_USAGE
    content = as_json(text) if output is not None and output.suffix.lower() == ".json" else text
    if output is None:
        sys.stdout.write(content)
        return EXIT_OK
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(content, encoding="utf-8")
    tasks = len(loaded.workflow.tasks)
    err_console.print(
        f"[green]wrote[/] {output} ({tasks} tasks, valid). Next: stepspot plan {output}",
        highlight=False,
        soft_wrap=True,
    )
    for warning in loaded.warnings:
        err_console.print(f"  [yellow]warning[/] {warning}", highlight=False)
    return EXIT_OK
