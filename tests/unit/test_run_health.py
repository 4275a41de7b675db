"""Checkpoint health rules (stepspot.run_health) and the runner's reporter, without AWS."""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

from stepspot import agent
from stepspot.agent.checkpoints import AUTO_FIRST_CHECKPOINT_SECONDS, Checkpointer
from stepspot.agent.health import RunReporter, report_checkpoint_empty
from stepspot.checkpointing.model import young_daly_interval
from stepspot.run_health import (
    CHECKPOINT_EMPTY_MESSAGE,
    EXPOSURE_FLUSH_SECONDS,
    MIN_EXPOSURE_SECONDS,
    MIN_OBSERVED_MTBI_SECONDS,
    checkpoint_empty_due,
    lost_work_seconds,
    observed_mtbi,
    reclaim_lost_work,
    restore_seconds,
    run_sk,
    seconds_list,
    task_health,
)


def settings(monkeypatch: pytest.MonkeyPatch, *argv: str, **env: str) -> agent.AgentSettings:
    for name in list(os.environ):
        if name.startswith("STEPSPOT_") or name == "AWS_BATCH_JOB_ID":
            monkeypatch.delenv(name)
    base = {
        "STEPSPOT_WORKFLOW_ID": "wf",
        "STEPSPOT_TASK_ID": "t",
        "STEPSPOT_BUCKET": "b",
        "STEPSPOT_CHECKPOINT_TABLE": "c",
        "STEPSPOT_CHECKPOINT_DIR": "/tmp/ckpt",
    }
    for name, value in {**base, **env}.items():
        monkeypatch.setenv(name, value)
    return agent.settings_from(agent.build_parser().parse_args(["run", *argv, "--", "true"]))


def test_empty_directory_is_due_after_two_intervals_only_when_nothing_was_saved() -> None:
    assert not checkpoint_empty_due(100.0, 119.9, 10.0, saved_anything=False)
    assert checkpoint_empty_due(100.0, 120.0, 10.0, saved_anything=False)
    assert not checkpoint_empty_due(100.0, 500.0, 10.0, saved_anything=True)
    assert not checkpoint_empty_due(100.0, 1e9, math.inf, saved_anything=False)  # checkpoints off


def test_lost_work_runs_from_the_last_complete_checkpoint_or_the_program_start() -> None:
    assert lost_work_seconds(100.0, None, 160.0) == 60.0  # nothing saved: everything since the start
    assert lost_work_seconds(100.0, 150.0, 160.0) == 10.0
    assert lost_work_seconds(100.0, 90.0, 160.0) == 60.0  # a save of an earlier attempt does not count
    assert lost_work_seconds(100.0, 170.0, 160.0) == 0.0  # clocks: never negative
    run = {"program_started_epoch": 100, "last_saved_epoch": 150.5}
    assert reclaim_lost_work(run, 160.0) == 9.5
    assert reclaim_lost_work({}, 160.0) is None  # the program never started
    # The program stopped on the notice at 152: the runner's wait for the host is not lost work
    assert reclaim_lost_work({**run, "program_exited_epoch": 152.0}, 160.0) == 1.5


def test_restore_seconds_only_for_an_attempt_that_restored() -> None:
    assert restore_seconds({"restored_sequence": 3, "restore_seconds": 1.23456}) == 1.235
    assert restore_seconds({"restore_seconds": 1.0}) is None


def test_observed_mtbi_uses_exposure_over_notices_with_the_fixed_value_as_fallback() -> None:
    fixed = 6 * 3600.0
    # Too little exposure: one early notice must not set the MTBI
    assert observed_mtbi(MIN_EXPOSURE_SECONDS - 1, 5, fixed) == (fixed, "fixed")
    # Enough exposure: exposure / notices
    assert observed_mtbi(10 * 3600.0, 5, fixed) == (2 * 3600.0, "observed")
    # Never below the floor (a burst of notices would mean checkpointing every few seconds)
    assert observed_mtbi(3600.0, 1000, fixed) == (MIN_OBSERVED_MTBI_SECONDS, "observed")
    # None seen yet: the exposure is a lower bound of the MTBI, the fixed value if larger
    assert observed_mtbi(2 * 3600.0, 0, fixed)[0] == fixed
    assert observed_mtbi(100 * 3600.0, 0, fixed)[0] == 100 * 3600.0


