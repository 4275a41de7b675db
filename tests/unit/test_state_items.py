"""State-table attribute names and domain constants are defined once (stepspot.state_items and friends).

An AST scan of the adapters and readers: an attribute name spelled as a string, in an expression or as a
key, is a second definition of it. (Who writes which attribute is checked on moto by
tests/integration/test_state_item_owners.py.)
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from stepspot import state_items
from stepspot.scheduler import TaskState, WorkflowStatus
from stepspot.state_items import ALL_TASK, ALL_WORKFLOW, WRITERS, JobIndexItem, Kind, TaskItem, WorkflowItem

PACKAGE = Path(state_items.__file__).parent
# The adapters of the state table: no attribute name may appear in them as a string.
ADAPTERS = [
    "aws/scheduler_state.py",
    "aws/state_table.py",
    "aws/monitor_store.py",
    "aws/task_attempts.py",
    "aws/cost_store.py",
    "aws/workflow_records.py",
    "aws/cost_recorder.py",
]
# Readers of the items: they read attributes through the constants (or the typed views).
READERS = [
    "registration.py",
    "notifications.py",
    "handlers/scheduler.py",
    "handlers/attempt_manager.py",
    "handlers/workflow_monitor.py",
    "handlers/interruption_handler.py",
    "cli/remote_status.py",
    "cli/remote.py",
    "cli/local.py",
    "report/from_state.py",
    "local/engine.py",
    "local/summary.py",
    "local/ledger.py",
]
STATE_ATTRIBUTES = (ALL_TASK | ALL_WORKFLOW | {v for k, v in vars(state_items.Event).items() if k.isupper()}) - {
    "pk",
    "sk",
}
_EXPRESSION = re.compile(r"(^|\s)(SET|ADD|REMOVE)\s|attribute_(not_)?exists\(|if_not_exists\(|contains\(|[:#][a-z]\w*")
_WORD = re.compile(r"(?<![:#\w])[A-Za-z_]\w*")  # not a :value or #name placeholder
# Variables that hold an item in the readers; ids are left out (every event and request has them too).
ITEM_VARIABLES = {"item", "task", "t", "meta", "workflow", "existing", "recorded", "flags", "found"}
READ_ATTRIBUTES = STATE_ATTRIBUTES - {state_items.Task.TASK_ID, state_items.Common.WORKFLOW_ID}


def _strings(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """String constants, f-strings' literal parts included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def _docstrings(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                lines.add(body[0].value.lineno)
    return lines


def _named_positions(tree: ast.AST) -> set[int]:
    """ids of string nodes that name an attribute by position: item keys, ``{"#x": name}`` values,
    ``Attr(name)`` / ``Key(name)`` arguments, ``item.get(name)`` / ``item[name]``."""
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                ids.add(id(key))
                if isinstance(key, ast.Constant) and str(key.value).startswith("#"):
                    ids.add(id(value))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("Attr", "Key"):
            ids.update(id(arg) for arg in node.args)
        elif isinstance(node, ast.Call | ast.Subscript) and _item_read(node):
            ids.add(id(_item_read(node)))
    return ids


def _item_read(node: ast.AST) -> ast.AST | None:
    """The key of ``item.get(key)`` / ``item[key]`` when ``item`` is a variable holding an item."""
    key, holder = None, None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
        key, holder = (node.args[0] if node.args else None), node.func.value
    elif isinstance(node, ast.Subscript):
        key, holder = node.slice, node.value
    if isinstance(holder, ast.BoolOp):  # (meta or {}).get(...)
        holder = holder.values[0]
    return key if isinstance(holder, ast.Name) and holder.id in ITEM_VARIABLES else None


def literal_attribute_names(source: str) -> list[str]:
    """Attribute names an adapter spells itself: a string in an attribute's place, or an expression naming one."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    positions = _named_positions(tree)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or node.lineno in docs:
            continue
        line, text = node.lineno, node.value
        if text in STATE_ATTRIBUTES and id(node) in positions:
            found.append(f"line {line}: {text!r}")
        elif _EXPRESSION.search(text):
            named = sorted(set(_WORD.findall(text)) & STATE_ATTRIBUTES)
            if named:
                found.append(f"line {line}: {', '.join(named)} in {text!r}")
    return found


def read_attribute_names(source: str) -> list[str]:
    """``item.get("<attribute>")`` and ``item["<attribute>"]`` with a literal state attribute name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        key = _item_read(node)
        if isinstance(key, ast.Constant) and key.value in READ_ATTRIBUTES:
            found.append(f"line {node.lineno}: {key.value!r}")
    return found


