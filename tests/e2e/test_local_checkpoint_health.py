"""Local mode, end to end: checkpoint health (issue 14): a checkpointed task that saves nothing is flagged,
and every Spot reclaim reports its lost work, bounded by one checkpoint interval plus the notice handling."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from local_helpers import PY, sleep_task

from stepspot.cli import main
from stepspot.local.faults import Faults
from stepspot.run_health import CHECKPOINT_EMPTY_MESSAGE

pytestmark = pytest.mark.slow

TIME_SCALE = 300.0
INTERVAL = 150  # simulated seconds: 0.5 s real at TIME_SCALE (local mode compresses the interval)

# Counts to 120 in 0.05 s steps, resuming from $STEPSPOT_CHECKPOINT_DIR/state; writes the state each step.
# With KEEP_GOING it ignores the notice signal (USR1 here) and runs on until the host goes.
COUNTER = """
import os, signal, sys, time
path = os.path.join(os.environ["STEPSPOT_CHECKPOINT_DIR"], "state")
step = int(open(path).read()) if os.path.exists(path) else 0
def stop(signum, frame):
    open(path, "w").write(str(step)); sys.exit(143)
if os.environ.get("KEEP_GOING"):
    signal.signal(signal.SIGUSR1, lambda *a: None)
else:
    signal.signal(signal.SIGTERM, stop)
while step < 120:
    time.sleep(0.05)
    step += 1
    open(path + ".tmp", "w").write(str(step)); os.replace(path + ".tmp", path)
"""


def _task(task_id: str, script: Path, **environment: str):
    # Grace and settle in proportion to the compressed notice (0.6 s here, as 60 s and 1 s are to Spot's 120 s)
    return {
        "id": task_id,
        "container_image": "python:3.12",
        "command": [PY, str(script)],
        "environment": {"STEPSPOT_CHECKPOINT_GRACE": "0.3", "STEPSPOT_CHECKPOINT_SETTLE": "0.1", **environment},
        "checkpoint_enabled": True,
        "checkpoint_interval": INTERVAL,
        "estimated_runtime": 1800,  # 6 s real: the reclaim comes 2-4 s in
    }


def test_a_checkpointed_task_that_saves_nothing_is_flagged(write_workflow, tmp_path, capsys):
    # Given one checkpointed task that writes nothing into its checkpoint directory, one that does not checkpoint
    tasks = [
        sleep_task("silent", 2.5, checkpoint_enabled=True, checkpoint_interval=INTERVAL),
        sleep_task("plain", 0.1),
    ]
    out = tmp_path / "summary.json"
    argv = ["local", str(write_workflow(tasks, "silent")), "--no-progress", "--time-scale", str(TIME_SCALE)]
    code = main([*argv, "--summary-json", str(out), "--workdir", str(tmp_path / "w")])
    printed = capsys.readouterr().out
    # Then the run succeeds, and the summary flags exactly the silent task
    assert code == 0, printed
    assert f"warning: silent: {CHECKPOINT_EMPTY_MESSAGE}" in printed
    summary = json.loads(out.read_text())
    assert summary["checkpoint_warnings"] == [f"silent: {CHECKPOINT_EMPTY_MESSAGE}"]
    rows = {row["task_id"]: row for row in summary["per_task"]}
    assert rows["silent"]["checkpoint_empty"] and not rows["plain"]["checkpoint_empty"]
    # And its runner printed the line the CheckpointsEmpty metric filter counts
    logs = [p.read_text() for p in Path(summary["run_dir"]).glob("tasks/*/attempt-*/output.log")]
    assert sum('"stepspot_event": "checkpoint_empty"' in log for log in logs) == 1


def test_an_auto_interval_task_that_saves_nothing_is_flagged_in_compressed_time(write_workflow, tmp_path, capsys):
    # Given a checkpointed task with the 'auto' interval (first checkpoint after 60 simulated seconds, 0.2 s
    # real at this time scale) that writes nothing into its checkpoint directory
    tasks = [sleep_task("silent-auto", 2.5, checkpoint_enabled=True, checkpoint_interval="auto")]
    out = tmp_path / "summary.json"
    argv = ["local", str(write_workflow(tasks, "silent-auto")), "--no-progress", "--time-scale", str(TIME_SCALE)]
    assert main([*argv, "--summary-json", str(out), "--workdir", str(tmp_path / "w")]) == 0
    # Then local mode flags it, as AWS would two minutes in
    summary = json.loads(out.read_text())
    assert summary["checkpoint_warnings"] == [f"silent-auto: {CHECKPOINT_EMPTY_MESSAGE}"]


def test_lost_work_per_reclaim_is_at_most_one_interval_plus_the_notice_handling(run_local, write_workflow, tmp_path):
    script = tmp_path / "counter.py"
    script.write_text(COUNTER)
    # Given two checkpointed Spot tasks reclaimed once each: one stops on the notice, one keeps running
    tasks = [
        _task("stops", script),
        _task("keeps", script, KEEP_GOING="1", STEPSPOT_CHECKPOINT_SIGNAL="USR1"),
    ]
    faults = Faults(reclaim_tasks=frozenset({"stops", "keeps"}), seed=3)
    policy = {"breaker": {"failure_threshold": 1, "window_seconds": 86_400, "cooldown_seconds": 86_400}}
    summary = run_local(write_workflow(tasks, "reclaimed"), faults=faults, policy=policy, time_scale=TIME_SCALE)
    assert summary.status == "SUCCEEDED", summary.cause
    rows = {row["task_id"]: row for row in summary.per_task}
    logs = "\n".join(p.read_text() for p in Path(summary.run_dir).glob("tasks/*/attempt-*/output.log"))
    handled = [float(x) for x in re.findall(r"notice handled in ([0-9.]+) s", logs)]
    assert handled
    interval_real = INTERVAL / TIME_SCALE
    for task_id in ("stops", "keeps"):
        row = rows[task_id]
        # Then every reclaim reported its lost work, and the next attempt its restore time
        assert len(row["lost_work_seconds"]) == row["interruptions"] >= 1, row
        assert row["restore_seconds"], row
        # bounded by one interval plus the notice handling (+0.25 s: the duration of one local save)
        bound = interval_real + max(handled) + 0.25
        assert all(0 <= lost <= bound for lost in row["lost_work_seconds"]), (row["lost_work_seconds"], bound)
    # The program that stopped on the notice lost (almost) nothing: its last state was saved after it exited
    assert max(rows["stops"]["lost_work_seconds"]) < 0.25
    # And the workflow monitor counted the same (LostWorkSeconds, RestoreSeconds metrics)
    assert summary.metrics.get("LostWorkSeconds", 0) >= 0 and "LostWorkSeconds" in summary.metrics
    assert "RestoreSeconds" in summary.metrics
