"""The documented maximum workflow size is refused at validation, with the limit, the number and the fix."""

from __future__ import annotations

import json

import pytest

from stepspot.cli import main
from stepspot.errors import WorkflowValidationError
from stepspot.workflow import parse_workflow
from stepspot.workflow_limits import MAX_WORKFLOW_TASKS, too_many_tasks

SENTENCE = (
    "the workflow has 100,001 tasks, more than the 100,000 stepspot supports: split it into workflows of at most "
    "100,000 tasks each"
)


def _document(n):
    return {"name": "big", "tasks": [{"id": f"t{i}", "container_image": "i", "command": ["c"]} for i in range(n)]}


def test_the_limit_is_inclusive():
    assert MAX_WORKFLOW_TASKS == 100_000
    assert too_many_tasks(MAX_WORKFLOW_TASKS) is None
    assert too_many_tasks(MAX_WORKFLOW_TASKS + 1) == SENTENCE


def test_a_definition_over_the_limit_is_refused_in_one_sentence():
    with pytest.raises(WorkflowValidationError) as info:
        parse_workflow(_document(MAX_WORKFLOW_TASKS + 1))
    assert [str(p) for p in info.value.problems] == [f"$.tasks: {SENTENCE}"]


def test_stepspot_validate_refuses_it_with_exit_2(tmp_path, capsys):
    path = tmp_path / "big.json"
    path.write_text(json.dumps(_document(MAX_WORKFLOW_TASKS + 1)))

    assert main(["validate", str(path)]) == 2

    err = capsys.readouterr().err
    assert "100,001 tasks, more than the 100,000 stepspot supports" in err and "Traceback" not in err
