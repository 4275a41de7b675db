"""AWS Batch on one machine: each job is a real subprocess (the container command runs on the host).

``LocalBatch`` is what moto's interpreter gets as its Batch client (``submit_job``, ``describe_jobs``).
It walks each job through Batch's states (SUBMITTED, RUNNABLE, STARTING, RUNNING, SUCCEEDED/FAILED),
limits how many run at once, and reports failures as Batch does, so they travel the same ASL paths:

- a non-zero exit: ``Essential container in task exited`` with the exit code;
- an injected Spot reclaim: an interruption notice on the job's IMDS endpoint and an EventBridge
  warning, then (two scaled minutes later) the process group is killed and the attempt fails with
  ``Host EC2 (instance i-...) terminated.``;
- an injected capacity shortage: Spot jobs stay RUNNABLE with ``CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY``
  until the queue's time limit cancels them (``Canceled by JobStateTimeLimit action ...``);
- a job whose processes use more memory than it asked for (``MEMORY`` resource requirement, resident
  memory of its process group, as the container's cgroup counts it) is killed: exit code 137 with
  ``OutOfMemoryError: Container killed due to memory usage``.

A multi-node job runs as one process per node, each with the Batch node variables
(``AWS_BATCH_JOB_NUM_NODES``, ``AWS_BATCH_JOB_NODE_INDEX``, ``AWS_BATCH_JOB_MAIN_NODE_INDEX``, and on the
other nodes ``AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS`` = 127.0.0.1); the job ends with the main
node's exit code.

Every attempt gets a fresh checkpoint directory and a fresh private working directory (a new host, a new
container), so a resumed task really restores from the checkpoint store and a task sees another task's
files only through its declared inputs, staged through the emulated S3 by the agent, as on AWS. The
shared file system exists only for a workflow that enables it (``STEPSPOT_SHARED_DIR`` in the job's
environment): the run's ``shared/`` directory stands for the mount path, which is rewritten in the
command and the environment values. Each job can reach the local S3/DynamoDB (``AWS_ENDPOINT_URL``) and
its own IMDS.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stepspot.events import BATCH_JOB_STATE_CHANGE, SPOT_INTERRUPTION_WARNING
from stepspot.fleet import runner_invocation, runner_program
from stepspot.job_environment import CHECKPOINT_ENABLED_VARIABLE, TASK_ID_VARIABLE, WORKFLOW_ID_VARIABLE
from stepspot.local.events import EventBus
from stepspot.local.faults import (
    CAPACITY_TIME_LIMIT_SECONDS,
    MIN_NOTICE_REAL_SECONDS,
    SPOT_NOTICE_SECONDS,
    Faults,
)
from stepspot.local.runner import Runner

INJECTED_FAILURE = [
    sys.executable,
    "-c",
    "import sys; sys.stderr.write('stepspot local: injected application failure\\n'); sys.exit(3)",
]
TERMINAL = ("SUCCEEDED", "FAILED")
CHECKPOINT_SAVED = re.compile(r"\bcheckpoint (\d+) saved\b")  # the agent's log line per saved checkpoint
AGENT_STARTED = re.compile(r"stepspot-agent INFO started .* \(pid \d+\)")
SPOT_NOTICE_LINE = "stepspot local: Spot interruption notice"  # told to output listeners, not printed
LONG_POLL_SECONDS = 0.5
MEMORY_POLL_SECONDS = 0.1
# How often the run's local servers (the IMDS here, the emulator's) notice a shutdown: the standard
# library's serve_forever polls every 0.5 s, up to half a second on every run's way out.
SHUTDOWN_POLL_SECONDS = 0.05
OUT_OF_MEMORY_REASON = "OutOfMemoryError: Container killed due to memory usage"
EXIT_KILLED = 137  # 128 + SIGKILL, what ECS reports for a container the kernel's OOM killer ended
LOCAL_MAIN_NODE_ADDRESS = "127.0.0.1"


def _get(mapping: Mapping[str, Any] | None, name: str) -> Any:
    """Case-insensitive field access: the interpreter may hand over PascalCase or camelCase."""
    if not mapping:
        return None
    for key, value in mapping.items():
        if key.lower() == name.lower():
            return value
    return None


def _environment_list(items: Any) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items or []:
        name, value = _get(item, "name"), _get(item, "value")
        if name is not None:
            env[str(name)] = "" if value is None else str(value)
    return env


@dataclass
class LocalJob:
    job_id: str
    job_name: str
    queue: str
    definition: str
    command: list[str]
    environment: dict[str, str]
    spot: bool
    num_nodes: int = 1
    vcpus: int = 1
    memory_mib: int | None = None
    container_reason: str | None = None  # attempts[].container.reason (e.g. the OOM kill)
    node_processes: list[subprocess.Popen[bytes]] = field(default_factory=list)  # nodes other than the main
    mpi_port: int = 0
    status: str = "SUBMITTED"
    status_reason: str | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    stopped_at: float | None = None
    exit_code: int | None = None
    instance_id: str = field(default_factory=lambda: "i-" + secrets.token_hex(8) + "0")
    reclaimed: bool = False
    notice_at: float | None = None
    notice_lead: float = 0.0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    work_dir: Path | None = None
    reclaim_after: int | None = None  # checkpoints before the injected notice (None: not reclaimed)
    checkpoints_saved: int = 0
    notice_told: bool = False  # the output listeners heard of the notice
    sequence_at_start: int = 0  # the task's latest checkpoint sequence when this attempt started
    timers: list[threading.Timer] = field(default_factory=list)
    # Set once the job is SUCCEEDED or FAILED: the one thing a long poll of DescribeJobs waits for.
    ended: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    @property
    def task_id(self) -> str:
        return self.environment.get(TASK_ID_VARIABLE, "")

    @property
    def workflow_id(self) -> str:
        return self.environment.get(WORKFLOW_ID_VARIABLE, "")

    @property
    def attempt(self) -> int:
        return int(self.environment.get("STEPSPOT_ATTEMPT", "1") or 1)

    def describe(self) -> dict[str, Any]:
        """DescribeJobs shape (camelCase, as boto3 returns it)."""

        def ms(t: float | None) -> int | None:
            return int(t * 1000) if t else None

        container: dict[str, Any] = {
            "command": self.command,
            "environment": [{"name": k, "value": v} for k, v in sorted(self.environment.items())],
            "logStreamName": str(self.log_path) if self.log_path else None,
        }
        if self.exit_code is not None:
            container["exitCode"] = self.exit_code
        if self.container_reason:
            container["reason"] = self.container_reason
        description: dict[str, Any] = {
            "jobArn": f"arn:aws:batch:us-east-1:123456789012:job/{self.job_id}",
            "jobName": self.job_name,
            "jobId": self.job_id,
            "jobQueue": self.queue,
            "jobDefinition": self.definition,
            "status": self.status,
            "createdAt": ms(self.created_at),
            "container": container,
            "attempts": [],
        }
        if self.status_reason:
            description["statusReason"] = self.status_reason
        if self.started_at:
            description["startedAt"] = ms(self.started_at)
        if self.stopped_at:
            description["stoppedAt"] = ms(self.stopped_at)
            if self.started_at:
                attempt_container = {
                    "containerInstanceArn": self.instance_id,
                    "logStreamName": container["logStreamName"],
                }
                if self.exit_code is not None:
                    attempt_container["exitCode"] = self.exit_code
                if self.container_reason:
                    attempt_container["reason"] = self.container_reason
                description["attempts"] = [
                    {
                        "container": attempt_container,
                        "startedAt": ms(self.started_at),
                        "stoppedAt": ms(self.stopped_at),
                        "statusReason": self.status_reason,
                    }
                ]
        if self.num_nodes > 1:
            description["nodeProperties"] = {"numNodes": self.num_nodes, "mainNode": 0}
        return description


# What the local IMDS reports, so the runner's interruption statistics (stepspot.run_health) work locally.
LOCAL_INSTANCE_TYPE = "local"
LOCAL_AVAILABILITY_ZONE = "local-1a"


class FakeImds(http.server.ThreadingHTTPServer):
    """Per-job instance metadata: ``/jobs/<job id>/latest/...`` (token, instance-id, instance-type,
    placement/availability-zone, spot/instance-action)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ImdsHandler)
        self.notices: dict[str, str] = {}
        self.instances: dict[str, str] = {}
        self.due: Callable[[str], None] | None = None  # posts a job's notice if its logical point has come
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS}, name="local-imds", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _ImdsHandler(http.server.BaseHTTPRequestHandler):
    server: FakeImds

    def log_message(self, format: str, *args: Any) -> None:  # silence the default stderr log
        pass

    def _job(self) -> tuple[str, str]:
        parts = self.path.split("/", 3)  # "", "jobs", id, rest
        if len(parts) < 4 or parts[1] != "jobs":
            return "", ""
        return parts[2], "/" + parts[3]

    def _reply(self, code: int, body: str = "") -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_PUT(self) -> None:
        _, rest = self._job()
        self._reply(200, "local-token") if rest == "/latest/api/token" else self._reply(404)

    def do_GET(self) -> None:
        job_id, rest = self._job()
        if rest == "/latest/meta-data/spot/instance-action" and self.server.due is not None:
            self.server.due(job_id)  # a notice due by now is posted before this answer
        if rest == "/latest/meta-data/spot/instance-action" and job_id in self.server.notices:
            self._reply(200, self.server.notices[job_id])
        elif rest == "/latest/meta-data/instance-id" and job_id in self.server.instances:
            self._reply(200, self.server.instances[job_id])
        elif rest == "/latest/meta-data/instance-type" and job_id in self.server.instances:
            self._reply(200, LOCAL_INSTANCE_TYPE)
        elif rest == "/latest/meta-data/placement/availability-zone" and job_id in self.server.instances:
            self._reply(200, LOCAL_AVAILABILITY_ZONE)
        else:
            self._reply(404)


