"""What `make build` ships: the Lambda layer's size, and the task runner bundle's size and start time.

Goal (issue 14): `python3 -I build/stepspot-agent.pyz --help` under 0.5 s on this machine, once unpacked
(the first run on a host or container unpacks into $SHIV_ROOT: measured separately). Measured with the
system's python3 in isolated mode under `env -i`, as a ratio to `python3 -I -c pass` in the same run, so
the figure means something on a faster or slower machine. The Lambda layer: zipped and unzipped size
(AWS limits a function with its layers to 250 MB unzipped).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from bench import smoke

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "build" / "stepspot-agent.pyz"
LAYER = ROOT / "build" / "lambda" / "dependencies.zip"
GOAL_SECONDS = 0.5
RUNS = 7


def _timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - started


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def main(argv: list[str] | None = None) -> int:
    runs = 1 if smoke(argv) else RUNS
    missing = [p for p in (BUNDLE, LAYER) if not p.exists()]
    if missing:
        message = f"{', '.join(str(p.relative_to(ROOT)) for p in missing)} missing: run `make build` first"
        if smoke(argv):  # the smoke test ignores goal verdicts: it must not pass without measuring anything
            raise RuntimeError(message)
        print(message, file=sys.stderr)
        return 1
    with zipfile.ZipFile(LAYER) as layer:
        unzipped = sum(i.file_size for i in layer.infolist())
    print(f"lambda layer       {_mib(LAYER.stat().st_size)} zipped, {_mib(unzipped)} unzipped (limit 250 MB)")
    with zipfile.ZipFile(BUNDLE) as bundle:
        unpacked = sum(i.file_size for i in bundle.infolist() if i.filename.startswith("site-packages/"))
    print(f"runner bundle      {_mib(BUNDLE.stat().st_size)}, {_mib(unpacked)} unpacked")

    python = shutil.which("python3", path=os.defpath) or sys.executable
    shiv_root = Path(tempfile.mkdtemp(prefix="bench-shiv-"))
    try:
        env = ["env", "-i", "PATH=/usr/bin:/bin", f"SHIV_ROOT={shiv_root}"]
        first = _timed([*env, python, "-I", str(BUNDLE), "--help"])
        helps = [_timed([*env, python, "-I", str(BUNDLE), "--help"]) for _ in range(runs)]
        passes = [_timed([*env, python, "-I", "-c", "pass"]) for _ in range(runs)]
    finally:
        shutil.rmtree(shiv_root, ignore_errors=True)
    help_median, pass_median = statistics.median(helps), statistics.median(passes)
    print(f"interpreter        {python}")
    print(f"first run (unpack) {first:.3f} s")
    print(f"--help             median {help_median:.3f} s, max {max(helps):.3f} s over {runs} runs")
    print(f"python3 -c pass    median {pass_median:.3f} s  (--help = {help_median / pass_median:.1f}x)")
    met = help_median < GOAL_SECONDS
    print(f"goal: --help under {GOAL_SECONDS} s -> {'met' if met else 'FAILED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
