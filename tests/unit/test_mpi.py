"""Multi-node roles (stepspot.mpi): the main node runs the command with a host file, the others report
their address and wait; real processes over localhost."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from stepspot.mpi import NodeReport, hostfile_text, node_role


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_role_comes_from_the_batch_node_variables():
    main = node_role(
        {"AWS_BATCH_JOB_NUM_NODES": "3", "AWS_BATCH_JOB_NODE_INDEX": "0", "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0"}
    )
    assert main.is_main and main.multi_node and main.port == 7470
    worker = node_role(
        {
            "AWS_BATCH_JOB_NUM_NODES": "3",
            "AWS_BATCH_JOB_NODE_INDEX": "2",
            "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0",
            "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": "10.0.1.7",
        }
    )
    assert not worker.is_main and worker.main_address == "10.0.1.7"
    assert not node_role({}).multi_node


def test_inconsistent_node_variables_are_refused():
    with pytest.raises(ValueError, match="MAIN_NODE_PRIVATE_IPV4_ADDRESS is not set"):
        node_role({"AWS_BATCH_JOB_NUM_NODES": "2", "AWS_BATCH_JOB_NODE_INDEX": "1"})
    with pytest.raises(ValueError, match=r"outside 0\.\.1"):
        node_role({"AWS_BATCH_JOB_NUM_NODES": "2", "AWS_BATCH_JOB_NODE_INDEX": "5"})


def test_the_host_file_lists_the_main_node_first_then_by_index():
    reports = [NodeReport(2, "10.0.0.3", 8), NodeReport(1, "10.0.0.2", 8), NodeReport(0, "10.0.0.1", 4)]
    assert hostfile_text(reports, 0) == "10.0.0.1 slots=4\n10.0.0.2 slots=8\n10.0.0.3 slots=8\n"


def test_three_nodes_only_the_main_runs_the_command_and_its_exit_code_wins(tmp_path: Path):
    port = _free_port()
    marker = tmp_path / "ran"
    program = (
        "import os, pathlib, sys; "
        f"pathlib.Path({str(marker)!r}).open('a').write(os.environ['AWS_BATCH_JOB_NODE_INDEX'] + ' ' + "
        "os.environ['STEPSPOT_MPI_HOSTS'] + ' ' + os.environ['STEPSPOT_MPI_NUM_NODES'] + '\\n'); sys.exit(3)"
    )
    base = {
        **os.environ,
        "AWS_BATCH_JOB_NUM_NODES": "3",
        "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0",
        "STEPSPOT_MPI_PORT": str(port),
        "STEPSPOT_MPI_HOSTFILE": str(tmp_path / "hostfile"),
        "STEPSPOT_MPI_SLOTS": "2",
        "STEPSPOT_MPI_RENDEZVOUS_SECONDS": "30",
    }
    entry = [sys.executable, "-m", "stepspot.agent", "mpi", "--", sys.executable, "-c", program]
    nodes = []
    for index in (2, 1, 0):  # workers first: they wait for the main node to listen
        env = {**base, "AWS_BATCH_JOB_NODE_INDEX": str(index)}
        if index:
            env["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] = "127.0.0.1"
        nodes.append(subprocess.Popen(entry, env=env, stderr=subprocess.PIPE, text=True))
    codes = [node.wait(timeout=60) for node in nodes]
    assert codes == [0, 0, 3]  # workers end cleanly, the main node returns the command's exit code
    assert marker.read_text() == "0 127.0.0.1,127.0.0.1,127.0.0.1 3\n"  # only the main node ran it
    assert (tmp_path / "hostfile").read_text() == "127.0.0.1 slots=2\n" * 3
    assert "the main node ended (exit code 3)" in nodes[0].stderr.read()


def test_a_worker_whose_main_node_never_answers_gives_up(tmp_path: Path):
    env = {
        **os.environ,
        "AWS_BATCH_JOB_NUM_NODES": "2",
        "AWS_BATCH_JOB_NODE_INDEX": "1",
        "AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS": "127.0.0.1",
        "STEPSPOT_MPI_PORT": str(_free_port()),
        "STEPSPOT_MPI_RENDEZVOUS_SECONDS": "1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "stepspot.agent", "mpi", "--", "true"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 75
    assert "did not answer within 1 s" in done.stderr


def test_the_runners_help_lists_the_mpi_action_and_mpi_help_explains_it(capsys: pytest.CaptureFixture[str]):
    from stepspot.agent.cli import main

    with pytest.raises(SystemExit) as ended:
        main(["--help"])
    assert ended.value.code == 0
    assert "    mpi " in capsys.readouterr().out
    # `mpi --help` is a request for help, not a command named --help
    assert main(["mpi", "--help"]) == 0
    assert "usage: stepspot-agent mpi -- COMMAND [ARG...]" in capsys.readouterr().out
