"""`stepspot local`: user errors are one sentence and exit 2; a run prints its summary and writes JSON."""

from __future__ import annotations

import json

import pytest
from local_helpers import sleep_task

from stepspot.cli import main


def test_a_missing_file_is_one_sentence(tmp_path, capsys):
    code = main(["local", str(tmp_path / "nope.json")])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{tmp_path / 'nope.json'} does not exist; pass the path of a workflow definition" in err
    assert "Traceback" not in err


def test_an_unknown_task_id_in_a_flag_is_named(write_workflow, capsys):
    path = write_workflow([sleep_task("a")], "flags")
    code = main(["local", str(path), "--fail-task", "ghost", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--fail-task ghost: the workflow has no task 'ghost' (its tasks: a)" in err


def test_a_command_missing_on_this_machine_is_named_before_anything_runs(write_workflow, capsys):
    path = write_workflow([{"id": "md", "container_image": "x", "command": ["gromacs-not-here", "mdrun"]}], "cmd")
    code = main(["local", str(path), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "command not found on this machine for task 'md' ('gromacs-not-here')" in err


def test_every_task_whose_command_is_missing_is_listed(write_workflow, capsys):
    tasks = [
        {"id": "a", "container_image": "x", "command": ["gromacs-not-here"]},
        sleep_task("ok"),
        {"id": "b", "container_image": "x", "command": ["namd-not-here"], "depends_on": ["a"]},
    ]
    code = main(["local", str(write_workflow(tasks, "cmds")), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "for 2 tasks: 'a' ('gromacs-not-here'), 'b' ('namd-not-here')" in err


def test_an_invalid_rate_is_refused_by_the_parser(write_workflow, capsys):
    path = write_workflow([sleep_task("a")], "rate")
    try:
        main(["local", str(path), "--spot-interruptions", "2"])
    except SystemExit as exc:
        assert exc.code == 2
    assert "2 is outside 0..1" in capsys.readouterr().err


def test_a_run_prints_the_summary_and_writes_json(write_workflow, tmp_path, capsys):
    path = write_workflow([sleep_task("a"), sleep_task("b", depends_on=["a"])], "cli")
    out = tmp_path / "summary.json"
    report = tmp_path / "report.html"
    args = ["--summary-json", str(out), "--report", str(report), "--workdir", str(tmp_path / "w")]
    code = main(["local", str(path), "--no-progress", *args])
    printed = capsys.readouterr().out
    assert code == 0
    assert "SUCCEEDED" in printed and "state transitions" in printed
    # The cost ledger's line and the run report (issue 15: `stepspot local ... --report report.html`)
    assert "cost by instance (ledger)" in printed and f"report written to {report}" in printed
    page = report.read_text()
    assert "echarts" in page and "<script src" not in page and '"attempts":' in page
    summary = json.loads(out.read_text())
    for field in (
        "status",
        "tasks",
        "attempts",
        "interruptions",
        "fallbacks_to_on_demand",
        "checkpoints",
        "makespan_seconds",
        "critical_path",
        "transitions",
        "largest_state_payload_bytes",
        "estimated_cost",
        "cost",
        "ledger",
    ):
        assert field in summary
    assert summary["tasks"]["succeeded"] == 2
    assert len(summary["ledger"]) == summary["attempts"] == 2
    assert summary["cost"]["total_usd"] == pytest.approx(sum(e["cost_usd"] for e in summary["ledger"]), abs=1e-6)
    assert summary["cost"]["total_usd"] > 0


def test_a_report_path_that_is_a_directory_is_refused_before_the_run(write_workflow, tmp_path, capsys):
    path = write_workflow([sleep_task("a")], "badreport")
    code = main(["local", str(path), "--no-progress", "--report", str(tmp_path), "--workdir", str(tmp_path / "w")])
    assert code == 2
    assert "is a directory; give the report a file name" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()  # nothing ran
