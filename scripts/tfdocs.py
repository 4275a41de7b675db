"""Write the inputs/outputs tables of each Terraform module README (terraform-docs is not installable here).

Fills the part between `<!-- BEGIN_TF_DOCS -->` and `<!-- END_TF_DOCS -->`; the rest is hand-written.
`--check` exits 1 when a README is out of date (run by the tests). Needs python-hcl2 (tools venv).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import hcl2

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- BEGIN_TF_DOCS -->", "<!-- END_TF_DOCS -->"


def _one(value):
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _type(source: str, name: str) -> str:
    """The type expression as written (hcl2 turns nested types into Python reprs)."""
    start = source.index(f'variable "{name}"')
    match = re.compile(r"\n  type\s*=\s*").search(source, start)
    assert match is not None, name
    depth, end = 0, match.end()
    while end < len(source):
        char = source[end]
        depth += char in "({"
        depth -= char in ")}"
        if char == "\n" and depth == 0:
            break
        end += 1
    return " ".join(source[match.end() : end].split()).replace("( ", "(").replace(" )", ")")


def tables(module: Path) -> str:
    source = (module / "variables.tf").read_text()
    variables = hcl2.loads(source).get("variable", [])
    outputs = hcl2.loads((module / "outputs.tf").read_text()).get("output", [])
    lines = ["## Inputs", "", "| Name | Description | Type | Default | Required |", "|---|---|---|---|:---:|"]
    for block in variables:
        for name, body in block.items():
            has_default = "default" in body
            default = _one(body.get("default")) if has_default else None
            shown = "`null`" if has_default and default is None else (f"`{default}`" if has_default else "n/a")
            if isinstance(default, (dict, list)) and default:
                shown = "see variables.tf"
            lines.append(
                f"| {name} | {_cell(_one(body.get('description', '')))} | `{_cell(_type(source, name))}` "
                f"| {_cell(shown)} | {'no' if has_default else 'yes'} |"
            )
    lines += ["", "## Outputs", "", "| Name | Description |", "|---|---|"]
    for block in outputs:
        for name, body in block.items():
            lines.append(f"| {name} | {_cell(_one(body.get('description', '')))} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for module in sorted((ROOT / "terraform" / "modules").iterdir()):
        readme = module / "README.md"
        text = readme.read_text()
        if BEGIN not in text or END not in text:
            stale.append(f"{readme}: missing {BEGIN} / {END} markers")
            continue
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        new = f"{head}{BEGIN}\n{tables(module)}\n{END}{tail}"
        if new != text:
            if check:
                stale.append(f"{readme.relative_to(ROOT)} is out of date: run `make docs`")
            else:
                readme.write_text(new)
    for line in stale:
        print(line, file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
