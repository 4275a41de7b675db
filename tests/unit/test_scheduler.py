"""Pure helpers of the dataflow scheduler (its DynamoDB behaviour is in tests/integration)."""

from __future__ import annotations

from dataclasses import dataclass, field

from stepspot.scheduler import MAX_EXECUTION_NAME, descendants, execution_name


@dataclass
class _Task:
    dependents: list[str] = field(default_factory=list)


def test_execution_names_are_deterministic_short_and_distinct():
    long_workflow, long_task = "w" * 80, "t" * 80
    name = execution_name(long_workflow, long_task)
    assert len(name) <= MAX_EXECUTION_NAME
    assert name == execution_name(long_workflow, long_task)
    assert name != execution_name(long_workflow, long_task, run_tag="0.1")
    assert execution_name("wf-a", "prep") != execution_name("wf-b", "prep")
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def test_descendants_are_every_task_downstream_once():
    tasks = {"a": _Task(["b", "c"]), "b": _Task(["d"]), "c": _Task(["d"]), "d": _Task([]), "e": _Task([])}
    assert descendants(lambda t: tasks[t].dependents, "a") == ["b", "c", "d"]
    assert descendants(lambda t: tasks[t].dependents, "e") == []
