"""Fault injection of local mode, decided per (seed, task, attempt) so a run is repeatable whatever
the thread timing or machine load: whether an attempt is reclaimed, and at which logical point (after
its N-th checkpoint, or right after it starts when it saves none), never a wall-clock instant. Pure."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

# Real-world timings (seconds) that the time scale compresses.
SPOT_NOTICE_SECONDS = 120.0  # EC2 gives two minutes between the warning and the reclaim
CAPACITY_TIME_LIMIT_SECONDS = 600.0  # jobStateTimeLimitActions maxTimeSeconds of the Spot queue
MIN_NOTICE_REAL_SECONDS = 0.6  # the agent polls IMDS every 0.1 s locally and uploads small checkpoints fast


@dataclass(frozen=True)
class Faults:
    spot_interruption_rate: float = 0.0  # share of Spot attempts reclaimed
    # Interruptions per hour of Spot run time (e.g. 0.0003, the demo's; AWS publishes per pool the share reclaimed
    # over a month, < 5 % to > 20 %: 20 % a month is 0.0003/h); an attempt expected to run H hours is
    # reclaimed with probability 1 - exp(-rate * H).
    interruptions_per_hour: float = 0.0
    capacity_shortage: bool = False  # the Spot queue cannot place any job
    app_failure_rate: float = 0.0  # share of attempts whose program exits non-zero
    failing_tasks: frozenset[str] = field(default_factory=frozenset)  # every attempt exits non-zero
    reclaim_tasks: frozenset[str] = field(default_factory=frozenset)  # every Spot attempt is reclaimed
    reclaim_once_tasks: frozenset[str] = field(default_factory=frozenset)  # the first Spot attempt is reclaimed
    seed: int = 0

    def _rng(self, task_id: str, attempt: int, what: str) -> random.Random:
        return random.Random(f"{self.seed}/{task_id}/{attempt}/{what}")

    def reclaim_probability(self, expected_seconds: float) -> float:
        """Chance that one Spot attempt of a task expected to run ``expected_seconds`` is reclaimed."""
        hourly = 1.0 - math.exp(-self.interruptions_per_hour * expected_seconds / 3600.0)
        return 1.0 - (1.0 - self.spot_interruption_rate) * (1.0 - hourly)

    def reclaim_after(
        self, task_id: str, attempt: int, expected_seconds: float, planned_checkpoints: int
    ) -> int | None:
        """None if this Spot attempt keeps its host; else the number of checkpoints the attempt saves
        before the interruption notice (0: the notice comes as soon as the program runs).

        ``expected_seconds`` is the task's simulated run time, ``planned_checkpoints`` how many
        periodic checkpoints a whole run saves. The notice comes after checkpoint 1 or 2 (never the
        last planned one), so there is work to lose and a checkpoint to keep."""
        rng = self._rng(task_id, attempt, "reclaim")
        forced = task_id in self.reclaim_tasks or (task_id in self.reclaim_once_tasks and attempt == 1)
        if not forced and rng.random() >= self.reclaim_probability(expected_seconds):
            return None
        if planned_checkpoints <= 1:
            return 0
        return rng.randint(1, min(2, planned_checkpoints - 1))

    def app_failure(self, task_id: str, attempt: int) -> bool:
        if task_id in self.failing_tasks:
            return True
        return self._rng(task_id, attempt, "app").random() < self.app_failure_rate
