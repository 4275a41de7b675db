"""Benchmarks (`make bench`). Each `bench/bench_*.py` module has a `main(argv)`; results also go to build/bench/.

``--smoke`` in a module's argv: the same code at a tiny size (seconds), so that `make test` notices a bench
broken by an API change (tests/integration/test_bench_smoke.py). Its figures and goal verdicts mean nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

SMOKE = "--smoke"
RESULTS_ENV = "STEPSPOT_BENCH_RESULTS"  # where results go instead of build/bench/ (the smoke test's tmp dir)
REPO = Path(__file__).resolve().parents[1]


def smoke(argv: list[str] | None) -> bool:
    return SMOKE in (argv or [])


def results_file(name: str) -> Path:
    """``build/bench/<name>`` of this checkout (or under $STEPSPOT_BENCH_RESULTS), its directory created."""
    directory = Path(os.environ.get(RESULTS_ENV) or REPO / "build" / "bench")
    directory.mkdir(parents=True, exist_ok=True)
    return directory / name
