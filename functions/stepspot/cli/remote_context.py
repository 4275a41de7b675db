"""What every remote command shares: the `--env` option, the deployment, boto3 clients, workflow ids."""

from __future__ import annotations

import argparse
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import boto3

from stepspot.aws.executions import RESUBMIT_SEPARATOR, WorkflowExecutions
from stepspot.aws.workflow_records import WorkflowRecords
from stepspot.cli.commands import MAX_WORKFLOW_ID_LENGTH
from stepspot.deployment import Deployment, load_deployment
from stepspot.errors import FatalError

WORKFLOW_ID_RE = re.compile(rf"^[A-Za-z0-9_-]{{1,{MAX_WORKFLOW_ID_LENGTH}}}$")
EXECUTION_ARN_RE = re.compile(r"^arn:aws[\w-]*:states:[\w-]+:\d{12}:execution:[^:]+:(?P<name>[^:]+)$")


def workflow_id_from(value: str) -> str:
    """A workflow id, accepting an execution ARN (its name, minus any resubmission suffix)."""
    match = EXECUTION_ARN_RE.match(value.strip())
    name = match.group("name") if match else value.strip()
    base, separator, suffix = name.rpartition(RESUBMIT_SEPARATOR)
    if separator and suffix.isdigit():
        name = base
    if not WORKFLOW_ID_RE.match(name):
        raise FatalError(
            f"{value!r} is not a workflow id: ids are 1-{MAX_WORKFLOW_ID_LENGTH} letters, digits, '-' or '_' "
            "(`stepspot status` lists the recent ones)."
        )
    return name


def new_workflow_id(workflow_name: str, now: datetime | None = None) -> str:
    """`<slug of the name>-<UTC time>-<4 hex>`: readable, sortable, and unique without a lookup."""
    slug = re.sub(r"[^a-z0-9]+", "-", workflow_name.lower()).strip("-")[:36].rstrip("-") or "workflow"
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"{slug}-{stamp}-{secrets.token_hex(2)}"


@dataclass
class RemoteContext:
    """The deployment of one environment and the clients to reach it (created on first use)."""

    deployment: Deployment
    _clients: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RemoteContext:
        return cls(load_deployment(args.env, environ=os.environ, cwd=Path.cwd()))

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(service)  # type: ignore[call-overload]
        return self._clients[service]

    @cached_property
    def _session(self) -> boto3.session.Session:
        return boto3.session.Session(region_name=self.deployment.region)

    @cached_property
    def executions(self) -> WorkflowExecutions:
        return WorkflowExecutions(self.client("stepfunctions"), self.deployment.workflow_state_machine_arn)

    @cached_property
    def records(self) -> WorkflowRecords:
        return WorkflowRecords(
            self.client("dynamodb"), self.deployment.state_table_name, self.deployment.checkpoint_table_name
        )


EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def usage_errors_exit_2(handler: Any) -> Any:
    """Wrap a command handler: an unknown workflow or a malformed id is bad input (exit 2)."""
    from functools import wraps

    from stepspot.cli.output import err_console
    from stepspot.errors import WorkflowNotFoundError

    @wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return int(handler(args))
        except WorkflowNotFoundError as exc:
            err_console.print(f"stepspot: {exc.message}", highlight=False, soft_wrap=True)
            return EXIT_USAGE

    return run
