"""`stepspot schema`: print the workflow JSON Schema generated from the model (schema/workflow.schema.json)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stepspot.workflow import json_schema


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def run(args: argparse.Namespace) -> int:
    text = schema_text()
    if args.output_file:
        target = Path(args.output_file)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)  # atomic: never a half-written schema
    else:
        print(text, end="")
    return 0