def test_run_sort_key_names_the_parent_job_of_a_multi_node_attempt() -> None:
    assert run_sk("abc") == "RUN#abc"
    assert run_sk("abc#0") == "RUN#abc"


def test_task_health_flags_a_live_empty_run_and_lists_lost_work() -> None:
    task = {"task_id": "t", "lost_work_seconds": [12.5], "restore_seconds": [0.4]}
    health = task_health(task, [{"checkpoint_empty": True}])
    assert health == {
        "checkpoint_empty": True,
        "lost_work_seconds": [12.5],
        "restore_seconds": [0.4],
        "warning": CHECKPOINT_EMPTY_MESSAGE,
    }
    assert task_health({"task_id": "t"}, [])["warning"] is None
    assert seconds_list([12.5, 3]) == "12.5, 3.0"
    assert seconds_list([]) == "-"


def test_checkpoint_empty_line_is_one_json_object_for_the_metric_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    report_checkpoint_empty(settings(monkeypatch, STEPSPOT_ENVIRONMENT="prod"), 12.34, out)
    assert json.loads(out.getvalue()) == {
        "stepspot_event": "checkpoint_empty",
        "environment": "prod",
        "workflow_id": "wf",
        "task_id": "t",
        "waited_seconds": 12.3,
    }


class FakeTable:
    def __init__(self, stats: tuple[float, int] = (0.0, 0), fail: bool = False) -> None:
        self.stats = stats
        self.fail = fail
        self.runs: dict[str, dict[str, Any]] = {}
        self.added: list[tuple[str, str, float, int]] = []

    def interruption_stats(self, instance_type: str, zone: str) -> tuple[float, int]:
        if self.fail:
            raise RuntimeError("throttled")
        return self.stats

    def update_run(self, workflow_id: str, task_id: str, job_id: str, fields: dict[str, Any]) -> None:
        if self.fail:
            raise RuntimeError("throttled")
        self.runs.setdefault(job_id, {}).update(fields)

    def add_interruption_exposure(self, instance_type: str, zone: str, seconds: float, notices: int) -> None:
        self.added.append((instance_type, zone, seconds, notices))


def test_reporter_picks_the_observed_mtbi_unless_one_is_set_or_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    placement = ("c7i.xlarge", "us-east-1a")
    table = FakeTable((20 * 3600.0, 4))
    mtbi, source = RunReporter(settings(monkeypatch), table, "job-1", placement).mtbi()
    assert mtbi == 5 * 3600.0
    assert source == "observed: 4 notices in 20.0 h on c7i.xlarge in us-east-1a"
    # Set explicitly: the user's value wins
    explicit = settings(monkeypatch, STEPSPOT_CHECKPOINT_MTBI="999")
    assert RunReporter(explicit, table, "job-1", placement).mtbi() == (999.0, "set")
    # Off EC2 (no placement) or the table unreadable: the fixed default
    assert RunReporter(settings(monkeypatch), table, "job-1", None).mtbi() == (6 * 3600.0, "fixed")
    assert RunReporter(settings(monkeypatch), FakeTable(fail=True), "job-1", placement).mtbi() == (
        6 * 3600.0,
        "fixed",
    )


