"""Fault injection of local mode, decided per (seed, task, attempt) so a run is repeatable whatever
the thread timing. Pure."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

# Real-world timings (seconds) that the time scale compresses.
SPOT_NOTICE_SECONDS = 120.0  # EC2 gives two minutes between the warning and the reclaim
CAPACITY_TIME_LIMIT_SECONDS = 600.0  # jobStateTimeLimitActions maxTimeSeconds of the Spot queue
MIN_NOTICE_REAL_SECONDS = 0.6  # the agent polls IMDS every 0.1 s locally and uploads small checkpoints fast


@dataclass(frozen=True)
class Faults:
    spot_interruption_rate: float = 0.0  # share of Spot attempts reclaimed
    capacity_shortage: bool = False  # the Spot queue cannot place any job
    app_failure_rate: float = 0.0  # share of attempts whose program exits non-zero
    failing_tasks: frozenset[str] = field(default_factory=frozenset)  # every attempt exits non-zero
    reclaim_tasks: frozenset[str] = field(default_factory=frozenset)  # every Spot attempt is reclaimed
    seed: int = 0

    def _rng(self, task_id: str, attempt: int, what: str) -> random.Random:
        return random.Random(f"{self.seed}/{task_id}/{attempt}/{what}")

    def reclaim_at(self, task_id: str, attempt: int, expected_seconds: float) -> float | None:
        """Seconds after start at which the Spot host is reclaimed (the notice comes earlier), or None."""
        rng = self._rng(task_id, attempt, "reclaim")
        if task_id not in self.reclaim_tasks and rng.random() >= self.spot_interruption_rate:
            return None
        # Somewhere in the middle of the expected run, so there is work to lose and a checkpoint to keep.
        return max(0.2, expected_seconds * rng.uniform(0.35, 0.7))

    def app_failure(self, task_id: str, attempt: int) -> bool:
        if task_id in self.failing_tasks:
            return True
        return self._rng(task_id, attempt, "app").random() < self.app_failure_rate
