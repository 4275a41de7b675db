"""Run every benchmark module (`bench/bench_*.py`), or those named: `python -m bench planner checkpoints`.

`python -m bench --smoke [NAME ...]` runs them at a tiny size (tests/integration/test_bench_smoke.py): only an
error fails it, since goals measured at that size mean nothing.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

from bench import SMOKE


def names() -> list[str]:
    """The registry: every ``bench_*`` module of this package."""
    return sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if m.name.startswith("bench_"))


def main(argv: list[str]) -> int:
    smoke = SMOKE in argv
    available = names()
    wanted = [n if n.startswith("bench_") else f"bench_{n}" for n in argv if n != SMOKE] or available
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available)}", file=sys.stderr)
        return 2
    failed = 0
    for name in wanted:
        print(f"\n=== {name}{' (smoke size: figures mean nothing)' if smoke else ''} ===", flush=True)
        missed = int(importlib.import_module(f"bench.{name}").main([SMOKE] if smoke else []) or 0)
        failed += 0 if smoke else missed
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
