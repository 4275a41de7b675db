#!/usr/bin/env python3
"""A small, real molecular dynamics program for the local demo (standard library only).

Lennard-Jones particles in a periodic box (reduced units), velocity Verlet integration. Four stages,
like the seed's GROMACS pipeline, each reading the previous stage's output (a declared input, staged by the agent):

    md.py preprocess  --particles N --density RHO --output prep/system.json
    md.py equilibrate --input prep/system.json --steps S --temperature T --output equil/system.json
    md.py produce     --input equil/system.json --steps S --output prod/trajectory.json [--seed K]
    md.py analyse     --inputs prod/a.json prod/b.json --output results/summary.json

Run as the main node of a multi-node task (``stepspot-agent mpi`` sets ``STEPSPOT_MPI_HOSTFILE``), a
stage spreads the force computation over one rank per node: the main rank listens on
``STEPSPOT_MPI_PORT + 1``, every other node runs ``md.py rank`` (the task's
``STEPSPOT_MPI_WORKER_COMMAND``), which connects to the main node, and each step the main rank sends the
positions over TCP, each rank returns the forces of its share of the particle pairs, and the main rank
adds them up. Only the main rank holds the state and checkpoints.

``equilibrate`` and ``produce`` checkpoint their state into ``$STEPSPOT_CHECKPOINT_DIR/state.json``
(atomically, every ``--checkpoint-every`` steps, and at once on SIGTERM, the agent's notice signal),
and resume from it when it is there: an interrupted and resumed run ends with the same energies as an
uninterrupted one. With ``--save-every N`` they also ask the checkpoint agent to upload every N steps
(SIGUSR1 to ``$STEPSPOT_AGENT_PID``, then wait for its answer), so which states are saved depends on the
steps, not on the clock. Results are deterministic for a given input and seed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import signal
import socket
import sys
import time
from pathlib import Path

STATE_FILE = "state.json"


# --------------------------------------------------------------------------------------------- physics


def lattice(particles: int, density: float) -> tuple[list[list[float]], float]:
    """Particles on a simple cubic lattice filling a box of the requested density."""
    box = (particles / density) ** (1 / 3)
    per_side = math.ceil(particles ** (1 / 3))
    spacing = box / per_side
    positions = []
    for i in range(per_side**3):
        if len(positions) == particles:
            break
        x, y, z = i % per_side, (i // per_side) % per_side, i // per_side**2
        positions.append([(x + 0.5) * spacing, (y + 0.5) * spacing, (z + 0.5) * spacing])
    return positions, box


def forces(
    positions: list[list[float]], box: float, cutoff: float = 2.5, rows: range | None = None
) -> tuple[list[list[float]], float]:
    """Lennard-Jones forces and potential energy (minimum image, truncated at ``cutoff``), of the pairs
    (i, j > i) for i in ``rows`` (all by default: one rank's share otherwise)."""
    n = len(positions)
    result = [[0.0, 0.0, 0.0] for _ in range(n)]
    energy = 0.0
    cutoff2 = cutoff * cutoff
    half = box / 2
    for i in rows if rows is not None else range(n - 1):
        xi, yi, zi = positions[i]
        fi = result[i]
        for j in range(i + 1, n):
            dx, dy, dz = xi - positions[j][0], yi - positions[j][1], zi - positions[j][2]
            dx -= box if dx > half else -box if dx < -half else 0.0
            dy -= box if dy > half else -box if dy < -half else 0.0
            dz -= box if dz > half else -box if dz < -half else 0.0
            r2 = dx * dx + dy * dy + dz * dz
            if r2 >= cutoff2:
                continue
            inv6 = 1.0 / (r2 * r2 * r2)
            energy += 4.0 * inv6 * (inv6 - 1.0)
            scale = 24.0 * inv6 * (2.0 * inv6 - 1.0) / r2
            fj = result[j]
            fi[0] += scale * dx
            fi[1] += scale * dy
            fi[2] += scale * dz
            fj[0] -= scale * dx
            fj[1] -= scale * dy
            fj[2] -= scale * dz
    return result, energy


def kinetic(velocities: list[list[float]]) -> float:
    return 0.5 * sum(vx * vx + vy * vy + vz * vz for vx, vy, vz in velocities)


def verlet(state: dict, dt: float, thermostat: float | None, compute=forces) -> None:
    """One velocity Verlet step; with ``thermostat`` the velocities are rescaled to that temperature."""
    box = state["box"]
    pos, vel, frc = state["positions"], state["velocities"], state["forces"]
    for p, v, f in zip(pos, vel, frc, strict=True):
        for k in range(3):
            v[k] += 0.5 * dt * f[k]
            p[k] = (p[k] + dt * v[k]) % box
    new_forces, potential = compute(pos, box)
    for v, f in zip(vel, new_forces, strict=True):
        for k in range(3):
            v[k] += 0.5 * dt * f[k]
    if thermostat is not None:
        current = 2 * kinetic(vel) / (3 * len(vel))
        factor = math.sqrt(thermostat / current) if current > 0 else 1.0
        for v in vel:
            v[0] *= factor
            v[1] *= factor
            v[2] *= factor
    state["forces"] = new_forces
    state["potential"] = potential


# ----------------------------------------------------------------------------------------------- ranks


def _rank_port() -> int:
    return int(os.environ.get("STEPSPOT_MPI_PORT", "7470")) + 1


def _send(connection: socket.socket, message: dict) -> None:
    connection.sendall((json.dumps(message) + "\n").encode())


class Ranks:
    """The main rank's view of the other ranks (one per node of the host file), over TCP."""

    def __init__(self, size: int, timeout: float = 120.0) -> None:
        self.size = size
        self.links: list[tuple[socket.socket, object]] = []
        with socket.create_server(("", _rank_port())) as server:
            server.settimeout(timeout)
            for rank in range(1, size):
                connection, _ = server.accept()
                _send(connection, {"rank": rank, "size": size})
                self.links.append((connection, connection.makefile("r", encoding="utf-8")))
        print(f"md.py: {size} ranks connected", flush=True)

    def forces(self, positions: list[list[float]], box: float) -> tuple[list[list[float]], float]:
        for connection, _ in self.links:
            _send(connection, {"positions": positions, "box": box})
        total, energy = forces(positions, box, rows=range(0, len(positions) - 1, self.size))
        for _, reader in self.links:
            part = json.loads(reader.readline())  # type: ignore[attr-defined]
            energy += part["energy"]
            for mine, theirs in zip(total, part["forces"], strict=True):
                mine[0] += theirs[0]
                mine[1] += theirs[1]
                mine[2] += theirs[2]
        return total, energy

    def close(self) -> None:
        for connection, _ in self.links:
            with contextlib.suppress(OSError):  # a rank that already ended needs no stop
                _send(connection, {"stop": True})
            connection.close()


def mpi_size() -> int:
    """Nodes in the host file the main node of a multi-node task gets (1 when there is none)."""
    hostfile = os.environ.get("STEPSPOT_MPI_HOSTFILE")
    if not hostfile or not Path(hostfile).is_file():
        return 1
    return len([line for line in Path(hostfile).read_text().splitlines() if line.strip()])


def rank(_args: argparse.Namespace) -> int:
    """A worker rank: compute the forces of this rank's share of pairs until the main rank stops."""
    main_address = os.environ.get("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS", "127.0.0.1")
    deadline = time.monotonic() + 120
    while True:
        try:
            connection = socket.create_connection((main_address, _rank_port()), timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                print(f"md.py rank: main rank {main_address}:{_rank_port()} did not answer", flush=True)
                return 1
            time.sleep(0.2)
    connection.settimeout(None)
    reader = connection.makefile("r", encoding="utf-8")
    me, size, steps = 0, 1, 0
    for line in reader:
        message = json.loads(line)
        if "rank" in message:
            me, size = message["rank"], message["size"]
        elif "positions" in message:
            part, energy = forces(
                message["positions"], message["box"], rows=range(me, len(message["positions"]) - 1, size)
            )
            _send(connection, {"forces": part, "energy": energy})
            steps += 1
        else:
            break
    print(f"md.py rank {me}/{size}: computed forces for {steps} steps", flush=True)
    return 0


# ----------------------------------------------------------------------------------------------- files


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        sys.exit(f"md.py: input {path} does not exist: run the previous stage first")


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)  # atomic: readers (and the checkpoint agent) never see half a file


def request_checkpoint() -> bool:
    """Ask the checkpoint agent to save now and wait for its answer: True when the answer was the
    notice signal (SIGTERM: a Spot interruption is coming, write and stop)."""
    agent = os.environ.get("STEPSPOT_AGENT_PID")
    if not agent:
        return False
    answers = {signal.SIGUSR2, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, answers)  # so neither answer is lost before we wait
    try:
        os.kill(int(agent), signal.SIGUSR1)
        answer = signal.sigtimedwait(answers, 600)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, answers)
    return answer is not None and answer.si_signo == signal.SIGTERM


