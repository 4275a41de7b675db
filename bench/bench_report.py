"""The HTML run report of a 1,000-task run: its size and how long a real browser takes to open it.

Goals (issue 15): under 2 MB, and open (timeline drawn) in under 2 s in headless Debian chromium
(`make chromium`). The run is synthetic but shaped like a real one: a layered DAG of 1,000 tasks, 1-3
attempts each (Spot reclaims with checkpoints, On-Demand fallbacks), emulated instance types and zones.
"""

from __future__ import annotations

import importlib.util
import random
import sys
import tempfile
import time
from pathlib import Path

from bench import smoke
from stepspot.cost import (
    ON_DEMAND,
    SPOT,
    AttemptRecord,
    build_ledger,
    default_instance_prices,
    local_placement,
    local_spot_price,
)
from stepspot.report.html import write_report
from stepspot.report.model import RunRecord, TaskRecord

TASKS = 1_000
OPENS = 3  # best of
SMOKE_TASKS = 20  # --smoke: and one open
GOAL_BYTES = 2_000_000
GOAL_OPEN_SECONDS = 2.0
ROOT = Path(__file__).resolve().parents[1]


def synthetic_run(n: int = TASKS, seed: int = 7) -> RunRecord:
    rng = random.Random(seed)
    prices = default_instance_prices()
    tasks: list[TaskRecord] = []
    records: list[AttemptRecord] = []
    checkpoints: dict[str, list[float]] = {}
    finish: dict[str, float] = {}
    for i in range(n):
        task_id = f"task-{i:04d}"
        layer_start = max(0, i - 40)
        deps = sorted({f"task-{rng.randrange(layer_start, i):04d}" for _ in range(rng.randint(0, 2))} if i else set())
        clock = max((finish[d] for d in deps), default=0.0) + rng.uniform(10, 300)
        vcpus, memory = rng.choice([(2, 4096), (4, 8192), (8, 16384), (16, 32768)])
        attempts = 1 + (rng.random() < 0.25) + (rng.random() < 0.1)
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            spot = not (last and attempt > 1 and rng.random() < 0.5)
            runtime = rng.uniform(600, 7200)
            start = clock + rng.uniform(30, 900)
            saved = [start + t for t in range(1800, int(runtime), 1800)]
            checkpoints.setdefault(task_id, []).extend(saved)
            records.append(
                AttemptRecord(
                    task_id=task_id,
                    attempt=attempt,
                    job_id=f"{task_id}-{attempt}",
                    capacity=SPOT if spot else ON_DEMAND,
                    status="SUCCEEDED" if last else "FAILED",
                    created_at=clock,
                    started_at=start,
                    stopped_at=start + runtime,
                    vcpus=vcpus,
                    memory_mib=memory,
                    fallback=not spot,
                    reclaimed=not last,
                    failure_class=None if last else "spot_reclaim",
                    last_checkpoint_at=saved[-1] if saved else None,
                )
            )
            clock = start + runtime + (0 if last else rng.uniform(60, 600))  # back-off before the next
        finish[task_id] = clock
        tasks.append(TaskRecord(task_id, tuple(deps), "SUCCEEDED"))
    ledger = build_ledger(
        records,
        lambda r: local_placement(
            seed, r.task_id, r.attempt, r.vcpus, r.memory_mib, prices, "us-east-1", capacity=r.capacity
        ),
        prices,
        lambda itype, zone, _at: local_spot_price(seed, prices.instance(itype), zone),
    )
    return RunRecord(
        workflow_id="bench-1000",
        name="bench: 1,000 tasks",
        status="SUCCEEDED",
        environment="bench",
        region="us-east-1",
        currency="USD",
        price_source="bundled table, emulated Spot prices",
        tasks=tasks,
        ledger=ledger,
        checkpoints=checkpoints,
    )


def _browser():  # tests/e2e/browser.py: the same headless chromium settings as the browser test
    spec = importlib.util.spec_from_file_location("stepspot_browser", ROOT / "tests" / "e2e" / "browser.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    tasks, opens = (SMOKE_TASKS, 1) if smoke(argv) else (TASKS, OPENS)
    record = synthetic_run(tasks)
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "report.html"
        started = time.perf_counter()
        size = write_report(record, path)
        rendered = time.perf_counter() - started
        print(f"{tasks} tasks, {len(record.ledger)} attempts: rendered in {rendered:.2f} s, {size / 1e6:.2f} MB")
        timings = []
        with _browser().chromium_page() as page:
            for _ in range(opens):
                started = time.perf_counter()
                page.goto(path.as_uri())
                page.wait_for_selector("body[data-ready='1']", state="attached", timeout=30_000)
                timings.append(time.perf_counter() - started)
            drawn = page.evaluate("Object.keys(window.stepspotReport.drawn).length")
    best = min(timings)
    print(
        f"opened in the browser in {best:.2f} s (best of {opens}: {', '.join(f'{t:.2f}' for t in timings)}); "
        f"{drawn} attempts drawn in the first view"
    )
    failed = 0
    if size >= GOAL_BYTES:
        print(f"FAIL: {size} bytes, goal under {GOAL_BYTES}")
        failed = 1
    if best >= GOAL_OPEN_SECONDS:
        print(f"FAIL: {best:.2f} s to open, goal under {GOAL_OPEN_SECONDS} s")
        failed = 1
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