def test_the_scans_find_a_spelled_attribute() -> None:
    assert literal_attribute_names('x = "SET remaining_deps = :r"\ny = {"#st": "state"}\n') == [
        "line 1: remaining_deps in 'SET remaining_deps = :r'",
        "line 2: 'state'",
    ]
    assert literal_attribute_names('raise ValueError(f"task {t} has no state item")\n') == []
    assert literal_attribute_names('x = "SET #s = :running"\n') == []  # placeholders are not names
    assert read_attribute_names('a = item.get("ready_count", 0)\nb = item["task_token"]\n') == [
        "line 1: 'ready_count'",
        "line 2: 'task_token'",
    ]


@pytest.mark.parametrize("module", ADAPTERS)
def test_adapters_spell_no_attribute_name(module: str) -> None:
    found = literal_attribute_names((PACKAGE / module).read_text(encoding="utf-8"))
    assert not found, f"{module} spells state-table attribute names; use stepspot.state_items: {found}"


@pytest.mark.parametrize("module", READERS)
def test_readers_read_through_the_constants(module: str) -> None:
    found = read_attribute_names((PACKAGE / module).read_text(encoding="utf-8"))
    assert not found, f"{module} reads state-table attributes by literal name; use stepspot.state_items: {found}"


def test_the_local_engine_reads_task_states_through_the_adapter() -> None:
    source = (PACKAGE / "local/engine.py").read_text(encoding="utf-8")
    assert "TASK_SK_PREFIX" not in source and ".query(" not in source


def test_every_declared_attribute_has_a_writer_and_every_writer_a_declared_attribute() -> None:
    for kind, names, created in (
        (Kind.TASK, ALL_TASK, state_items.CREATED_TASK),
        (Kind.WORKFLOW, ALL_WORKFLOW, state_items.CREATED_WORKFLOW),
    ):
        assert set(WRITERS[kind]) <= names, f"{kind.value}: undeclared {set(WRITERS[kind]) - names}"
        assert created <= names | {state_items.UPDATED_AT}
        assert names - set(WRITERS[kind]) - created == set(), f"{kind.value}: attributes nobody writes"


def test_domain_states_are_the_scheduler_enums() -> None:
    assert WorkflowStatus.PARSED == "PARSED" and TaskState.READY == "READY"
    sources = [p for p in PACKAGE.rglob("*.py") if p.name not in ("scheduler.py", "state_items.py")]
    spelled = [
        f"{p.relative_to(PACKAGE)}:{line}"
        for p in sources
        for line, text in _strings(ast.parse(p.read_text(encoding="utf-8")))
        if text in ("PARSED", "READY")
    ]
    assert not spelled, f"task/workflow states spelled outside stepspot.scheduler: {spelled}"


def test_checkpoint_sequence_digits_are_defined_once() -> None:
    defined = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if re.search(r"^\w*(SEQ|SEQUENCE)\w*_DIGITS\s*=", p.read_text(encoding="utf-8"), re.MULTILINE)
    ]
    assert defined == ["checkpointing/model.py"]


def test_transient_error_names_are_defined_once() -> None:
    holders = sorted(
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if '"Lambda.ServiceException"' in p.read_text(encoding="utf-8")
        or '"Batch.ServerException"' in p.read_text(encoding="utf-8")
    )
    assert holders == ["transient_errors.py"]


def test_typed_views_read_stored_items() -> None:
    task = TaskItem.from_item(
        {"pk": "WF#w", "sk": "TASK#t", "state": "READY", "attempts": Decimal(2), "failures_app_error": Decimal(1)}
    )
    assert (task.task_id, task.state, task.attempts, task.interruptions) == ("t", TaskState.READY, 2, 0)
    assert task.failures_of("app_error") == 1 and isinstance(task.raw["attempts"], int)
    meta = WorkflowItem.from_item({"pk": "WF#w", "sk": "META", "resubmission": Decimal(1), "redrives": Decimal(2)})
    assert (meta.status, meta.run_tag, meta.failure_mode) == (WorkflowStatus.PARSED, "1.2", "fail")
    assert JobIndexItem.from_item({"workflow_id": "w"}) is None
    assert JobIndexItem.from_item({"workflow_id": "w", "task_id": "t"}) == JobIndexItem("w", "t")