class LocalBatch:
    def __init__(
        self,
        *,
        workdir: Path,
        base_environment: Mapping[str, str],
        faults: Faults,
        time_scale: float,
        expected_seconds: Callable[[str], float],
        spot_queues: set[str],
        max_parallel_jobs: int,
        runner: Runner,
        bus: EventBus | None = None,
        workflow_dir: Path | None = None,
        latest_checkpoint: Callable[[str, str], int | None] | None = None,
    ) -> None:
        self.workdir = workdir
        self.shared_dir = workdir / "shared"  # the shared file system, for workflows that enable it
        self._base_env = dict(base_environment)
        self.faults = faults
        self.time_scale = time_scale
        self._expected = expected_seconds
        self._spot_queues = spot_queues
        self._slots = threading.BoundedSemaphore(max_parallel_jobs)
        self.bus = bus
        self.runner = runner  # runs every wrapped command, as the container command does: never skipped
        self.workflow_dir = workflow_dir
        self.imds = FakeImds()
        self.imds.due = self._notice_if_due
        # (workflow, task) -> the latest checkpoint sequence in the store: the count that decides when an
        # injected notice comes, read when the agent asks IMDS (so the agent cannot outrun it).
        self._latest_checkpoint = latest_checkpoint
        self.jobs: dict[str, LocalJob] = {}
        self._hosts_named: Counter[tuple[str, int]] = Counter()  # (task, attempt) -> jobs submitted for it
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self.observers: list[Callable[[LocalJob], None]] = []
        # (job, line) for each line the job prints, and SPOT_NOTICE_LINE when its notice is given.
        self.output_listeners: list[Callable[[LocalJob, str], None]] = []
        # Gives a Spot job's host its container instance before its notice is published (local.instances).
        self.place_instance: Callable[[LocalJob], None] | None = None
        self._pid_order = _PidOrder()

    def start(self) -> None:
        self.imds.start()
        if _PROC.is_dir():  # Linux: resident memory per process session (no limit enforced elsewhere)
            threading.Thread(target=self._watch_memory, name="local-memory", daemon=True).start()

    # -- the Batch API the interpreter uses -------------------------------------------------------

    def submit_job(self, **params: Any) -> dict[str, Any]:
        queue = str(_get(params, "jobQueue"))
        overrides = _get(params, "containerOverrides")
        num_nodes = 1
        node_overrides = _get(params, "nodeOverrides")
        if node_overrides:
            num_nodes = int(_get(node_overrides, "numNodes") or 1)
            ranges = _get(node_overrides, "nodePropertyOverrides") or []
            overrides = _get(ranges[0], "containerOverrides") if ranges else {}
        command = [str(c) for c in (_get(overrides, "command") or [])]
        environment = _environment_list(_get(overrides, "environment"))
        requirements = {
            str(_get(r, "type")).upper(): str(_get(r, "value")) for r in _get(overrides, "resourceRequirements") or []
        }
        job = LocalJob(
            job_id=str(uuid.uuid4()),
            job_name=str(_get(params, "jobName")),
            queue=queue,
            definition=str(_get(params, "jobDefinition")),
            command=command,
            environment=environment,
            spot=queue.rsplit("/", 1)[-1] in self._spot_queues,
            num_nodes=num_nodes,
            vcpus=int(requirements.get("VCPU", "1")),
            memory_mib=int(requirements["MEMORY"]) if requirements.get("MEMORY", "").isdigit() else None,
        )
        with self._lock:
            # The host of an attempt is named after it (not at random): the same seed, the same story.
            same = self._hosts_named[(job.task_id, job.attempt)]  # counted, not searched: O(1) per submit
            self._hosts_named[(job.task_id, job.attempt)] += 1
            job.instance_id = "i-" + hashlib.sha256(f"{job.task_id}/{job.attempt}/{same}".encode()).hexdigest()[:17]
            self.jobs[job.job_id] = job
        self._transition(job, "SUBMITTED")
        threading.Thread(target=self._run, args=(job,), name=f"job-{job.job_name}", daemon=True).start()
        return {"JobId": job.job_id, "JobName": job.job_name, "jobId": job.job_id, "jobName": job.job_name}

    def describe_jobs(self, jobs: list[str], **_: Any) -> dict[str, Any]:
        """Long poll: while the one job asked about is still running, wait (up to ``LONG_POLL_SECONDS``)
        for its end instead of letting the interpreter spin on it. Each job has its own event: a shared
        condition woke every waiting execution (64 of them) at each of every job's five transitions."""
        with self._lock:
            found = [self.jobs[j] for j in jobs if j in self.jobs]
        if len(found) == 1:
            found[0].ended.wait(LONG_POLL_SECONDS)
        return {"jobs": [job.describe() for job in found]}

    def described(self, job_ids: list[str]) -> list[dict[str, Any]]:
        """DescribeJobs of the jobs among ``job_ids`` this Batch runs, at once (the handlers' calls)."""
        with self._lock:
            found = [self.jobs[j] for j in job_ids if j in self.jobs]
        return [job.describe() for job in found]

    def terminate_job(self, jobId: str, reason: str = "", **_: Any) -> dict[str, Any]:
        job = self.jobs.get(jobId)
        if job is not None:
            self._kill(job)
            if job.status not in TERMINAL:
                self._finish(job, "FAILED", reason or "Terminated by user", None)
        return {}

    # -- running jobs -----------------------------------------------------------------------------

    def _scaled(self, seconds: float) -> float:
        return seconds / self.time_scale

    def _run(self, job: LocalJob) -> None:
        self._transition(job, "RUNNABLE")
        if job.spot and self.faults.capacity_shortage:
            job.status_reason = (
                "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - Service cannot fulfill the capacity requested "
                "for instance type [c5.2xlarge]"
            )
            self._transition(job, "RUNNABLE")
            self._closing.wait(self._scaled(CAPACITY_TIME_LIMIT_SECONDS))
            self._finish(
                job,
                "FAILED",
                "Canceled by JobStateTimeLimit action due to reason: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
                None,
            )
            return
        with self._slots:
            if self._closing.is_set():
                self._finish(job, "FAILED", "Terminated: local engine stopped", None)
                return
            self._transition(job, "STARTING")
            self._execute(job)

    def job_dir(self, job: LocalJob) -> Path:
        """``tasks/<task>/attempt-<n>/`` under the run (the job id if the job is not a stepspot task)."""
        if not job.task_id:
            return self.workdir / "jobs" / job.job_id
        base = self.workdir / "tasks" / job.task_id / f"attempt-{job.attempt}"
        return base if not base.exists() else base.with_name(f"{base.name}-{job.job_id[:8]}")

    def _execute(self, job: LocalJob) -> None:
        job_dir = self.job_dir(job)
        checkpoint_dir = job_dir / "checkpoint"  # fresh per attempt: a new host has an empty disk
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        job.work_dir = job_dir / "work"  # private and fresh: another task's files arrive only as inputs
        job.work_dir.mkdir(parents=True, exist_ok=True)
        job.log_path = job_dir / "output.log"
        shared = self._shared_mapper(job.environment.get("STEPSPOT_SHARED_DIR", ""))
        env = {
            **self._base_env,
            **{name: shared(value) for name, value in job.environment.items()},
            "STEPSPOT_WORK_DIR": str(job.work_dir),
            "STEPSPOT_CHECKPOINT_DIR": str(checkpoint_dir),
            "STEPSPOT_IMDS_ENDPOINT": f"{self.imds.url}/jobs/{job.job_id}",
            "STEPSPOT_IMDS_POLL_INTERVAL": "0.1",
            "STEPSPOT_TIME_SCALE": str(self.time_scale),
            "AWS_BATCH_JOB_ID": job.job_id,
            # As in AWS: each task attempt is a new SubmitJob, whose Batch attempt starts at 1; Batch itself
            # retries only a container that never started, which local jobs do not emulate (their job
            # definitions have one attempt). The task's attempt is STEPSPOT_ATTEMPT (fleet.job_environment).
            "AWS_BATCH_JOB_ATTEMPT": "1",
            "AWS_BATCH_JQ_NAME": job.queue.rsplit("/", 1)[-1],
        }
        env["SHIV_ROOT"] = str(self.runner.shiv_root)  # not the container's /tmp path
        interval = job.environment.get("STEPSPOT_CHECKPOINT_INTERVAL", "")
        if interval.replace(".", "", 1).isdigit():  # seconds of simulated time: compress like every timer
            env["STEPSPOT_CHECKPOINT_INTERVAL"] = str(max(0.5, float(interval) / self.time_scale))
        if job.num_nodes > 1:
            env.update(self._node_environment(job, job_dir, 0))
        self.imds.instances[job.job_id] = job.instance_id
        command = [shared(argument) for argument in self._host_command(job)]
        if not command:
            job.started_at = time.time()
            self._finish(job, "FAILED", "CannotStartContainerError: the job has no command", None)
            return
        if self._latest_checkpoint is not None and self._checkpointing(job):  # no store to read otherwise
            job.sequence_at_start = self._latest_checkpoint(job.workflow_id, job.task_id) or 0
        if job.spot:
            job.reclaim_after = self.faults.reclaim_after(
                job.task_id, job.attempt, self._expected(job.task_id) * self.time_scale, self._planned_checkpoints(job)
            )
        with job.log_path.open("wb") as log:
            try:
                job.process = subprocess.Popen(
                    command,
                    cwd=job.work_dir,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                log.write(f"stepspot local: cannot start {command[0]}: {exc}\n".encode())
                job.started_at = time.time()
                self._finish(job, "FAILED", f"CannotStartContainerError: {exc}", None)
                return
            job.started_at = time.time()
            for index in range(1, job.num_nodes):
                job.node_processes.append(self._start_node(job, job_dir, env, command, index))
            self._transition(job, "RUNNING")
            reader = threading.Thread(
                target=self._copy_output, args=(job, log), name=f"out-{job.job_name}", daemon=True
            )
            reader.start()
            if job.reclaim_after == 0 and runner_program(job.command) is None:
                self._begin_reclaim(job, announce=True)  # under the agent: once it has restored and started the program
            code = job.process.wait()
            self._end_nodes(job)
            reader.join(timeout=5.0)
            if job.status in TERMINAL:  # terminated (TerminateJob) while it ran: already reported
                return
            if job.reclaim_after is not None and not self._closing.is_set():
                # A reclaim decided by the seed always happens, whatever the program's speed: if it
                # ended before its notice point, the host still goes before Batch hears of the exit.
                self._begin_reclaim(job, announce=True)
                self._closing.wait(max(0.0, (job.notice_at or time.time()) + job.notice_lead - time.time()))
                job.reclaimed = True
            for timer in job.timers:
                timer.cancel()
        if job.reclaimed:
            self._finish(job, "FAILED", f"Host EC2 (instance {job.instance_id}) terminated.", None)
        elif job.container_reason == OUT_OF_MEMORY_REASON:
            self._finish(job, "FAILED", "Essential container in task exited", EXIT_KILLED)
        elif self._closing.is_set() and code != 0:
            self._finish(job, "FAILED", "Terminated: local engine stopped", code)
        elif code == 0:
            self._finish(job, "SUCCEEDED", "Essential container in task exited", 0)
        else:
            self._finish(job, "FAILED", "Essential container in task exited", code)

    # -- multi-node jobs and memory ----------------------------------------------------------------

    def _node_environment(self, job: LocalJob, job_dir: Path, index: int) -> dict[str, str]:
        """The Batch node variables of node ``index`` (main node 0), plus the rendezvous port of this job."""
        if not job.mpi_port:
            job.mpi_port = _free_port()  # one rendezvous port per job, as every node of it uses
        env = {
            "AWS_BATCH_JOB_NUM_NODES": str(job.num_nodes),
            "AWS_BATCH_JOB_NODE_INDEX": str(index),
            "AWS_BATCH_JOB_MAIN_NODE_INDEX": "0",
            "STEPSPOT_MPI_PORT": str(job.mpi_port),
            "STEPSPOT_MPI_HOSTFILE": str(job_dir / "hostfile"),
            "STEPSPOT_MPI_SLOTS": str(job.vcpus),
        }
        if index:
            env["AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS"] = LOCAL_MAIN_NODE_ADDRESS
        worker = job.environment.get("STEPSPOT_MPI_WORKER_COMMAND")
        if worker:  # files next to the workflow stand for files in the image, as in the command
            env["STEPSPOT_MPI_WORKER_COMMAND"] = shlex.join(self._host_path(a) for a in shlex.split(worker))
        return env

    def _start_node(
        self, job: LocalJob, job_dir: Path, main_env: dict[str, str], command: list[str], index: int
    ) -> subprocess.Popen[bytes]:
        checkpoint_dir = job_dir / f"node-{index}" / "checkpoint"
        work_dir = job_dir / f"node-{index}" / "work"  # every node is its own container: its own files
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        work_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **main_env,
            **self._node_environment(job, job_dir, index),
            "STEPSPOT_CHECKPOINT_DIR": str(checkpoint_dir),
            "STEPSPOT_WORK_DIR": str(work_dir),
        }
        with (job_dir / f"node-{index}.log").open("wb") as log:
            return subprocess.Popen(
                command, cwd=work_dir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def _end_nodes(self, job: LocalJob) -> None:
        """The main node ended: Batch stops the others (they normally end by themselves when told)."""
        for process in job.node_processes:
            try:
                process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                _kill_group(process)

    def _watch_memory(self) -> None:
        """The cgroup memory limit: one scan of /proc per tick for all running jobs; a node whose processes
        hold more resident memory than the job asked for ends the job (exit 137, OutOfMemoryError)."""
        while not self._closing.wait(MEMORY_POLL_SECONDS):
            running = [
                (job, [job.process, *job.node_processes])  # each node a session of its own
                for job in list(self.jobs.values())
                if job.memory_mib is not None and job.process is not None and job.process.poll() is None
            ]
            if not running:
                continue
            sessions = {node.pid for _, nodes in running for node in nodes}
            rss = _rss_by_session(sessions, self._pid_order.oldest_possible(sessions))
            for job, nodes in running:
                assert job.memory_mib is not None
                if any(rss.get(node.pid, 0) > job.memory_mib * 1024 * 1024 for node in nodes):
                    job.container_reason = OUT_OF_MEMORY_REASON
                    for node in nodes:
                        _kill_group(node, signal.SIGKILL)

    def _shared_mapper(self, mount_path: str) -> Callable[[str], str]:
        """Rewrites the shared file system's mount path to the run's ``shared/`` directory (identity when off)."""
        if not mount_path:
            return lambda value: value
        self.shared_dir.mkdir(parents=True, exist_ok=True)
        pattern = re.compile(re.escape(mount_path.rstrip("/")) + r"(?![\w.-])")
        target = str(self.shared_dir)
        return lambda value: pattern.sub(lambda _: target, value)

    def _host_path(self, argument: str) -> str:
        """Files next to the workflow definition stand for files inside the container image."""
        if self.workflow_dir is None or argument.startswith("-") or os.path.isabs(argument):
            return argument
        candidate = self.workflow_dir / argument
        return str(candidate) if candidate.is_file() else argument

    def _host_command(self, job: LocalJob) -> list[str]:
        invocation = runner_invocation(job.command)
        if invocation is not None and invocation[0] == "mpi":  # multi-node roles around the task's own command
            wrapped = self._host_command(LocalJob(**{**job.__dict__, "command": invocation[1]}))
            return self.runner.command(wrapped, action="mpi")
        command = [self._host_path(arg) for arg in job.command]
        inject = self.faults.app_failure(job.task_id, job.attempt)
        program = runner_program(command)
        if program is not None:
            if inject:
                program = list(INJECTED_FAILURE)
            # The bundle under a clean python3 -I, as the container command runs it on AWS.
            return self.runner.command(program)
        return list(INJECTED_FAILURE) if inject else command

    @staticmethod
    def _checkpointing(job: LocalJob) -> bool:
        """Whether the job's runner saves checkpoints (the container command and environment say so)."""
        return runner_program(job.command) is not None and job.environment.get(CHECKPOINT_ENABLED_VARIABLE) == "true"

    def _planned_checkpoints(self, job: LocalJob) -> int:
        """Periodic checkpoints a whole run of the job's task saves (0 without the checkpoint agent)."""
        if not self._checkpointing(job):
            return 0
        interval = job.environment.get("STEPSPOT_CHECKPOINT_INTERVAL", "")
        seconds = float(interval) if interval.replace(".", "", 1).isdigit() else 600.0  # "auto": a guess
        return int(self._expected(job.task_id) * self.time_scale // max(seconds, 1.0))

    def _copy_output(self, job: LocalJob, log: Any) -> None:
        """The job's output into its log file, line by line; each saved checkpoint counts towards the
        attempt's notice point."""
        assert job.process is not None and job.process.stdout is not None
        for raw in job.process.stdout:
            log.write(raw)
            log.flush()
            line = raw.decode("utf-8", "replace").rstrip()
            for listener in self.output_listeners:
                listener(job, line)
            if job.reclaim_after == 0 and AGENT_STARTED.search(line):
                self._begin_reclaim(job, announce=True)
            if CHECKPOINT_SAVED.search(line):
                job.checkpoints_saved += 1
                if job.reclaim_after is not None and job.checkpoints_saved == job.reclaim_after:
                    # Posted already if the agent asked IMDS first; told here, after the line it follows.
                    self._begin_reclaim(job, announce=True)

    def _notice_if_due(self, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is None or not job.reclaim_after or job.notice_at is not None or self._latest_checkpoint is None:
            return
        saved = (self._latest_checkpoint(job.workflow_id, job.task_id) or 0) - job.sequence_at_start
        if saved >= job.reclaim_after:
            self._begin_reclaim(job)

    def _begin_reclaim(self, job: LocalJob, announce: bool = False) -> None:
        """The interruption notice now, the host two (scaled) minutes later. ``announce``: tell the
        output listeners (only from the thread that orders the job's lines: its reader, or its own)."""
        with self._lock:
            first = job.notice_at is None
            if first:
                job.notice_at = time.time()
            tell = announce and not job.notice_told
            job.notice_told = job.notice_told or tell
        if first:
            lead = max(self._scaled(SPOT_NOTICE_SECONDS), MIN_NOTICE_REAL_SECONDS)
            self._notice(job, lead)
            reclaim = threading.Timer(lead, self._reclaim, args=(job,))
            reclaim.daemon = True
            reclaim.start()
            job.timers.append(reclaim)
        if tell:
            for listener in self.output_listeners:
                listener(job, SPOT_NOTICE_LINE)

    def _notice(self, job: LocalJob, lead: float) -> None:
        job.notice_lead = lead
        job.notice_at = time.time()
        action_time = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + SPOT_NOTICE_SECONDS))
        self.imds.notices[job.job_id] = json.dumps({"action": "terminate", "time": action_time})
        if self.place_instance is not None:
            self.place_instance(job)
        if self.bus is not None:
            self.bus.publish(
                SPOT_INTERRUPTION_WARNING,
                {"instance-id": job.instance_id, "instance-action": "terminate"},
                [f"arn:aws:ec2:us-east-1:123456789012:instance/{job.instance_id}"],
            )

    def _reclaim(self, job: LocalJob) -> None:
        if job.process is None or job.process.poll() is not None:
            return
        job.reclaimed = True
        self._kill(job)

    def _kill(self, job: LocalJob) -> None:
        for process in job.node_processes:
            _kill_group(process)
        if job.process is not None:
            _kill_group(job.process)

    def _finish(self, job: LocalJob, status: str, reason: str, exit_code: int | None) -> None:
        job.stopped_at = time.time()
        job.exit_code = exit_code
        job.status_reason = reason
        self.imds.notices.pop(job.job_id, None)
        self._transition(job, status)

    def _transition(self, job: LocalJob, status: str) -> None:
        with self._lock:
            job.status = status
        if status in TERMINAL:
            job.ended.set()
        for observer in self.observers:
            observer(job)
        # As on AWS, "events aren't created for the initial job submission" (Batch user guide, job state
        # change events): the monitor hears of a job from RUNNABLE on.
        if self.bus is not None and status != "SUBMITTED":
            self.bus.publish(
                BATCH_JOB_STATE_CHANGE,
                job.describe(),
                [f"arn:aws:batch:us-east-1:123456789012:job/{job.job_id}"],
            )

    def close(self) -> None:
        """Stop every running job and the IMDS (engine shutdown): SIGTERM to every job's process
        group at once, SIGKILL to those still there a second later."""
        self._closing.set()
        running = [
            process
            for job in list(self.jobs.values())
            for process in (job.process, *job.node_processes)
            if process is not None and process.poll() is None
        ]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 1.0
        for process in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
        self.kill_all()
        with contextlib.suppress(Exception):
            self.imds.stop()

    def kill_all(self) -> None:
        """SIGKILL every job's process group still running (no waiting; safe from a signal handler)."""
        self._closing.set()
        for job in list(self.jobs.values()):
            for process in (*job.node_processes, job.process):
                if process is not None and process.poll() is None:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(process.pid, signal.SIGKILL)


_PROC = Path("/proc")


def _free_port() -> int:
    """A rendezvous port whose successor is free too (programs such as the MD example's ranks use
    ``STEPSPOT_MPI_PORT + 1``), below Linux's ephemeral range so outgoing connections cannot take it."""
    import random
    import socket

    for _ in range(200):
        port = random.randrange(20_000, 32_000, 2)
        try:
            with socket.socket() as first, socket.socket() as second:
                first.bind(("", port))
                second.bind(("", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no free pair of ports between 20000 and 32000 for a multi-node job")


def _kill_group(process: subprocess.Popen[bytes], first: signal.Signals = signal.SIGTERM) -> None:
    """Stop a job process and everything it started (its own session and process group)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, first)
        if first != signal.SIGKILL:
            try:
                process.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _rss_by_session(sessions: AbstractSet[int], oldest: int = 0) -> dict[int, int]:
    """Resident bytes of each of ``sessions`` (Linux /proc): what a container's cgroup would count of a
    job's processes. Processes with a pid below ``oldest`` are not read (``_PidOrder``): a scan reads the
    few processes started since the jobs, not every process of the machine (hundreds on a desktop)."""
    totals: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    with os.scandir(_PROC) as entries:
        for entry in entries:
            if not entry.name.isdigit() or int(entry.name) < oldest:
                continue
            try:
                with open(os.path.join(entry.path, "stat"), "rb") as stat_file:
                    stat = stat_file.read()
            except OSError:
                continue  # the process ended meanwhile
            fields = stat[stat.rfind(b")") + 2 :].split()
            # fields[3] is the session id (field 6 of proc(5)), fields[21] the resident pages (field 24)
            if len(fields) <= 21:
                continue
            session = int(fields[3])
            if session in sessions:
                totals[session] = totals.get(session, 0) + int(fields[21]) * page
    return totals


class _PidOrder:
    """The lowest pid a process of the given sessions can have. A session's processes all descend from
    its leader, whose pid is the session id, so they were given larger pids, unless the kernel's pids have
    wrapped around since (``ns_last_pid`` went down): from then on, or when that file cannot be read, any
    pid can be one of theirs."""

    def __init__(self) -> None:
        self._last_pid = -1
        self._wrapped = False

    def oldest_possible(self, sessions: AbstractSet[int]) -> int:
        try:
            last_pid = int((_PROC / "sys" / "kernel" / "ns_last_pid").read_text())
        except (OSError, ValueError):
            return 0
        self._wrapped = self._wrapped or last_pid < self._last_pid
        self._last_pid = last_pid
        return 0 if self._wrapped or not sessions else min(sessions)
