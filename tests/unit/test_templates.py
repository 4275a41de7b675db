"""Workflow templates: every template renders a valid workflow; parameters are checked with sentences."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from stepspot.cli import main
from stepspot.errors import TemplateParameterError
from stepspot.workflow import load_workflow_file, parse_workflow
from stepspot.workflow_templates import discover_templates, parse_assignments

ROOT = Path(__file__).resolve().parents[2] / "templates" / "workflows"
TEMPLATES = discover_templates(ROOT)


def test_the_three_patterns_are_shipped() -> None:
    assert set(TEMPLATES) == {"molecular-dynamics", "parameter-sweep", "ml-training"}
    for template in TEMPLATES.values():
        assert template.description
        assert all(p.description for p in template.parameters.values())


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_template_renders_a_valid_workflow_with_its_defaults(name: str) -> None:
    text, loaded = TEMPLATES[name].render({})
    assert loaded.workflow.tasks
    assert [w for w in loaded.warnings if w.severity == "error"] == []
    parse_workflow(text, fmt="yaml")  # the text itself, not only the object, validates


def test_parameter_sweep_has_n_members_evenly_spaced_and_an_aggregate() -> None:
    _, loaded = TEMPLATES["parameter-sweep"].render({"members": "5", "start": "1", "stop": "2", "parameter": "TEMP"})
    members = [t for t in loaded.workflow.tasks if t.id.startswith("member-")]
    assert [t.environment["TEMP"] for t in members] == ["1.0", "1.25", "1.5", "1.75", "2.0"]
    aggregate = next(t for t in loaded.workflow.tasks if t.id == "aggregate")
    assert aggregate.all_dependencies == [t.id for t in members]  # through its inputs


def test_parameter_sweep_command_is_split_like_a_shell_and_cannot_break_the_yaml() -> None:
    _, loaded = TEMPLATES["parameter-sweep"].render(
        {"members": "1", "aggregate": "false", "command": "run --label 'a: b' \"x\" # y", "name": "n: {x}"}
    )
    member = loaded.workflow.tasks[1]
    assert member.command == ["run", "--label", "a: b", "x", "#", "y"]
    assert loaded.workflow.name == "n: {x}"
    assert [t.id for t in loaded.workflow.tasks] == ["prepare", "member-0000"]


def test_molecular_dynamics_multi_node_equilibration_is_on_demand() -> None:
    _, loaded = TEMPLATES["molecular-dynamics"].render({"replicas": "3", "equilibration_nodes": "4"})
    tasks = {t.id: t for t in loaded.workflow.tasks}
    assert tasks["equilibrate"].nodes == 4 and tasks["equilibrate"].spot_enabled is False
    assert tasks["equilibrate"].command[2].startswith("exec mpirun gmx_mpi mdrun")
    assert tasks["analysis"].all_dependencies == ["production-00", "production-01", "production-02"]
    assert all(tasks[f"production-0{i}"].checkpoint_enabled for i in range(3))
    # gmx's checkpoint file lives in the directory the agent saves and restores
    cpt = '-cpi "$STEPSPOT_CHECKPOINT_DIR/state.cpt" -cpo "$STEPSPOT_CHECKPOINT_DIR/state.cpt"'
    assert all(cpt in tasks[t].command[2] for t in ("equilibrate", "production-00"))
    assert [i.spec().to_json() for i in tasks["production-01"].inputs] == [
        {"from": "preprocess", "path": "prepared/protein-prod.tpr", "to": "protein-prod-01.tpr"},
        {"from": "equilibrate", "path": "protein-eq.gro", "to": "protein-eq.gro"},
    ]


def test_ml_training_checkpoints_every_epoch_on_spot_gpus() -> None:
    _, loaded = TEMPLATES["ml-training"].render({"epochs": "12", "minutes_per_epoch": "5", "export": "no"})
    train = next(t for t in loaded.workflow.tasks if t.id == "train")
    assert train.checkpoint_enabled and train.spot_enabled and train.gpus == 1
    assert train.environment["EPOCHS"] == "12"
    assert train.estimated_runtime == 12 * 5 * 60
    assert "export" not in {t.id for t in loaded.workflow.tasks}


@pytest.mark.parametrize(
    ("assignments", "message"),
    [
        ({"members": "ten"}, "members expects a whole number, got 'ten'"),
        ({"members": "0"}, "members must be at least 1, got 0"),
        ({"members": "1001"}, "members must be at most 1000, got 1001"),
        ({"aggregate": "maybe"}, "aggregate expects true or false, got 'maybe'"),
        ({"parameter": "1BAD"}, "parameter must match"),
        ({"image": " "}, "image must not be empty"),
        ({"colour": "red"}, "unknown parameter 'colour' (template 'parameter-sweep' takes: name, image"),
    ],
)
def test_bad_parameters_are_named_with_the_fix(assignments: dict[str, str], message: str) -> None:
    with pytest.raises(TemplateParameterError) as raised:
        TEMPLATES["parameter-sweep"].render(assignments)
    assert message in raised.value.message


def test_choice_parameters_list_their_choices() -> None:
    with pytest.raises(TemplateParameterError, match=r"checkpoint_interval must be one of auto, 300, 600"):
        TEMPLATES["ml-training"].render({"checkpoint_interval": "42"})


def test_set_needs_key_equals_value() -> None:
    assert parse_assignments(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(TemplateParameterError, match="--set 'members' is not key=value"):
        parse_assignments(["members"])


# ------------------------------------------------------------------ the CLI commands


def test_stepspot_templates_lists_templates_and_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["templates", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["parameter-sweep"]["parameters"]["members"] == {
        "type": "int",
        "default": 10,
        "description": "Number of sweep members",
        "range": "1-1000",
    }
    assert main(["templates"]) == 0
    out = capsys.readouterr().out
    assert "molecular-dynamics" in out and "equilibration_nodes" in out


def test_stepspot_new_writes_yaml_or_json_that_validates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "sweep.json"
    assert main(["new", "parameter-sweep", "--set", "members=3", "-o", str(target)]) == 0
    document = json.loads(target.read_text())
    assert len(document["tasks"]) == 5
    assert "wrote" in capsys.readouterr().err
    yaml_target = tmp_path / "md.yaml"
    assert main(["new", "molecular-dynamics", "-o", str(yaml_target)]) == 0
    assert yaml.safe_load(yaml_target.read_text())["name"] == "Molecular dynamics: protein"
    assert load_workflow_file(yaml_target).workflow.tasks


def test_stepspot_new_refuses_to_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "w.yaml"
    target.write_text("keep me")
    assert main(["new", "ml-training", "-o", str(target)]) == 2
    assert "already exists: pass --force" in capsys.readouterr().err
    assert target.read_text() == "keep me"
    assert main(["new", "ml-training", "-o", str(target), "--force"]) == 0
    assert target.read_text() != "keep me"


def test_stepspot_new_errors_exit_2_and_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "w.yaml"
    assert main(["new", "no-such-template", "-o", str(target)]) == 2
    assert "unknown template 'no-such-template': choose one of ml-training" in capsys.readouterr().err
    assert main(["new", "parameter-sweep", "--set", "members=-1", "-o", str(target)]) == 2
    assert "members must be at least 1, got -1" in capsys.readouterr().err
    assert not target.exists()


def test_stepspot_new_prints_to_stdout_without_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new", "ml-training", "--set", "epochs=3"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["tasks"][1]["environment"]["EPOCHS"] == "3"
