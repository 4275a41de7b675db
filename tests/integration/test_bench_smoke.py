"""Every benchmark still runs: `python -m bench --smoke NAME` runs a bench module's own code at a tiny size.

The benches call the project's APIs directly, and nothing else exercises them between `make bench` runs,
so an API change used to break them unnoticed. Only an error fails here: figures and goals measured at
that size mean nothing (``bench/__main__.py``). Results go to the test's directory, not build/bench/.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stepspot.call_log import CALL_LOG_ENV

sys.path.insert(0, str(Path(__file__).parents[2]))  # the repository: `bench` is no installed package
from bench import REPO, RESULTS_ENV
from bench.__main__ import names

# The ones that run the local engine, agent subprocesses or fresh moto processes: started first under xdist.
SLOW = {"bench_local", "bench_scheduling", "bench_plan_reads", "bench_checkpoints"}


def _smoke(*args: str, results: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != CALL_LOG_ENV}  # a bench is no deployed principal
    env[RESULTS_ENV] = results
    return subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in names()])
def test_the_benchmark_runs_at_a_tiny_size(name: str, tmp_path) -> None:
    result = _smoke(name, results=str(tmp_path))
    assert result.returncode == 0, f"{name} --smoke failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    assert f"=== {name} (smoke size" in result.stdout


def test_an_unknown_benchmark_is_refused_with_the_list(tmp_path) -> None:
    result = _smoke("nope", results=str(tmp_path))
    assert result.returncode == 2
    assert "unknown benchmark(s): bench_nope; available: bench_checkpoints" in result.stderr
