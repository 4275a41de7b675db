"""docs/contracts.md "Environment variables of the Lambdas" says which handler reads which variable, and
whether it must be set: the settings classes are the truth (issue 17: the page had drifted)."""

from __future__ import annotations

import importlib
import re
from collections import defaultdict
from pathlib import Path

from stepspot.settings import LambdaSettings

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = sorted(p.stem for p in (ROOT / "functions" / "stepspot" / "handlers").glob("*.py") if p.stem[0] != "_")
READ_BY_POWERTOOLS_ONLY = {"POWERTOOLS_SERVICE_NAME"}


def _settings_class(handler: str) -> type[LambdaSettings]:
    module = importlib.import_module(f"stepspot.handlers.{handler}")
    [found] = {v for v in vars(module).values() if isinstance(v, type) and issubclass(v, LambdaSettings)} - {
        LambdaSettings
    }
    return found


def _from_code() -> dict[str, tuple[set[str], set[str]]]:
    """variable -> (handlers that read it, handlers that require it)"""
    readers: defaultdict[str, set[str]] = defaultdict(set)
    required: defaultdict[str, set[str]] = defaultdict(set)
    for handler in HANDLERS:
        for field in _settings_class(handler).model_fields.values():
            assert field.alias is not None
            readers[field.alias].add(handler)
            if field.is_required():
                required[field.alias].add(handler)
    return {name: (readers[name], required[name]) for name in readers}


def _from_docs() -> dict[str, tuple[set[str], bool]]:
    """variable -> (handlers the row names, whether the row says optional)"""
    text = (ROOT / "docs" / "contracts.md").read_text()
    section = text[text.index("## Environment variables of the Lambdas") :]
    section = section[: section.index("\n## ", 1)]
    rows: dict[str, tuple[set[str], bool]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        named = {h for h in HANDLERS if re.search(rf"\b{h}\b", cells[1])}
        for variable in re.findall(r"`([A-Z][A-Z0-9_]+)`", cells[0]):
            assert variable not in rows, f"{variable} has two rows"
            rows[variable] = (named, "optional" in cells[1])
    return rows


def test_every_variable_a_handler_reads_is_documented_with_its_readers():
    docs = _from_docs()
    for variable, (readers, required) in _from_code().items():
        assert variable in docs, f"docs/contracts.md does not list {variable} (read by {sorted(readers)})"
        named, optional = docs[variable]
        assert named == readers, f"{variable}: the page names {sorted(named)}, the code reads it in {sorted(readers)}"
        assert optional == (required != readers), f"{variable}: 'optional' on the page does not match the code"


def test_the_page_lists_no_variable_no_handler_reads():
    unread = set(_from_docs()) - set(_from_code()) - READ_BY_POWERTOOLS_ONLY
    assert not unread, f"docs/contracts.md lists {sorted(unread)}, which no settings class reads"
