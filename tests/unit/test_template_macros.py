"""Blocks the state machines repeat are Jinja macros in templates/_macros.j2, written once."""

from __future__ import annotations

from pathlib import Path

from stepspot.asl import placeholder_arns, render

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def test_the_batch_submit_retry_is_written_once_and_used_by_both_job_states():
    # Given the task template and the macros
    task = (TEMPLATES / "task.asl.json.j2").read_text()
    macros = (TEMPLATES / "_macros.j2").read_text()
    # Then the retry of a failed SubmitJob call is the macro's, not a copy per job state
    assert "batch_api_errors" not in task and macros.count("batch_api_errors") == 1
    # And both job states render it identically
    states = render(placeholder_arns())["task"]["States"]
    single, multi = states["RunJob"]["Retry"], states["RunMultiNodeJob"]["Retry"]
    assert single == multi and single[0]["ErrorEquals"][0].startswith("Batch.")
