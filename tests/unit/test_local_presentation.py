"""What the end of a local run says about its cost and its critical path: true for a run that did not
finish too (interrupted by Ctrl-C, or failed), not only for a complete one."""

from __future__ import annotations

from stepspot.cli.local import _critical_path_text, _saving_text
from stepspot.local.summary import saving_explanation


def test_a_run_that_went_as_planned_says_so() -> None:
    assert saving_explanation(3.0, 3.0, 0.0, 0.0, 3600, 3600) == (
        "The run went as planned: no work lost, runtimes close to the estimates."
    )


def test_an_interrupted_run_does_not_claim_it_went_as_planned() -> None:
    # Ctrl-C before any task ran: nothing measured, nothing lost; the run did not go as planned
    text = saving_explanation(3.35, 0.0, 0.0, 0.0, 0, 0, status="INTERRUPTED", finished=0, total=5)
    assert "went as planned" not in text
    assert text == "The run was interrupted with 0 of 5 tasks done: the measured cost covers only what ran."


def test_a_failed_run_names_its_state_and_still_gives_the_reasons() -> None:
    text = saving_explanation(0.05, 0.0, 0.02, 0.0, 36, 3600, status="FAILED", finished=1, total=2)
    assert text.startswith("The run ended FAILED with 1 of 2 tasks done: the measured cost covers only what ran; ")
    assert "the tasks ran 99 % shorter than estimated" in text
    assert "reclaimed or failed attempts cost $0.02 of work done again" in text


def test_spot_dearer_than_on_demand_is_said_without_inventing_a_cause() -> None:
    assert _saving_text(1.25, 12.5) == "saved $1.25 (12.5 %)"
    # the cause is the "planned saving" row's sentence: capacity failures or fallbacks can do it too
    assert _saving_text(-0.25, -3.0) == "Spot cost $0.25 more"
    assert _saving_text(-0.001, 0.0) == "no difference"


def _cp(**fields: object) -> dict[str, object]:
    return {"tasks": ["a", "b"], "estimated_seconds": 7200.0, "measured_seconds": 1.0, **fields}


def test_the_critical_path_is_one_path_with_its_planned_and_measured_time() -> None:
    rows = [{"task_id": "a", "state": "SUCCEEDED"}, {"task_id": "b", "state": "SUCCEEDED"}]
    text = _critical_path_text(_cp(measured_scaled_seconds=9000.0), rows)
    assert text == "a -> b: planned 2.00 h, measured 2.50 h (1.00 s real)"


def test_a_critical_path_that_did_not_finish_has_no_measured_time() -> None:
    # "measured 0 min" would be a measurement of nothing: say which task did not finish
    rows = [{"task_id": "a", "state": "SUCCEEDED"}, {"task_id": "b", "state": "FAILED"}]
    text = _critical_path_text(_cp(measured_scaled_seconds=3600.0), rows)
    assert text == "a -> b: planned 2.00 h, not measured (b FAILED)"
    rows[1]["state"] = "RUNNING"  # after Ctrl-C its job was stopped
    assert _critical_path_text(_cp(measured_scaled_seconds=0.0), rows, interrupted=True).endswith("(b STOPPED)")


def test_local_start_up_scaled_into_hours_is_named_as_such() -> None:
    # 5 tasks estimated 9.5 h ran 19.9 h: 8 s real of runner start-up and staging x 7200 = 16 h of it
    text = saving_explanation(3.35, 3.66, 1.46, 0.0, 19.9 * 3600, 9.5 * 3600, startup_seconds=8.0, time_scale=7200)
    assert text == (
        "The difference comes from: the tasks ran 109 % longer than estimated, their programs alone 59 % "
        "shorter than estimated: the rest is this machine starting each attempt (task runner, data staging: "
        "8.0 s real x 7200, seconds on AWS); reclaimed or failed attempts cost $1.46 of work done again."
    )
    # seconds of start-up at a small time scale are not worth a word
    assert "starting each attempt" not in saving_explanation(1, 1, 0, 0, 7200, 3600, startup_seconds=1, time_scale=60)


def test_after_ctrl_c_the_task_table_shows_stopped_tasks_as_stopped() -> None:
    from rich.console import Console

    from stepspot.cli.local import _task_table

    rows = [
        {"task_id": t, "state": state, "attempts": 1, "interruptions": 0, "capacity": "SPOT", "runtime_seconds": 0}
        for t, state in (("prep", "SUCCEEDED"), ("run", "RUNNING"), ("last", "PENDING"))
    ]
    screen = Console(width=120, record=True)
    screen.print(_task_table(rows, interrupted=True))
    lines = {line.split()[0]: line.split()[1] for line in screen.export_text().splitlines()[1:] if line.strip()}
    assert lines == {"prep": "SUCCEEDED", "run": "STOPPED", "last": "PENDING"}  # its job was stopped
    screen = Console(width=120, record=True)
    screen.print(_task_table(rows))
    assert "RUNNING" in screen.export_text()  # a run that ended on its own keeps the recorded state
