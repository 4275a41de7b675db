"""Multi-node (MPI) jobs: the main node runs the task's command, the other nodes serve it. Standard library.

AWS Batch starts every node of a multi-node parallel job with the same command and tells each which it
is: ``AWS_BATCH_JOB_NUM_NODES``, ``AWS_BATCH_JOB_NODE_INDEX``, ``AWS_BATCH_JOB_MAIN_NODE_INDEX``, and on
the nodes other than the main one ``AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS``. The attempt manager
wraps a multi-node task's command as ``stepspot-agent mpi -- CMD`` (CMD being ``stepspot-agent run --
...`` when the task checkpoints), and this module makes the roles differ:

- a worker node connects to the main node (``STEPSPOT_MPI_PORT``, default 7470), reports its address
  and slots (vCPUs), starts ``STEPSPOT_MPI_WORKER_COMMAND`` if the task sets one (an ``sshd -D`` for
  ``mpirun``, or the program's own rank server), and waits until the main node says it ended; it never
  runs CMD, so it never checkpoints;
- the main node waits for every worker (``STEPSPOT_MPI_RENDEZVOUS_SECONDS``, default 600), writes the
  host file (OpenMPI syntax, ``ADDRESS slots=N``, main first, then by node index) to
  ``STEPSPOT_MPI_HOSTFILE`` (default under the temp directory), runs CMD with ``STEPSPOT_MPI_HOSTFILE``,
  ``STEPSPOT_MPI_HOSTS`` and ``STEPSPOT_MPI_NUM_NODES`` set (and Open MPI's default host file variables,
  so ``mpirun`` finds the nodes), tells the workers its exit code and exits with it (Batch takes the
  main node's exit code as the job's).

A single-node job (no ``AWS_BATCH_JOB_NUM_NODES`` or 1) runs CMD unchanged.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PORT = 7470
DEFAULT_RENDEZVOUS_SECONDS = 600.0
EXIT_RENDEZVOUS_FAILED = 75  # sysexits EX_TEMPFAIL: a node did not report in time (a retry may succeed)
EXIT_USAGE = 64
USAGE = "usage: stepspot-agent mpi -- COMMAND [ARG...] (the command the main node runs)"
HELP = (
    "In an AWS Batch multi-node parallel job, the main node waits for the other nodes, writes the host file\n"
    "($STEPSPOT_MPI_HOSTFILE) and runs COMMAND; the other nodes report their address, run\n"
    "$STEPSPOT_MPI_WORKER_COMMAND if set, and wait for the main node to end. A single-node job runs COMMAND."
)


@dataclass(frozen=True)
class NodeRole:
    """Which node this is, from the Batch node environment."""

    index: int
    count: int
    main_index: int
    main_address: str | None
    port: int
    rendezvous_seconds: float

    @property
    def is_main(self) -> bool:
        return self.index == self.main_index

    @property
    def multi_node(self) -> bool:
        return self.count > 1


def node_role(environ: Mapping[str, str]) -> NodeRole:
    """The node's role; ``ValueError`` with a sentence when the variables are inconsistent."""

    def number(name: str, default: int) -> int:
        text = environ.get(name, "").strip()
        if not text:
            return default
        if not text.isdigit():
            raise ValueError(f"{name}={text!r} is not a whole number")
        return int(text)

    count = number("AWS_BATCH_JOB_NUM_NODES", 1)
    index = number("AWS_BATCH_JOB_NODE_INDEX", 0)
    main_index = number("AWS_BATCH_JOB_MAIN_NODE_INDEX", 0)
    if count > 1 and not (0 <= index < count and 0 <= main_index < count):
        raise ValueError(f"node index {index} or main node index {main_index} is outside 0..{count - 1}")
    main_address = environ.get("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS") or None
    if count > 1 and index != main_index and main_address is None:
        raise ValueError("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS is not set on a node other than the main one")
    rendezvous = float(environ.get("STEPSPOT_MPI_RENDEZVOUS_SECONDS", DEFAULT_RENDEZVOUS_SECONDS))
    return NodeRole(index, count, main_index, main_address, number("STEPSPOT_MPI_PORT", DEFAULT_PORT), rendezvous)


@dataclass(frozen=True)
class NodeReport:
    index: int
    address: str
    slots: int


def hostfile_text(reports: Sequence[NodeReport], main_index: int) -> str:
    """OpenMPI host file: the main node first, then the others by node index."""
    ordered = sorted(reports, key=lambda r: (r.index != main_index, r.index))
    return "".join(f"{r.address} slots={r.slots}\n" for r in ordered)


def _slots(environ: Mapping[str, str]) -> int:
    text = environ.get("STEPSPOT_MPI_SLOTS", "")
    return int(text) if text.isdigit() else os.cpu_count() or 1