def test_reporter_records_the_run_and_exposure_and_never_raises(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    table = FakeTable()
    reporter = RunReporter(settings(monkeypatch), table, "job-1", ("m7i.large", "eu-west-1b"))
    reporter.program_started(1000.0, 0.5, 3)
    reporter.add_exposure(1030.0)  # under EXPOSURE_FLUSH_SECONDS: kept for later
    reporter.add_exposure(1000.0 + EXPOSURE_FLUSH_SECONDS)
    reporter.add_exposure(1010.0 + EXPOSURE_FLUSH_SECONDS, notice=True)
    reporter.add_exposure(1012.0 + EXPOSURE_FLUSH_SECONDS, final=True)
    assert table.runs["job-1"] == {
        "program_started_epoch": 1000.0,
        "restore_seconds": 0.5,
        "restored_sequence": 3,
        "instance_type": "m7i.large",
        "availability_zone": "eu-west-1b",
    }
    assert table.added == [
        ("m7i.large", "eu-west-1b", EXPOSURE_FLUSH_SECONDS, 0),
        ("m7i.large", "eu-west-1b", 10.0, 1),
        ("m7i.large", "eu-west-1b", 2.0, 0),
    ]
    # A failing table: one warning, the task goes on
    broken = RunReporter(settings(monkeypatch), FakeTable(fail=True), "job-1", None)
    broken.update(last_saved_epoch=1.0)
    broken.update(last_saved_epoch=2.0)
    assert sum("could not record the run record" in r.getMessage() for r in caplog.records) == 1


def test_interval_choice_is_logged_with_the_mtbi_behind_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level("INFO", logger="stepspot.agent")
    checkpointer = Checkpointer(settings(monkeypatch), store=None)  # type: ignore[arg-type]
    assert checkpointer.next_interval() == AUTO_FIRST_CHECKPOINT_SECONDS
    checkpointer.cost, checkpointer.mtbi, checkpointer.mtbi_source = 2.0, 7200.0, "observed: 2 notices in 4.0 h"
    assert checkpointer.next_interval() == young_daly_interval(2.0, 7200.0)
    assert checkpointer.next_interval() == young_daly_interval(2.0, 7200.0)  # unchanged: not logged again
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("checkpoint interval")]
    assert lines == [
        "checkpoint interval 60.0 s (auto: first checkpoint, to measure its cost)",
        "checkpoint interval 169.7 s (auto: Young/Daly sqrt(2 x 2.00 s checkpoint x 7200 s MTBI), "
        "MTBI observed: 2 notices in 4.0 h)",
    ]


def test_local_time_scale_compresses_the_auto_interval_like_every_other_timer(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Given local mode's time scale (simulated seconds per real second; the default 1 on AWS)
    caplog.set_level("INFO", logger="stepspot.agent")
    checkpointer = Checkpointer(settings(monkeypatch, STEPSPOT_TIME_SCALE="300"), store=None)  # type: ignore[arg-type]
    # Then the first checkpoint comes after 60 simulated seconds, 0.2 s real
    assert checkpointer.next_interval() == pytest.approx(AUTO_FIRST_CHECKPOINT_SECONDS / 300)
    # And Young/Daly runs on the compressed MTBI and bounds: the real cost C, M = 21600 s / 300 = 72 s
    checkpointer.cost = 0.1
    assert checkpointer.next_interval() == pytest.approx(young_daly_interval(0.1, 72.0, 5.0 / 300, 72.0))
    assert "time scale 300" in caplog.records[-1].getMessage()
    # And the exposure it reports for the observed MTBI is simulated time too
    calls: list[tuple[Any, ...]] = []

    class Table:
        def add_interruption_exposure(self, *args: Any) -> None:
            calls.append(args)

        def update_run(self, *args: Any) -> None:
            pass

    reporter = RunReporter(checkpointer.settings, Table(), "job-1", ("c7i.large", "eu-west-1a"))
    reporter.program_started(100.0, None, None)
    reporter.add_exposure(102.0, final=True)
    assert calls == [("c7i.large", "eu-west-1a", 600.0, 0)]


def test_a_time_scale_that_is_not_a_positive_number_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(agent.AgentExit, match="STEPSPOT_TIME_SCALE"):
        settings(monkeypatch, STEPSPOT_TIME_SCALE="0")
