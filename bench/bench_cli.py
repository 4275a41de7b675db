"""How long the `stepspot` command takes from the shell, against the cheapest process doing the same reading.

Goals (issue 16, goal 3), each a ratio of medians measured in the same run:
- `stepspot --help` at most 5x a bare `python -c pass` of the same interpreter;
- `stepspot validate FILE` at most 2x, and `stepspot plan FILE` at most 3x, a `python` process that only
  does `json.load` of FILE (a 100,000-task random layered DAG of bench_planner).

The commands run in rounds, one of each per round, so a load change on the (shared) machine hits all of
them alike; the medians are compared. Output goes to /dev/null, as in a pipe.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import results_file, smoke
from bench.bench_planner import random_layered

TASKS = 100_000
ROUNDS = 7  # the 100k-file commands
HELP_ROUNDS = 21  # --help and python -c pass are short: more rounds for a stable median
SMOKE_TASKS = 200  # --smoke: one round of each command, no warm-up
GOALS = {"--help": 5.0, "validate": 2.0, "plan": 3.0}


def stepspot_command() -> list[str]:
    """The installed console script of this interpreter (what users run), else the module entry point."""
    script = Path(sys.executable).with_name("stepspot")
    if script.exists():
        return [str(script)]
    found = shutil.which("stepspot")
    return [found] if found else [sys.executable, "-m", "stepspot.cli"]


def seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def medians(commands: dict[str, list[str]], rounds: int, warm_up: bool = True) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in commands}
    for command in commands.values() if warm_up else ():  # page cache, .pyc files
        seconds(command)
    for _ in range(rounds):
        for name, command in commands.items():
            times[name].append(seconds(command))
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: list[str]) -> int:
    stepspot = stepspot_command()
    quick = smoke(argv)
    tasks, rounds, help_rounds = (SMOKE_TASKS, 1, 1) if quick else (TASKS, ROUNDS, HELP_ROUNDS)
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        path = Path(tmp) / f"layered-{tasks}.json"
        path.write_text(json.dumps({"name": f"layered-{tasks}", "tasks": random_layered(tasks)}), encoding="utf-8")
        bare = [sys.executable, "-c", "pass"]
        start = medians({"python -c pass": bare, "--help": [*stepspot, "--help"]}, help_rounds, not quick)
        load = [sys.executable, "-c", "import json, sys; json.load(open(sys.argv[1]))", str(path)]
        files = medians(
            {
                "json.load": load,
                "validate": [*stepspot, "validate", str(path)],
                "plan": [*stepspot, "plan", str(path)],
            },
            rounds,
            not quick,
        )
    rows = [
        ("--help", start["--help"], "python -c pass", start["python -c pass"]),
        ("validate", files["validate"], "json.load", files["json.load"]),
        ("plan", files["plan"], "json.load", files["json.load"]),
    ]
    print(f"{'stepspot':<10}{'median':>9}  {'baseline':<16}{'median':>9}{'ratio':>8}{'goal':>7}")
    missed = 0
    for name, value, base_name, base in rows:
        ratio = value / base
        verdict = "ok" if ratio <= GOALS[name] else "MISSES"
        missed += ratio > GOALS[name]
        print(f"{name:<10}{value:>8.3f}s  {base_name:<16}{base:>8.3f}s{ratio:>7.1f}x{GOALS[name]:>6.0f}x  {verdict}")
    print(f"({tasks:,}-task random layered DAG; medians of {rounds} rounds, --help of {help_rounds})")
    keys = ("command", "seconds", "baseline", "baseline_seconds")
    results_file("cli.json").write_text(json.dumps([dict(zip(keys, row, strict=True)) for row in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
