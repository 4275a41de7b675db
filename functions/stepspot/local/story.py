"""The story of a local run, one line per event that matters, as it happens.

Lines come from the facts the run produces anyway: the attempt manager's capacity choices and failure
decisions (Lambda results), the job's own output (the checkpoint agent's "checkpoint N saved" and
"restored checkpoint N"), the injected Spot notices and the jobs' ends. Each task's lines are emitted by
the one thread that drives that task at that moment, so a task's lines come in a fixed order, and none
carries a wall-clock measurement: the same seed tells the same story on any machine.
"""

from __future__ import annotations

import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stepspot.local.batch import AGENT_STARTED, CHECKPOINT_SAVED, SPOT_NOTICE_LINE, LocalBatch, LocalJob
from stepspot.local.faults import SPOT_NOTICE_SECONDS

RESTORED = re.compile(r"\brestored checkpoint (\d+)\b")
PROGRAM_EXITED = re.compile(r"stepspot-agent INFO program exited with -?\d+$")
LOG_TAIL_LINES = 8
CAPACITY_NAMES = {"SPOT": "Spot", "ON_DEMAND": "On-Demand"}


def log_tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last non-empty lines of a job's log (what explains a failure)."""
    if path is None or not path.is_file():
        return []
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line.rstrip() for line in text if line.strip()][-lines:]


class Story:
    def __init__(self, batch: LocalBatch, emit: Callable[[str], None] | None = None) -> None:
        self._batch = batch
        self._emit = emit
        self._lock = threading.Lock()
        self.lines: list[str] = []
        self.by_task: defaultdict[str, list[str]] = defaultdict(list)
        self.failures: dict[str, dict[str, Any]] = {}  # task id -> cause and log tail, for the summary
        # Job id -> real seconds its program ran (the runner's "started" to "program exited" lines): the
        # rest of an attempt is this machine starting the runner and staging data, which the time scale
        # would turn into hours (the summary says so). A measurement kept apart from the story's lines.
        self.program_seconds: dict[str, float] = {}
        self._program_started: dict[str, float] = {}

    def attach(self, lambdas: Any) -> None:
        lambdas.observers.append(self.on_lambda)
        self._batch.output_listeners.append(self.on_output)
        self._batch.observers.append(self.on_job)

    def say(self, task_id: str, text: str) -> None:
        line = f"{task_id}: {text}"
        with self._lock:
            self.lines.append(line)
            self.by_task[task_id].append(text)
        if self._emit is not None:
            self._emit(line)

    # -- sources ----------------------------------------------------------------------------------

    def on_lambda(self, key: str, event: dict[str, Any], result: Any) -> None:
        if key != "attempt_manager" or not isinstance(result, dict):
            return
        task_id, attempt = str(event.get("task_id", "")), int(event.get("attempt") or 1)
        if event.get("action") == "choose_capacity":
            capacity = CAPACITY_NAMES.get(str(result.get("capacity")), str(result.get("capacity")))
            self.say(task_id, f"attempt {attempt} started on {capacity}: {_why(str(result.get('reason', '')))}")
        elif event.get("action") == "classify_failure":
            self._failure(task_id, attempt, event, result)

    def on_output(self, job: LocalJob, line: str) -> None:
        if AGENT_STARTED.search(line):
            with self._lock:
                self._program_started.setdefault(job.job_id, time.monotonic())
        elif PROGRAM_EXITED.search(line):
            with self._lock:
                if (started := self._program_started.get(job.job_id)) is not None:
                    self.program_seconds.setdefault(job.job_id, time.monotonic() - started)
        elif line == SPOT_NOTICE_LINE:
            self.say(job.task_id, f"Spot interruption notice (attempt {job.attempt}): 2 minutes to checkpoint")
        elif found := CHECKPOINT_SAVED.search(line):
            self.say(job.task_id, f"checkpoint {found.group(1)} saved")
        elif found := RESTORED.search(line):
            self.say(job.task_id, f"resumed from checkpoint {found.group(1)}")

    def on_job(self, job: LocalJob) -> None:
        if job.status == "SUCCEEDED" and job.task_id:
            self.say(job.task_id, f"succeeded (attempt {job.attempt})")

    # -- failures ---------------------------------------------------------------------------------

    def _job(self, task_id: str, attempt: int) -> LocalJob | None:
        found = [j for j in self._batch.jobs.values() if j.task_id == task_id and j.attempt == attempt]
        return max(found, key=lambda j: j.created_at) if found else None

    def _failure(self, task_id: str, attempt: int, event: dict[str, Any], result: dict[str, Any]) -> None:
        decision = result.get("decision") or {}
        failure_class = str(decision.get("failure_class", ""))
        reason = str(decision.get("reason", ""))
        job = self._job(task_id, attempt)
        if failure_class == "spot_reclaim":
            self.say(task_id, f"reclaimed after {self._reclaimed_after(job)} s on Spot (attempt {attempt})")
        else:
            self.say(task_id, f"attempt {attempt} failed: {failure_class}")
        if decision.get("action") == "give_up":
            tail = log_tail(job.log_path if job else None)
            self.failures[task_id] = {
                "task_id": task_id,
                "attempt": attempt,
                "failure_class": failure_class,
                "cause": reason,
                "log": str(job.log_path) if job and job.log_path else None,
                "log_tail": tail,
            }
            self.say(task_id, f"failed for good: {reason}")
            for text in tail:
                self.say(task_id, f"  | {text}")
            return
        if result.get("on_demand") and not event.get("on_demand"):
            self.say(task_id, f"moved to On-Demand: {reason}")
        wait = int(decision.get("wait_seconds") or 0)
        if wait > 0:
            self.say(task_id, f"backing off {wait} s before attempt {attempt + 1}")

    def _reclaimed_after(self, job: LocalJob | None) -> int:
        """Simulated Spot time of a reclaimed attempt, from the logical point of its notice (after its
        N-th checkpoint, at the task's interval) plus the two-minute notice: not a wall-clock reading."""
        if job is None or job.reclaim_after is None:
            return int(SPOT_NOTICE_SECONDS)
        interval = job.environment.get("STEPSPOT_CHECKPOINT_INTERVAL", "")
        seconds = float(interval) if interval.replace(".", "", 1).isdigit() else 600.0
        return int(job.reclaim_after * seconds + SPOT_NOTICE_SECONDS)


def _why(reason: str) -> str:
    """The attempt manager's reason without repeating the capacity ("Spot (breaker closed)")."""
    if reason.startswith("Spot (") and reason.endswith(")"):
        return reason[len("Spot (") : -1]
    return {"Spot first": "Spot is allowed and preferred"}.get(reason, reason)
