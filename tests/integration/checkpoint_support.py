"""Shared helpers for the checkpoint tests: a moto server real subprocesses can reach, a fake IMDS.

Imported by tests/integration/test_checkpoint*.py and test_agent*.py, which also load it as a pytest plugin
(`pytest_plugins`) for its fixtures. PYTEST_DONT_REWRITE: it is imported before pytest could rewrite it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from stepspot.local.resources import create_table

if TYPE_CHECKING:
    from stepspot.agent import AgentSettings

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_PROGRAM = REPO / "examples" / "programs" / "heat_diffusion.py"
AGENT = Path(sys.executable).with_name("stepspot-agent")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A ThreadedMotoServer on localhost for the whole session; tests isolate by unique names."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@dataclass
class Store:
    endpoint: str
    bucket: str
    table: str
    s3: Any
    ddb: Any

    def env(self, directory: Path, workflow_id: str = "wf-1", task_id: str = "simulate") -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "AWS_ENDPOINT_URL": self.endpoint,
                "STEPSPOT_BUCKET": self.bucket,
                "STEPSPOT_CHECKPOINT_TABLE": self.table,
                "STEPSPOT_CHECKPOINT_DIR": str(directory),
                "STEPSPOT_WORKFLOW_ID": workflow_id,
                "STEPSPOT_TASK_ID": task_id,
                "STEPSPOT_IMDS_ENDPOINT": "off",
            }
        )
        return env


@pytest.fixture()
def store(moto_endpoint: str) -> Store:
    """A fresh bucket and checkpoint table on the shared moto server."""
    suffix = uuid.uuid4().hex[:10]
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    ddb = boto3.client("dynamodb", endpoint_url=moto_endpoint, region_name="us-east-1")
    bucket, table = f"ckpt-{suffix}", f"checkpoints-{suffix}"
    s3.create_bucket(Bucket=bucket)
    create_table(ddb, table)
    return Store(moto_endpoint, bucket, table, s3, ddb)


def agent_settings(endpoint: str, bucket: str, directory: Path, **fields: Any) -> AgentSettings:
    """The agent's settings as its command line would make them, for a run against ``endpoint`` (moto):
    no IMDS, no state table, short waits. ``fields`` set any other ``AgentSettings`` field."""
    from stepspot.agent import AgentSettings

    defaults: dict[str, Any] = {
        "workflow_id": "wf-1",
        "task_id": "simulate",
        "bucket": bucket,
        "table": "",
        "directory": directory,
        "interval": None,
        "mtbi": 3600.0,
        "notice_signal": signal.SIGTERM,
        "notice_grace": 1.0,
        "settle": 0.1,
        "stop_timeout": 1.0,
        "imds_endpoint": None,
        "imds_poll": 1.0,
        "endpoint_url": endpoint,
        "region": "us-east-1",
        "state_table": None,
        "save_on_success": False,
    }
    return AgentSettings(**{**defaults, **fields})


def staging_settings(
    endpoint: str, bucket: str, work: Path, task_id: str, outputs: Any = (), inputs: Any = (), workflow_id: str = "wf-1"
) -> AgentSettings:
    """Settings of a task that only stages data (no checkpointing): runs in ``work``, reads ``inputs``
    (the workflow's ``inputs`` entries) and publishes ``outputs`` (paths or globs)."""
    from stepspot.dataflow import parse_inputs

    return agent_settings(
        endpoint,
        bucket,
        work,
        workflow_id=workflow_id,
        task_id=task_id,
        checkpointing=False,
        work_dir=work,
        inputs=parse_inputs(list(inputs)),
        outputs=tuple(outputs),
        attempt="1",
    )


class FakeImds:
    """IMDSv2 on localhost: PUT token, then GET spot/instance-action (404 until ``post_notice``) and, when
    a ``placement`` (instance type, zone) is given, the instance's type and availability zone."""

    def __init__(self, placement: tuple[str, str] | None = None) -> None:
        self.notice: str | None = None
        self.token = uuid.uuid4().hex
        self.polls = 0
        self.unauthorised = 0
        self.metadata: dict[str, str] = {}
        if placement is not None:
            self.metadata = {
                "/latest/meta-data/instance-type": placement[0],
                "/latest/meta-data/placement/availability-zone": placement[1],
            }
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: str = "") -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:
                if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                    self._send(200, fake.token)
                else:
                    self._send(400)

            def do_GET(self) -> None:
                if self.headers.get("X-aws-ec2-metadata-token") != fake.token:
                    fake.unauthorised += 1
                    self._send(401)
                    return
                if self.path == "/latest/meta-data/spot/instance-action":
                    fake.polls += 1
                    if fake.notice is None:
                        self._send(404)
                    else:
                        self._send(200, fake.notice)
                elif self.path in fake.metadata:
                    self._send(200, fake.metadata[self.path])
                else:
                    self._send(404)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.endpoint = f"http://{host}:{port}"

    def post_notice(self) -> None:
        self.notice = json.dumps({"action": "terminate", "time": "2026-11-22T00:02:00Z"})

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture()
def imds() -> Iterator[FakeImds]:
    fake = FakeImds()
    yield fake
    fake.close()


def start_agent(args: list[str], env: dict[str, str], **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(AGENT), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    )


def run_agent(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(AGENT), *args], env=env, capture_output=True, text=True, timeout=timeout)