def checkpoint_dir() -> Path:
    directory = Path(os.environ.get("STEPSPOT_CHECKPOINT_DIR", "checkpoint"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


# ---------------------------------------------------------------------------------------------- stages


def preprocess(args: argparse.Namespace) -> int:
    positions, box = lattice(args.particles, args.density)
    rng = random.Random(args.seed)
    velocities = [[rng.gauss(0, 1) for _ in range(3)] for _ in positions]
    drift = [sum(v[k] for v in velocities) / len(velocities) for k in range(3)]
    velocities = [[v[k] - drift[k] for k in range(3)] for v in velocities]
    write_json(args.output, {"box": box, "positions": positions, "velocities": velocities})
    print(f"md.py preprocess: {len(positions)} particles, box {box:.3f}", flush=True)
    return 0


def simulate(args: argparse.Namespace, thermostat: float | None) -> int:
    directory = checkpoint_dir()
    saved = directory / STATE_FILE
    if saved.exists():
        state = json.loads(saved.read_text())
        print(f"md.py: resuming at step {state['step']} of {args.steps} from {saved}", flush=True)
    else:
        system = read_json(args.input)
        rng = random.Random(args.seed)
        velocities = [[v[k] * (1 + 0.01 * rng.uniform(-1, 1)) for k in range(3)] for v in system["velocities"]]
        f, potential = forces(system["positions"], system["box"])
        state = {
            "step": 0,
            "box": system["box"],
            "positions": system["positions"],
            "velocities": velocities,
            "forces": f,
            "potential": potential,
            "energies": [],
        }
    requested = {"write": False, "stop": False}

    def on_signal(signum: int, _frame: object) -> None:
        requested["write"] = True
        requested["stop"] = requested["stop"] or signum == signal.SIGTERM

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGUSR1, on_signal)
    signal.signal(signal.SIGUSR2, lambda *_: None)  # the agent's "saved" answer (awaited in request_checkpoint)
    if args.save_every:
        # Ask at once (the start state), so the agent's own timer is off before anything new is written.
        write_json(saved, state)
        if request_checkpoint():
            print(f"md.py: stopped at step {state['step']} on request", flush=True)
            return 128 + signal.SIGTERM
    started = time.monotonic()
    size = mpi_size()
    ranks = Ranks(size) if size > 1 else None
    try:
        return _steps(args, state, saved, thermostat, requested, started, ranks)
    finally:
        if ranks is not None:
            ranks.close()


def _steps(
    args: argparse.Namespace,
    state: dict,
    saved: Path,
    thermostat: float | None,
    requested: dict,
    started: float,
    ranks: Ranks | None,
) -> int:
    compute = ranks.forces if ranks is not None else forces
    while state["step"] < args.steps:
        verlet(state, args.dt, thermostat, compute)
        state["step"] += 1
        if state["step"] % 10 == 0:
            total = state["potential"] + kinetic(state["velocities"])
            state["energies"].append(round(total / len(state["positions"]), 6))
        save_point = bool(args.save_every) and state["step"] % args.save_every == 0 and state["step"] < args.steps
        if state["step"] % args.checkpoint_every == 0 or requested["write"] or save_point:
            write_json(saved, state)
            requested["write"] = False
            if save_point and request_checkpoint():  # answered with the notice: one more step, write, stop
                requested["write"] = requested["stop"] = True
                continue
            if requested["stop"]:
                print(f"md.py: checkpointed step {state['step']}, stopping on request", flush=True)
                return 128 + signal.SIGTERM
    write_json(saved, state)
    energies = state["energies"]
    temperature = 2 * kinetic(state["velocities"]) / (3 * len(state["velocities"]))
    result = {
        "box": state["box"],
        "positions": state["positions"],
        "velocities": state["velocities"],
        "steps": state["step"],
        "energy_per_particle": energies,
        "temperature": round(temperature, 6),
        "seconds": round(time.monotonic() - started, 3),
        "ranks": ranks.size if ranks is not None else 1,
    }
    write_json(args.output, result)
    print(
        f"md.py: {state['step']} steps done on {result['ranks']} rank(s), T={temperature:.3f}, "
        f"E/N={energies[-1] if energies else 0}",
        flush=True,
    )
    return 0


def analyse(args: argparse.Namespace) -> int:
    runs = [read_json(path) for path in args.inputs]
    summary = {"runs": []}
    for path, run in zip(args.inputs, runs, strict=True):
        energies = run["energy_per_particle"] or [0.0]
        mean = sum(energies) / len(energies)
        spread = math.sqrt(sum((e - mean) ** 2 for e in energies) / len(energies))
        summary["runs"].append(
            {
                "input": str(path),
                "steps": run["steps"],
                "mean_energy": round(mean, 6),
                "energy_drift": round(energies[-1] - energies[0], 6),
                "energy_stddev": round(spread, 6),
                "temperature": run["temperature"],
            }
        )
    write_json(args.output, summary)
    print(f"md.py analyse: {json.dumps(summary['runs'])}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="stage", required=True)
    pre = sub.add_parser("preprocess")
    pre.add_argument("--particles", type=int, default=64)
    pre.add_argument("--density", type=float, default=0.8)
    pre.add_argument("--seed", type=int, default=1)
    pre.add_argument("--output", type=Path, required=True)
    for name in ("equilibrate", "produce"):
        stage = sub.add_parser(name)
        stage.add_argument("--input", type=Path, required=True)
        stage.add_argument("--output", type=Path, required=True)
        stage.add_argument("--steps", type=int, default=200)
        stage.add_argument("--dt", type=float, default=0.004)
        stage.add_argument("--seed", type=int, default=1)
        stage.add_argument("--checkpoint-every", type=int, default=20)
        stage.add_argument("--save-every", type=int, default=0, help="ask the agent to upload every N steps")
        if name == "equilibrate":
            stage.add_argument("--temperature", type=float, default=1.0)
    sub.add_parser("rank", help="a worker rank of a multi-node stage (STEPSPOT_MPI_WORKER_COMMAND)")
    ana = sub.add_parser("analyse")
    ana.add_argument("--inputs", type=Path, nargs="+", required=True)
    ana.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.stage == "preprocess":
        return preprocess(args)
    if args.stage == "equilibrate":
        return simulate(args, thermostat=args.temperature)
    if args.stage == "produce":
        return simulate(args, thermostat=None)
    if args.stage == "rank":
        return rank(args)
    return analyse(args)


if __name__ == "__main__":
    sys.exit(main())
