"""Every metric has one shape (name, unit, dimension sets in stepspot.metrics) and one emitter."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from stepspot import emf
from stepspot.metrics import METRICS, MetricName

HANDLERS = Path(__file__).resolve().parents[2] / "functions" / "stepspot" / "handlers"
REGISTERED = {m.name.value: m for m in METRICS}


def test_emit_refuses_a_metric_that_is_not_registered():
    with pytest.raises(ValueError, match=r"Metric 'TasksStarted' is not registered in stepspot\.metrics"):
        emf.emit("Stepspot", {"environment": "dev"}, [("TasksStarted", "Count", 1.0)])


def test_emit_refuses_an_undeclared_dimension_set():
    # Given a service dimension on top of the environment (what Powertools' Metrics() adds by default)
    with pytest.raises(
        ValueError, match=r"declared with dimension sets \[\('environment',\)\], not \['environment', 'service'\]"
    ):
        emf.emit("Stepspot", {"environment": "dev", "service": "x"}, [("CheckpointsSaved", "Count", 1.0)])


def test_emit_refuses_another_unit():
    with pytest.raises(ValueError, match="declared with unit 'Bytes', not 'Count'"):
        emf.emit("Stepspot", {"environment": "dev"}, [("CheckpointBytesUploaded", "Count", 1.0)])


def test_batch_takes_units_from_the_registry(capsys: pytest.CaptureFixture[str]):
    batch = emf.MetricBatch("Stepspot", {"environment": "dev"})
    batch.add(MetricName.CHECKPOINT_BYTES_UPLOADED, 2048)
    batch.flush()
    batch.flush()  # a second flush prints nothing
    lines = [line for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert len(lines) == 1
    assert '"Unit":"Bytes"' in lines[0].replace(" ", "") and '"service"' not in lines[0]


@pytest.mark.parametrize("module", sorted(p.stem for p in HANDLERS.glob("*.py") if p.stem != "__init__"))
def test_handlers_emit_only_their_own_metrics_through_stepspot_emf(module: str):
    source = (HANDLERS / f"{module}.py").read_text()
    # Powertools' Metrics() adds a `service` dimension and a process-wide registry: use stepspot.emf.
    assert not re.search(r"\bMetrics\(", source), f"{module} uses Powertools Metrics(); emit with stepspot.emf"
    named = set(re.findall(r"MetricName\.(\w+)", source))
    used = {MetricName[n].value for n in named} | (set(re.findall(r"[\"'](\w+)[\"']", source)) & set(REGISTERED))
    foreign = {name: REGISTERED[name].emitter for name in used if REGISTERED[name].emitter != module}
    assert not foreign, f"{module} emits metrics another part owns (metric: owner): {foreign}"


def _printed(capsys: pytest.CaptureFixture[str]) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]


def test_counted_reads_each_emission_once_whatever_its_breakdowns(capsys: pytest.CaptureFixture[str]):
    # Given one task success emitted as the workflow monitor does: the total, then again per queue
    emf.emit("Stepspot", {"environment": "dev"}, [("TasksSucceeded", "Count", 1.0), ("CheckpointsSaved", "Count", 3.0)])
    emf.emit("Stepspot", {"environment": "dev", "job_queue": "spot"}, [("TasksSucceeded", "Count", 1.0)])
    # and one Spot notice as the interruption handler does: the total, then per instance type and zone
    emf.emit("Stepspot", {"environment": "dev"}, [("SpotInterruptions", "Count", 1.0)])
    breakdown = {"environment": "dev", "instance_type": "c5.large", "availability_zone": "us-east-1a"}
    emf.emit("Stepspot", breakdown, [("SpotInterruptions", "Count", 1.0)])
    documents = _printed(capsys)
    assert len(documents) == 4
    # When the printed documents are read back
    totals: dict[str, float] = {}
    for document in documents:
        for name, value in emf.counted(document).items():
            totals[name] = totals.get(name, 0.0) + value
    # Then each emission counts once
    assert totals == {"TasksSucceeded": 1.0, "CheckpointsSaved": 3.0, "SpotInterruptions": 1.0}


def test_counted_ignores_what_stepspot_does_not_declare():
    document = {"_aws": {"CloudWatchMetrics": [{"Dimensions": [["environment"]], "Metrics": [{"Name": "Other"}]}]}}
    assert emf.counted({**document, "Other": 5, "environment": "dev"}) == {}
    assert emf.counted({"message": "a log line"}) == {}
