"""Local engine speed, end to end through the CLI (`stepspot local FILE`), against process starts.

1. Fan-out: one root and 200 no-op tasks depending on it, the whole `stepspot local` command (CLI start,
   emulator, real state machines, handlers and jobs), against 200 `python -c pass` processes started one
   after the other with the same interpreter. Goal: ratio <= 3. Both run in rounds, one of each per round
   after a warm-up run, and their medians are compared (as bench_cli does): this shared 2-core machine's
   speed swings by 15% from one run to the next, more than a single pair can tell apart.
2. Per-hop latency: a chain of no-op tasks; (makespan of a 21-task chain - makespan of one task) / 20,
   the time from one task's end to the next one's end when the task itself does nothing. Goal: <= 100 ms
   (also shown as a ratio against one `python -c pass` start).

    python -m bench local          (make bench runs every benchmark)
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import smoke

PY = Path(sys.executable).name  # found on the jobs' PATH (this installation's scripts come first)
STEPSPOT = Path(sys.executable).with_name("stepspot")
FAN_OUT = 200
CHAIN = 21
GOAL_FAN_RATIO, GOAL_HOP_MS = 3.0, 100.0
FAN_ROUNDS = 3  # rounds of (the fan-out, the process starts)
SMOKE_FAN_OUT, SMOKE_CHAIN = 2, 3  # --smoke (tests/integration/test_bench_smoke.py): one round, no warm-up


def _task(task_id: str, deps: list[str]) -> dict[str, Any]:
    return {
        "id": task_id,
        "container_image": "bench:1",
        "command": [PY, "-c", "pass"],
        "depends_on": deps,
        "checkpoint_enabled": False,
    }


def _process_starts(count: int) -> float:
    """Seconds to start (and wait for) ``count`` `python -c pass` processes one after the other."""
    started = time.perf_counter()
    for _ in range(count):
        subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def _cli_run(tasks: list[dict[str, Any]], name: str, workdir: Path) -> tuple[float, dict[str, Any]]:
    """Wall seconds of `stepspot local FILE` and its summary."""
    path = workdir / f"{name}.json"
    path.write_text(json.dumps({"name": name, "tasks": tasks}))
    summary_path = workdir / f"{name}-summary.json"
    started = time.perf_counter()
    result = subprocess.run(
        [str(STEPSPOT), "local", str(path), "--summary-json", str(summary_path)],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"stepspot local {name} exited {result.returncode}: {result.stderr[-2000:]}")
    return elapsed, json.loads(summary_path.read_text())


def main(argv: list[str]) -> int:
    quick = smoke(argv)
    fan_out, chain_length, rounds = (SMOKE_FAN_OUT, SMOKE_CHAIN, 1) if quick else (FAN_OUT, CHAIN, FAN_ROUNDS)
    failed = 0
    with tempfile.TemporaryDirectory(prefix="stepspot-bench-local-") as tmp:
        workdir = Path(tmp)
        _process_starts(5)  # warm the page cache for both sides
        fan_tasks = [_task("root", [])] + [_task(f"f{i}", ["root"]) for i in range(fan_out)]
        if not quick:
            _cli_run(fan_tasks, "fan", workdir)  # warm-up: the page cache and .pyc files of the whole engine
        fan_runs, start_runs, makespans = [], [], []
        for _ in range(rounds):
            elapsed, fan_summary = _cli_run(fan_tasks, "fan", workdir)
            fan_runs.append(elapsed)
            makespans.append(fan_summary["makespan_seconds"])
            start_runs.append(_process_starts(fan_out))
        fan_seconds, starts = statistics.median(fan_runs), statistics.median(start_runs)
        ratio = fan_seconds / starts
        print(f"fan-out of {fan_out} no-op tasks from one root, `stepspot local` end to end (medians of {rounds}):")
        print(
            f"  {fan_seconds:6.2f} s (makespan {statistics.median(makespans):.2f} s) vs {fan_out} sequential "
            f"`python -c pass` {starts:5.2f} s: ratio {ratio:5.2f}  goal <= {GOAL_FAN_RATIO}"
        )
        print(f"  rounds: {', '.join(f'{f:.2f}/{p:.2f}' for f, p in zip(fan_runs, start_runs, strict=True))}")
        failed |= int(ratio > GOAL_FAN_RATIO)

        _, one = _cli_run([_task("c0", [])], "chain-1", workdir)
        chain = [_task(f"c{i}", [f"c{i - 1}"] if i else []) for i in range(chain_length)]
        _, many = _cli_run(chain, f"chain-{chain_length}", workdir)
        hop = (many["makespan_seconds"] - one["makespan_seconds"]) / (chain_length - 1)
        start = starts / fan_out
        print(f"per-hop latency, chain of {chain_length} no-op tasks against one:")
        print(
            f"  {hop * 1000:6.0f} ms per hop ({hop / start:4.1f}x one `python -c pass` start of "
            f"{start * 1000:.0f} ms)  goal <= {GOAL_HOP_MS:.0f} ms"
        )
        failed |= int(hop * 1000 > GOAL_HOP_MS)
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
