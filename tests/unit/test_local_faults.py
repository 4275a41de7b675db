"""Local mode's Spot fault decisions (stepspot.local.faults): per (seed, task, attempt), never the clock."""

from __future__ import annotations

from stepspot.local.faults import Faults

HOURS = 3600.0


def _reclaimed(faults: Faults, task_id: str, attempts: int = 4) -> list[bool]:
    return [faults.reclaim_after(task_id, n, 6 * HOURS, 5) is not None for n in range(1, attempts + 1)]


def test_reclaim_once_takes_the_first_spot_attempt_only():
    # Given a task reclaimed once and no interruption rate
    faults = Faults(reclaim_once_tasks=frozenset({"md"}))
    # Then its first attempt loses its host after checkpoint 1 or 2, the later ones keep it; others never
    assert _reclaimed(faults, "md") == [True, False, False, False]
    assert faults.reclaim_after("md", 1, 6 * HOURS, 5) in (1, 2)
    assert _reclaimed(faults, "other") == [False] * 4


def test_reclaim_task_takes_every_spot_attempt():
    assert _reclaimed(Faults(reclaim_tasks=frozenset({"md"})), "md") == [True] * 4


def test_a_real_pools_rate_rarely_reclaims_an_hours_long_attempt_and_the_seed_decides():
    # Given the rate of a pool reclaimed 20 % a month, and 1,000 six-hour attempts
    faults = Faults(interruptions_per_hour=0.0003, seed=25)
    reclaimed = sum(faults.reclaim_after(f"t{i}", 1, 6 * HOURS, 5) is not None for i in range(1000))
    # Then about 1 - exp(-0.0003 * 6) = 0.18 % are reclaimed, the same ones for the same seed
    assert 0 <= reclaimed <= 8
    again = Faults(interruptions_per_hour=0.0003, seed=25)
    assert [again.reclaim_after(f"t{i}", 1, 6 * HOURS, 5) for i in range(1000)] == [
        faults.reclaim_after(f"t{i}", 1, 6 * HOURS, 5) for i in range(1000)
    ]
