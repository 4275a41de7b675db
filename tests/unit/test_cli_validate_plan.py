"""`stepspot validate` and `stepspot plan`: exit codes and outputs."""

from __future__ import annotations

import json
from pathlib import Path

from stepspot.cli import main

SEED = Path(__file__).with_name("seed_sample_workflow.json")


def test_validate_valid_file_exits_0_and_shows_warnings(capsys):
    assert main(["validate", "--env", "prod", str(SEED)]) == 0

    out, err = capsys.readouterr()
    assert "valid" in out and "Molecular Dynamics Simulation" in out
    assert "cannot use Spot" in err


def test_validate_invalid_file_exits_2_without_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"tasks": [{"id": "a", "container_image": "i", "command": ["x"], "depends_on": ["ghost"]}]}')

    assert main(["validate", str(bad)]) == 2

    err = capsys.readouterr().err
    assert "unknown dependency 'ghost'" in err and "Traceback" not in err


def test_validate_json_output_lists_problems(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks:\n  - id: a\n    container_image: i\n    command: [x]\n    vcpus: many\n")

    assert main(["validate", "--output", "json", str(bad)]) == 2

    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    assert report["problems"][0]["location"] == "$.tasks[0].vcpus (task 'a')"


def test_missing_file_exits_2(capsys):
    assert main(["validate", "/no/such/workflow.json"]) == 2
    assert "file not found" in capsys.readouterr().err


def test_plan_table_shows_levels_critical_path_and_costs(capsys):
    assert main(["plan", "--env", "prod", str(SEED)]) == 0

    out = capsys.readouterr().out
    assert "critical path (4 tasks" in out and "data-preprocessing -> equilibration" in out
    assert "estimated duration: 4h 00m" in out
    assert "with Spot vs" in out and "On-Demand (MNP)" in out


def test_plan_json_is_the_stored_plan(capsys):
    assert main(["plan", "--env", "prod", "--output", "json", "--workflow-id", "md-7", str(SEED)]) == 0

    plan = json.loads(capsys.readouterr().out)
    assert plan["workflow_id"] == "md-7" and plan["order"][0] == "data-preprocessing"
    assert plan["tasks"]["production-run"]["use_spot"] is False


def test_plan_mermaid_draws_edges_and_critical_path(capsys):
    assert main(["plan", "--env", "prod", "--output", "mermaid", str(SEED)]) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0] == "flowchart TD"
    assert "    n0 --> n1" in out and "    class n0,n1,n2,n3 critical" in out


def test_the_stepspot_process_ends_after_flushing_what_in_process_calls_print(tmp_path, capsys):
    # Run as a process, validate and plan end it at once (output.end_process) instead of freeing the
    # workflow object by object: the output and exit code must be those of a call from Python.
    import subprocess
    import sys

    for argv in (
        ["validate", str(SEED)],
        ["plan", "--env", "prod", str(SEED)],
        ["plan", "--output", "json", str(SEED)],
    ):
        code = main(argv)
        out, err = capsys.readouterr()
        done = subprocess.run([sys.executable, "-m", "stepspot.cli", *argv], capture_output=True, text=True)

        assert (done.returncode, done.stdout, done.stderr) == (code, out, err)