def _log(message: str) -> None:
    print(f"stepspot-agent mpi: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------- main node


def run_main(role: NodeRole, command: Sequence[str], environ: Mapping[str, str]) -> int:
    deadline = time.monotonic() + role.rendezvous_seconds
    workers: list[tuple[socket.socket, NodeReport]] = []
    with socket.create_server(("", role.port), reuse_port=False, backlog=role.count) as server:
        server.settimeout(1.0)
        own_address = "127.0.0.1"
        while len(workers) < role.count - 1:
            if time.monotonic() > deadline:
                missing = sorted(set(range(role.count)) - {role.index} - {r.index for _, r in workers})
                _log(f"nodes {missing} did not report within {role.rendezvous_seconds:.0f} s; giving up")
                for connection, _ in workers:
                    connection.close()
                return EXIT_RENDEZVOUS_FAILED
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            connection.settimeout(role.rendezvous_seconds)
            line = connection.makefile("r", encoding="utf-8").readline()
            try:
                report = json.loads(line)
                node = NodeReport(int(report["index"]), str(report["address"]), int(report["slots"]))
            except (ValueError, KeyError, TypeError):
                _log(f"ignored a malformed report {line[:100]!r}")
                connection.close()
                continue
            own_address = connection.getsockname()[0]  # how the workers reach this node
            workers.append((connection, node))
    reports = [NodeReport(role.index, own_address, _slots(environ)), *(r for _, r in workers)]
    hostfile = Path(environ.get("STEPSPOT_MPI_HOSTFILE") or Path(tempfile.gettempdir()) / "stepspot-mpi-hostfile")
    hostfile.parent.mkdir(parents=True, exist_ok=True)
    hostfile.write_text(hostfile_text(reports, role.main_index), encoding="utf-8")
    hosts = [line.split()[0] for line in hostfile.read_text(encoding="utf-8").splitlines()]
    _log(f"{role.count} nodes reported ({', '.join(hosts)}); host file {hostfile}")
    env = {
        # Open MPI's launchers read their default host file from these (4.x: orte, 5.x: prte), so a
        # plain exec-form `mpirun ...` uses it without a shell to expand $STEPSPOT_MPI_HOSTFILE.
        "OMPI_MCA_orte_default_hostfile": str(hostfile),
        "PRTE_MCA_prte_default_hostfile": str(hostfile),
        **environ,
        "STEPSPOT_MPI_HOSTFILE": str(hostfile),
        "STEPSPOT_MPI_HOSTS": ",".join(hosts),
        "STEPSPOT_MPI_NUM_NODES": str(role.count),
    }
    code = _run_forwarding_signals(command, env)
    for connection, _ in workers:
        with contextlib.suppress(OSError):  # a worker that already went away needs no answer
            connection.sendall((json.dumps({"exit": code}) + "\n").encode())
        connection.close()
    return code


def _run_forwarding_signals(command: Sequence[str], env: Mapping[str, str]) -> int:
    try:
        process = subprocess.Popen(list(command), env=dict(env))
    except OSError as exc:
        _log(f"cannot start {command[0]!r}: {exc}")
        return 127

    def forward(signum: int, _frame: object) -> None:
        process.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)}
    try:
        return process.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


# ------------------------------------------------------------------------------------- worker nodes


def run_worker(role: NodeRole, environ: Mapping[str, str]) -> int:
    assert role.main_address is not None
    deadline = time.monotonic() + role.rendezvous_seconds
    connection: socket.socket | None = None
    while connection is None:
        try:
            connection = socket.create_connection((role.main_address, role.port), timeout=5)
        except OSError:
            if time.monotonic() > deadline:
                _log(f"main node {role.main_address}:{role.port} did not answer within {role.rendezvous_seconds:.0f} s")
                return EXIT_RENDEZVOUS_FAILED
            time.sleep(0.2)
    address = connection.getsockname()[0]
    server = _start_worker_command(environ)
    report = {"index": role.index, "address": address, "slots": _slots(environ)}
    connection.sendall((json.dumps(report) + "\n").encode())
    connection.settimeout(None)
    _log(f"node {role.index} ({address}) reported to the main node; waiting for it to end")
    line = connection.makefile("r", encoding="utf-8").readline()
    connection.close()
    if server is not None and server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    try:
        main_code = json.loads(line)["exit"] if line else None
    except (ValueError, KeyError, TypeError):
        main_code = None
    _log(f"node {role.index}: the main node ended (exit code {main_code})")
    return 0  # Batch takes the main node's exit code as the job's; a worker only has to end


def _start_worker_command(environ: Mapping[str, str]) -> subprocess.Popen[bytes] | None:
    text = environ.get("STEPSPOT_MPI_WORKER_COMMAND", "").strip()
    if not text:
        return None
    return subprocess.Popen(shlex.split(text), env=dict(environ))


# ------------------------------------------------------------------------------------------- entry


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """``stepspot-agent mpi -- CMD...``"""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["mpi"]:
        args = args[1:]
    if args[:1] in (["-h"], ["--help"]):  # a request for help, not a command of that name
        print(f"{USAGE}\n\n{HELP}")
        return 0
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        _log(USAGE)
        return EXIT_USAGE
    env = dict(os.environ if environ is None else environ)
    try:
        role = node_role(env)
    except ValueError as exc:
        _log(f"{exc}: run this inside an AWS Batch multi-node parallel job")
        return EXIT_USAGE
    if not role.multi_node:
        return _run_forwarding_signals(args, env)
    if role.is_main:
        return run_main(role, args, env)
    return run_worker(role, env)
