"""The runner's checkpoint health reports: the run record, the empty-directory warning, interruption exposure.

Everything here is best effort: a failed report is logged once and never fails the task (the program's
work matters more than its statistics). The record layout and the rules are in ``stepspot.run_health``.
"""

from __future__ import annotations

import json
import logging
import sys
import urllib.error
import urllib.request
from typing import Any, TextIO

from stepspot.agent.settings import AgentSettings
from stepspot.log_events import CHECKPOINT_EMPTY_EVENT, EVENT_FIELD
from stepspot.run_health import (
    CHECKPOINT_EMPTY_MESSAGE,
    EMPTY_AFTER_INTERVALS,
    EXPOSURE_FLUSH_SECONDS,
    observed_mtbi,
)

log = logging.getLogger("stepspot.agent")

IMDS_TIMEOUT_SECONDS = 1.0


def read_placement(endpoint: str | None) -> tuple[str, str] | None:
    """(instance type, availability zone) from IMDSv2, or None off EC2 / when IMDS is off or unreachable."""
    if not endpoint:
        return None
    try:
        request = urllib.request.Request(
            f"{endpoint}/latest/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}
        )
        with urllib.request.urlopen(request, timeout=IMDS_TIMEOUT_SECONDS) as response:
            token = response.read().decode().strip()
        values = []
        for path in ("instance-type", "placement/availability-zone"):
            request = urllib.request.Request(
                f"{endpoint}/latest/meta-data/{path}", headers={"X-aws-ec2-metadata-token": token}
            )
            with urllib.request.urlopen(request, timeout=IMDS_TIMEOUT_SECONDS) as response:
                values.append(response.read().decode().strip())
    except (OSError, urllib.error.URLError, ValueError):
        return None
    if not all(values):
        return None
    return values[0], values[1]


def report_checkpoint_empty(settings: AgentSettings, waited: float, stream: TextIO | None = None) -> None:
    """Print the ``checkpoint_empty`` line the job log group's metric filter counts as ``CheckpointsEmpty``."""
    line = {
        EVENT_FIELD: CHECKPOINT_EMPTY_EVENT,
        "environment": settings.environment,
        "workflow_id": settings.workflow_id,
        "task_id": settings.task_id,
        "waited_seconds": round(waited, 1),
    }
    out = stream or sys.stderr
    out.write(json.dumps(line) + "\n")  # one write: the log thread cannot split the line
    out.flush()


class RunReporter:
    """Writes the attempt's run record and the interruption statistics to the checkpoint table."""

    def __init__(self, settings: AgentSettings, table: Any, job_id: str, placement: tuple[str, str] | None) -> None:
        self.settings = settings
        self.table = table  # stepspot.checkpointing.aws.table.CheckpointTable
        self.job_id = job_id
        self.placement = placement
        self._failed = False
        self._exposure_from: float | None = None
        self.empty_flagged = False

    def _write(self, what: str, call: Any, *args: Any) -> None:
        try:
            call(*args)
        except Exception as exc:
            if not self._failed:
                log.warning("could not record the %s (checkpoints are not affected): %s", what, exc)
                self._failed = True

    def update(self, **fields: Any) -> None:
        if not self.job_id:
            return
        s = self.settings
        self._write("run record", self.table.update_run, s.workflow_id, s.task_id, self.job_id, fields)

    def mtbi(self) -> tuple[float, str]:
        """The MTBI for 'auto': observed on this instance type and zone, else the fixed value."""
        s = self.settings
        if s.mtbi_explicit or self.placement is None:
            return s.mtbi, "set" if s.mtbi_explicit else "fixed"
        try:
            exposure, notices = self.table.interruption_stats(*self.placement)
        except Exception as exc:
            log.warning("could not read the observed interruptions (using the fixed MTBI): %s", exc)
            return s.mtbi, "fixed"
        mtbi, source = observed_mtbi(exposure, notices, s.mtbi)
        return (
            mtbi,
            f"{source}: {notices} notices in {exposure / 3600:.1f} h on {self.placement[0]} in {self.placement[1]}",
        )

    def program_started(self, at: float, restore_seconds: float | None, restored: int | None) -> None:
        self._exposure_from = at
        fields: dict[str, object] = {"program_started_epoch": at}
        if restored is not None and restore_seconds is not None:
            fields.update(restore_seconds=restore_seconds, restored_sequence=restored)
        if self.placement is not None:
            fields.update(instance_type=self.placement[0], availability_zone=self.placement[1])
        self.update(**fields)

    def add_exposure(self, now: float, notice: bool = False, final: bool = False) -> None:
        """Add the running time since the last report (and a notice) to this type and zone's statistics.

        Written on a notice, at exit (``final``) and otherwise once ``EXPOSURE_FLUSH_SECONDS`` accumulated.
        """
        if self.placement is None or self._exposure_from is None:
            return
        seconds = max(0.0, now - self._exposure_from)
        if not (notice or final or seconds >= EXPOSURE_FLUSH_SECONDS):
            return
        self._exposure_from = now
        simulated = seconds * self.settings.time_scale  # the MTBI it feeds is in simulated seconds too
        self._write(
            "interruption statistics", self.table.add_interruption_exposure, *self.placement, simulated, int(notice)
        )

    def flag_empty(self, waited: float) -> None:
        """Once: warn, print the metric line, mark the run record."""
        if self.empty_flagged:
            return
        self.empty_flagged = True
        log.warning(
            "%s: %s is still empty %.1f s (%d checkpoint intervals) after the program started; the program must "
            "write its restart files there, or a reclaim restarts it from zero",
            CHECKPOINT_EMPTY_MESSAGE,
            self.settings.directory,
            waited,
            EMPTY_AFTER_INTERVALS,
        )
        report_checkpoint_empty(self.settings, waited)
        self.update(checkpoint_empty=True)
