"""Validate + plan time and peak memory for generated DAGs of 1k, 10k and 100k tasks.

Goal (issue 2): 100k tasks in under 2 s on a 2-core machine, growing linearly. Shapes: a chain (deepest),
a wide fan-out (one root, everything else below it), and a random layered DAG (up to 3 parents per task
from the previous layers). Time is the best of several runs without tracing; peak memory is measured in
a separate run with tracemalloc (Python allocations).
"""

from __future__ import annotations

import json
import random
import sys
import time
import tracemalloc
from typing import Any

from bench import results_file, smoke
from stepspot.plan import build_plan
from stepspot.workflow import parse_workflow

SIZES = (1_000, 10_000, 100_000)
SMOKE_SIZES = (100, 300)
GOAL_SECONDS_100K = 2.0


def _task(i: int, deps: list[int]) -> dict[str, Any]:
    return {
        "id": f"task-{i}",
        "container_image": "scientific-computing:md",
        "command": ["python", "/app/step.py", str(i)],
        "vcpus": 2,
        "memory": 4096,
        "depends_on": [f"task-{d}" for d in deps],
        "estimated_runtime": 60 + (i * 37) % 3600,
    }


def chain(n: int) -> list[dict[str, Any]]:
    return [_task(i, [i - 1] if i else []) for i in range(n)]


def fan_out(n: int) -> list[dict[str, Any]]:
    return [_task(i, [0] if i else []) for i in range(n)]


def random_layered(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    width = max(1, int(n**0.5))
    tasks = []
    for i in range(n):
        layer_start = (i // width) * width
        pool = range(max(0, layer_start - width), layer_start)
        deps = sorted(rng.sample(pool, k=min(len(pool), rng.randint(1, 3)))) if layer_start else []
        tasks.append(_task(i, deps))
    return tasks


SHAPES = {"chain": chain, "fan-out": fan_out, "random-layered": random_layered}


def _run(document: dict[str, Any]) -> int:
    loaded = parse_workflow(document)
    return len(build_plan(loaded.workflow, "bench", loaded.warnings).order)


def measure(shape: str, n: int, repeats: int | None = None) -> dict[str, Any]:
    document = {"name": f"{shape}-{n}", "tasks": SHAPES[shape](n)}
    repeats = repeats or (5 if n <= 10_000 else 3)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        assert _run(document) == n
        best = min(best, time.perf_counter() - start)
    tracemalloc.start()
    _run(document)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"shape": shape, "tasks": n, "seconds": best, "us_per_task": best / n * 1e6, "peak_mib": peak / 2**20}


def main(argv: list[str]) -> int:
    sizes, repeats = (SMOKE_SIZES, 1) if smoke(argv) else (SIZES, None)
    rows = [measure(shape, n, repeats) for shape in SHAPES for n in sizes]
    print(f"{'shape':<16}{'tasks':>9}{'validate+plan':>15}{'us/task':>10}{'peak MiB':>10}")
    for r in rows:
        print(f"{r['shape']:<16}{r['tasks']:>9,}{r['seconds']:>14.3f}s{r['us_per_task']:>10.1f}{r['peak_mib']:>10.1f}")
    worst = max(r["seconds"] for r in rows if r["tasks"] == sizes[-1])
    verdict = "meets" if worst < GOAL_SECONDS_100K else "MISSES"
    print(f"slowest {sizes[-1]:,}-task case: {worst:.3f} s ({verdict} the {GOAL_SECONDS_100K:.0f} s goal at 100k)")
    results_file("planner.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
