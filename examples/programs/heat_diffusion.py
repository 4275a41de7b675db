#!/usr/bin/env python3
"""A small real job: 1-D heat diffusion, checkpointed into $STEPSPOT_CHECKPOINT_DIR and resumable.

What a program under stepspot-agent has to do, in ~100 lines of standard library:

* on start, resume from ``$STEPSPOT_CHECKPOINT_DIR/state.json`` if it is there;
* every ``--checkpoint-every`` steps, write its state into the directory atomically (temp file + rename)
  so the agent never uploads a half-written file;
* on SIGTERM (the agent's default notice signal): write the state at once and exit;
  on SIGUSR1: write the state and carry on.

The result is deterministic: an interrupted-and-resumed run ends with the same checksum as an
uninterrupted one, which is how the tests prove that no step was lost or repeated wrongly.

    python heat_diffusion.py --steps 2000 --cells 400 --output result.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

STATE_FILE = "state.json"


def initial_grid(cells: int) -> list[float]:
    """A hot spot in the middle of a cold rod."""
    return [100.0 if cells // 3 <= i < 2 * cells // 3 else 0.0 for i in range(cells)]


def step(grid: list[float], alpha: float) -> list[float]:
    """One explicit finite-difference step with fixed (cold) ends."""
    last = len(grid) - 1
    return [
        0.0 if i in (0, last) else grid[i] + alpha * (grid[i - 1] - 2 * grid[i] + grid[i + 1]) for i in range(len(grid))
    ]


def write_state(directory: Path, done: int, grid: list[float]) -> None:
    temporary = directory / f".{STATE_FILE}.tmp"
    temporary.write_text(json.dumps({"step": done, "grid": grid}))
    os.replace(temporary, directory / STATE_FILE)  # atomic: the agent sees the old or the new file


def load_state(directory: Path, cells: int) -> tuple[int, list[float]]:
    path = directory / STATE_FILE
    if not path.exists():
        return 0, initial_grid(cells)
    state = json.loads(path.read_text())
    if len(state["grid"]) != cells:
        sys.exit(f"heat_diffusion: {path} holds {len(state['grid'])} cells, not {cells}: use a fresh directory")
    return int(state["step"]), [float(v) for v in state["grid"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2000, help="total time steps")
    parser.add_argument("--cells", type=int, default=400, help="grid cells (work per step)")
    parser.add_argument("--alpha", type=float, default=0.25, help="diffusion number (<= 0.5 is stable)")
    parser.add_argument("--checkpoint-every", type=int, default=100, help="steps between state writes")
    parser.add_argument("--step-delay", type=float, default=0.0, help="extra seconds per step (demos, tests)")
    parser.add_argument("--output", type=Path, help="where to write the final result (JSON)")
    args = parser.parse_args()

    directory = Path(os.environ.get("STEPSPOT_CHECKPOINT_DIR", "checkpoint"))
    directory.mkdir(parents=True, exist_ok=True)
    done, grid = load_state(directory, args.cells)
    print(f"heat_diffusion: starting at step {done} of {args.steps}", flush=True)

    requested = {"write": False, "stop": False}

    def on_signal(signum: int, _frame: object) -> None:
        requested["write"] = True
        requested["stop"] = requested["stop"] or signum == signal.SIGTERM

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGUSR1, on_signal)

    started = time.monotonic()
    while done < args.steps:
        grid = step(grid, args.alpha)
        done += 1
        if args.step_delay:
            time.sleep(args.step_delay)
        if done % args.checkpoint_every == 0 or requested["write"]:
            write_state(directory, done, grid)
            print(f"heat_diffusion: step {done} written", flush=True)
            requested["write"] = False
            if requested["stop"]:
                print(f"heat_diffusion: stopping at step {done} on request", flush=True)
                return 128 + signal.SIGTERM
    write_state(directory, done, grid)
    result = {"steps": done, "checksum": round(sum(grid), 9), "seconds": round(time.monotonic() - started, 3)}
    print(f"heat_diffusion: finished {json.dumps(result)}", flush=True)
    if args.output:
        args.output.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
