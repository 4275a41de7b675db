"""stepspot-agent: the in-container checkpoint agent (standard library and boto3 only).

``stepspot-agent run -- CMD ARGS...`` restores the task's latest valid checkpoint into
``$STEPSPOT_CHECKPOINT_DIR``, runs the program, checkpoints the directory every interval (only changed
files are sent), and on a Spot interruption notice (IMDS ``spot/instance-action``, polled every 5 s
with an IMDSv2 token) or SIGTERM tells the program (a configurable signal), waits a bounded time for it
to write, and uploads at once. It exits with the program's exit code, except after an IMDS notice: then
a failed program's exit is held until the host is reclaimed (so AWS Batch reports ``Host EC2 (instance
i-...) terminated.``, a Spot reclaim, not an application error), at most ``--reclaim-wait`` seconds
from the notice, after which the agent exits with 79. See docs/checkpoints.md.

A checkpoint save that fails also prints one JSON line on stderr,
``{"stepspot_event": "checkpoint_failed", "environment": ..., "workflow_id": ..., "task_id": ...,
"trigger": ..., "reason": ...}`` (``environment`` from ``STEPSPOT_ENVIRONMENT``): the agent has no
Powertools, so a CloudWatch Logs metric filter on the job log group turns these lines into the
``CheckpointsFailed`` metric that the "checkpoints-failing" alarm reads.

Exit codes of the agent itself (the program's own code is forwarded otherwise):

  64  usage: a required id, bucket, table or the command is missing, or a flag is malformed
  65  unknown workflow (only checked when a state table is given)
  66  the checkpoint directory cannot be created, read or written
  69  the checkpoint bucket or table does not exist
  70  internal error (a bug: traceback printed)
  75  the checkpoint store cannot be reached right now (network, throttling); retrying may work
  77  access to the bucket or table was denied, or no AWS credentials
  78  misconfiguration: this runner is not the build of the deployment's Lambdas (STEPSPOT_VERSION); the
      bundle's own __main__ and the container command's shell check also use 78 (python3 missing or < 3.9)
  79  stopped on a Spot interruption notice: the program ended after an IMDS notice and the host was not
      reclaimed within --reclaim-wait (a stop/hibernate action), or SIGTERM came after the notice (ECS
      draining); the failure classifier counts it as a Spot reclaim
  126 the command is not executable
  127 the command was not found
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn, TextIO

from stepspot.agent_exit_codes import EXIT_MISCONFIGURATION as EXIT_MISCONFIGURATION  # 78, shared with failures.py
from stepspot.agent_exit_codes import EXIT_SPOT_NOTICE as EXIT_SPOT_NOTICE  # 79, shared with failures.py
from stepspot.build_info import deployment_version, version_mismatch
from stepspot.checkpoint_files import DirectoryScanner, check_directory
from stepspot.checkpoint_store import CheckpointStore, SaveResult
from stepspot.checkpoints import Manifest, parse_interval, validate_id, young_daly_interval
from stepspot.errors import (
    AwsAccessDeniedError,
    AwsResourceNotFoundError,
    CheckpointStoreUnavailable,
    StepspotError,
    WorkflowNotFoundError,
)
from stepspot.log_events import CHECKPOINT_FAILED_EVENT, EVENT_FIELD, UNKNOWN_DIMENSION_VALUE

EXIT_USAGE = 64
EXIT_UNKNOWN_WORKFLOW = 65
EXIT_BAD_DIRECTORY = 66
EXIT_STORE_MISSING = 69
EXIT_INTERNAL = 70
EXIT_STORE_UNAVAILABLE = 75
EXIT_ACCESS_DENIED = 77
EXIT_NOT_EXECUTABLE = 126
EXIT_COMMAND_NOT_FOUND = 127

DEFAULT_IMDS_ENDPOINT = "http://169.254.169.254"
DEFAULT_IMDS_POLL_SECONDS = 5.0
DEFAULT_MTBI_SECONDS = 6 * 3600.0  # a conservative guess for Spot; set from your interruption history
DEFAULT_NOTICE_GRACE_SECONDS = 60.0
DEFAULT_RECLAIM_WAIT_SECONDS = 150.0  # Spot terminates ~120 s after the notice; 30 s of slack
DEFAULT_SETTLE_SECONDS = 1.0
DEFAULT_STOP_TIMEOUT_SECONDS = 20.0
AUTO_FIRST_CHECKPOINT_SECONDS = 60.0  # 'auto' needs one measured upload before Young/Daly applies
SPOT_NOTICE_SECONDS = 120.0
IMDS_TOKEN_TTL_SECONDS = 21600

log = logging.getLogger("stepspot.agent")


class AgentExit(Exception):
    """Ends the agent with one sentence on stderr and a documented exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --------------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentSettings:
    workflow_id: str
    task_id: str
    bucket: str
    table: str
    directory: Path
    interval: float | None  # None = auto (Young/Daly)
    mtbi: float
    notice_signal: signal.Signals
    notice_grace: float
    settle: float
    stop_timeout: float
    imds_endpoint: str | None  # None = IMDS polling off
    imds_poll: float
    endpoint_url: str | None
    region: str | None
    state_table: str | None
    save_on_success: bool
    environment: str = UNKNOWN_DIMENSION_VALUE  # the metric dimension of checkpoint_failed lines
    reclaim_wait: float = DEFAULT_RECLAIM_WAIT_SECONDS  # after an IMDS notice: how long to wait for the reclaim


def _env_or(value: str | None, name: str, default: str | None = None) -> str | None:
    if value is not None and value != "":
        return value
    from_env = os.environ.get(name, "")
    return from_env if from_env != "" else default


def _required(value: str | None, what: str, flag: str, env: str) -> str:
    if not value:
        raise AgentExit(EXIT_USAGE, f"The {what} is missing: pass {flag} or set {env}.")
    return value


def _number(text: str | None, what: str, env: str, minimum: float = 0.0) -> float:
    try:
        value = float(text or "")
    except ValueError:
        raise AgentExit(EXIT_USAGE, f"{env} / {what} must be a number of seconds, got {text!r}.") from None
    if value < minimum:
        raise AgentExit(EXIT_USAGE, f"{env} / {what} must be at least {minimum:g} seconds, got {text!r}.")
    return value


def _signal(text: str) -> signal.Signals:
    name = text.strip().upper()
    if name.isdigit():
        try:
            return signal.Signals(int(name))
        except ValueError:
            pass
    else:
        name = name if name.startswith("SIG") else f"SIG{name}"
        if hasattr(signal.Signals, name):
            return signal.Signals[name]
    raise AgentExit(EXIT_USAGE, f"Unknown signal {text!r}: use a name such as TERM, USR1, INT or a number.")


def settings_from(args: argparse.Namespace) -> AgentSettings:
    """Merge flags over environment variables and check each value (AgentExit with the fix)."""
    workflow_id = _required(
        _env_or(args.workflow_id, "STEPSPOT_WORKFLOW_ID"), "workflow id", "--workflow-id", "STEPSPOT_WORKFLOW_ID"
    )
    task_id = _required(_env_or(args.task_id, "STEPSPOT_TASK_ID"), "task id", "--task-id", "STEPSPOT_TASK_ID")
    for kind, value in (("workflow id", workflow_id), ("task id", task_id)):
        try:
            validate_id(kind, value)
        except ValueError as exc:
            raise AgentExit(EXIT_USAGE, str(exc)[0].upper() + str(exc)[1:]) from None
    bucket = _required(_env_or(args.bucket, "STEPSPOT_BUCKET"), "checkpoint bucket", "--bucket", "STEPSPOT_BUCKET")
    table = _required(
        _env_or(args.table, "STEPSPOT_CHECKPOINT_TABLE"), "checkpoint table", "--table", "STEPSPOT_CHECKPOINT_TABLE"
    )
    directory = _required(
        _env_or(args.checkpoint_dir, "STEPSPOT_CHECKPOINT_DIR"),
        "checkpoint directory",
        "--checkpoint-dir",
        "STEPSPOT_CHECKPOINT_DIR",
    )
    interval_text = _env_or(args.interval, "STEPSPOT_CHECKPOINT_INTERVAL", "auto") or "auto"
    try:
        interval = parse_interval(interval_text)
    except ValueError as exc:
        raise AgentExit(EXIT_USAGE, f"STEPSPOT_CHECKPOINT_INTERVAL / --interval: {exc}.") from None
    imds_off = bool(args.no_imds) or os.environ.get("STEPSPOT_IMDS_ENDPOINT", "").lower() == "off"
    imds_endpoint = None if imds_off else _env_or(args.imds_endpoint, "STEPSPOT_IMDS_ENDPOINT", DEFAULT_IMDS_ENDPOINT)
    return AgentSettings(
        workflow_id=workflow_id,
        task_id=task_id,
        bucket=bucket,
        table=table,
        directory=Path(directory).absolute(),
        interval=interval,
        mtbi=_number(
            _env_or(args.mtbi, "STEPSPOT_CHECKPOINT_MTBI", str(DEFAULT_MTBI_SECONDS)),
            "--mtbi",
            "STEPSPOT_CHECKPOINT_MTBI",
            minimum=1.0,
        ),
        notice_signal=_signal(_env_or(args.signal, "STEPSPOT_CHECKPOINT_SIGNAL", "TERM") or "TERM"),
        notice_grace=_number(
            _env_or(args.grace, "STEPSPOT_CHECKPOINT_GRACE", str(DEFAULT_NOTICE_GRACE_SECONDS)),
            "--grace",
            "STEPSPOT_CHECKPOINT_GRACE",
        ),
        settle=_number(
            _env_or(args.settle, "STEPSPOT_CHECKPOINT_SETTLE", str(DEFAULT_SETTLE_SECONDS)),
            "--settle",
            "STEPSPOT_CHECKPOINT_SETTLE",
        ),
        stop_timeout=_number(
            _env_or(args.stop_timeout, "STEPSPOT_STOP_TIMEOUT", str(DEFAULT_STOP_TIMEOUT_SECONDS)),
            "--stop-timeout",
            "STEPSPOT_STOP_TIMEOUT",
        ),
        imds_endpoint=imds_endpoint.rstrip("/") if imds_endpoint else None,
        imds_poll=_number(
            _env_or(args.imds_poll, "STEPSPOT_IMDS_POLL_INTERVAL", str(DEFAULT_IMDS_POLL_SECONDS)),
            "--imds-poll",
            "STEPSPOT_IMDS_POLL_INTERVAL",
            minimum=0.05,
        ),
        endpoint_url=_env_or(args.endpoint_url, "AWS_ENDPOINT_URL"),
        region=_env_or(args.region, "AWS_REGION", os.environ.get("AWS_DEFAULT_REGION") or None),
        state_table=_env_or(args.state_table, "STEPSPOT_STATE_TABLE"),
        save_on_success=bool(getattr(args, "save_on_success", False))
        or os.environ.get("STEPSPOT_CHECKPOINT_ON_SUCCESS", "").lower() in ("1", "true", "yes"),
        environment=_env_or(None, "STEPSPOT_ENVIRONMENT", UNKNOWN_DIMENSION_VALUE) or UNKNOWN_DIMENSION_VALUE,
        reclaim_wait=_number(
            _env_or(args.reclaim_wait, "STEPSPOT_RECLAIM_WAIT", str(DEFAULT_RECLAIM_WAIT_SECONDS)),
            "--reclaim-wait",
            "STEPSPOT_RECLAIM_WAIT",
        ),
    )


# --------------------------------------------------------------------------------------------------
# AWS wiring (boto3 imported lazily so `--help` and usage errors do not pay for it)
# --------------------------------------------------------------------------------------------------


def build_store(settings: AgentSettings) -> CheckpointStore:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import NoRegionError

    from stepspot.aws.checkpoint_objects import CheckpointObjects
    from stepspot.aws.checkpoint_table import CheckpointTable, WorkflowRegistry

    config = Config(
        retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60, max_pool_connections=32
    )
    session = boto3.session.Session(region_name=settings.region)
    try:
        s3 = session.client("s3", endpoint_url=settings.endpoint_url, config=config)
        ddb = session.client("dynamodb", endpoint_url=settings.endpoint_url, config=config)
    except NoRegionError:
        raise AgentExit(EXIT_USAGE, "No AWS region is set: set AWS_REGION or pass --region.") from None
    objects = CheckpointObjects(s3, settings.bucket)
    table = CheckpointTable(ddb, settings.table)
    objects.check_bucket()
    table.latest_sequence(settings.workflow_id, settings.task_id)  # fails fast on a missing table
    if settings.state_table and not WorkflowRegistry(ddb, settings.state_table).exists(settings.workflow_id):
        raise WorkflowNotFoundError(
            f"Workflow {settings.workflow_id!r} is unknown to state table {settings.state_table!r}: "
            "check STEPSPOT_WORKFLOW_ID (or --workflow-id) against `stepspot` output."
        )
    return CheckpointStore(objects, table)


def report_checkpoint_failure(settings: AgentSettings, trigger: str, reason: str, stream: TextIO | None = None) -> None:
    """Print the ``checkpoint_failed`` line the job log group's metric filter counts as ``CheckpointsFailed``."""
    line = {
        EVENT_FIELD: CHECKPOINT_FAILED_EVENT,
        "environment": settings.environment,
        "workflow_id": settings.workflow_id,
        "task_id": settings.task_id,
        "trigger": trigger,
        "reason": reason,
    }
    out = stream or sys.stderr
    out.write(json.dumps(line) + "\n")  # one write: the log thread cannot split the line
    out.flush()


def exit_code_for(error: StepspotError) -> int:
    if isinstance(error, WorkflowNotFoundError):
        return EXIT_UNKNOWN_WORKFLOW
    if isinstance(error, AwsResourceNotFoundError):
        return EXIT_STORE_MISSING
    if isinstance(error, AwsAccessDeniedError):
        return EXIT_ACCESS_DENIED
    if isinstance(error, CheckpointStoreUnavailable):
        return EXIT_STORE_UNAVAILABLE
    return EXIT_INTERNAL


# --------------------------------------------------------------------------------------------------
# Spot interruption notices from IMDS
# --------------------------------------------------------------------------------------------------


class ImdsNoticeWatcher(threading.Thread):
    """Polls ``latest/meta-data/spot/instance-action`` with an IMDSv2 token; calls ``on_notice`` once."""

    def __init__(self, endpoint: str, poll_seconds: float, on_notice: Callable[[str], None]) -> None:
        super().__init__(name="imds-notice-watcher", daemon=True)
        self._endpoint = endpoint
        self._poll = poll_seconds
        self._on_notice = on_notice
        self._stop_event = threading.Event()
        self._token: str | None = None
        self._token_expires = 0.0
        self._warned = False

    def stop(self) -> None:
        self._stop_event.set()

    def _fetch_token(self) -> str:
        request = urllib.request.Request(
            f"{self._endpoint}/latest/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": str(IMDS_TOKEN_TTL_SECONDS)},
        )
        with urllib.request.urlopen(request, timeout=1.0) as response:
            token = response.read().decode().strip()
        self._token, self._token_expires = token, time.monotonic() + IMDS_TOKEN_TTL_SECONDS - 60
        return token

    def check_once(self) -> str | None:
        """The instance-action document when a notice is posted, None otherwise."""
        token = self._token if self._token and time.monotonic() < self._token_expires else self._fetch_token()
        request = urllib.request.Request(
            f"{self._endpoint}/latest/meta-data/spot/instance-action",
            headers={"X-aws-ec2-metadata-token": token},
        )
        try:
            with urllib.request.urlopen(request, timeout=1.0) as response:
                return response.read().decode()
        except urllib.error.HTTPError as exc:
            if exc.code == 401:  # token expired or revoked: fetch a new one next time
                self._token = None
            if exc.code in (401, 404):
                return None
            raise

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                document = self.check_once()
            except (OSError, urllib.error.URLError) as exc:
                if not self._warned:
                    log.info(
                        "IMDS at %s is not reachable (%s); SIGTERM still triggers a checkpoint", self._endpoint, exc
                    )
                    self._warned = True
                document = None
            if document:
                self._on_notice(document.strip())
                return
            self._stop_event.wait(self._poll)


# --------------------------------------------------------------------------------------------------
# The supervisor
# --------------------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec (Linux): get SIGKILL if the agent dies, so no program outlives it."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def _exit_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def _describe(result: SaveResult) -> str:
    if result.record is None:
        return "nothing changed since the last checkpoint"
    return (
        f"checkpoint {result.record.sequence} saved: {len(result.manifest.files) if result.manifest else 0} "
        f"files, {result.uploaded_files} sent ({result.uploaded_bytes} bytes), {result.reused_files} reused, "
        f"{result.seconds:.2f} s"
    )


class Agent:
    """Runs one program under checkpoint protection."""

    def __init__(self, settings: AgentSettings, store: CheckpointStore) -> None:
        self.settings = settings
        self.store = store
        self.scanner = DirectoryScanner(settings.directory)
        self.manifest: Manifest | None = None
        self.checkpoint_cost: float | None = None
        self._wake = threading.Event()
        self._notice_reason: str | None = None
        self._terminate = False
        self._notice_handled = False
        self._spot_notice_at: float | None = None  # monotonic time the IMDS notice was seen
        self._spot_action = "terminate"
        self._child: subprocess.Popen[bytes] | None = None

    # -- notices (called from the IMDS thread or a signal handler: only set flags) --

    def notify(self, reason: str) -> None:
        if self._notice_reason is None:
            self._notice_reason = reason
        self._wake.set()

    def notify_spot(self, document: str) -> None:
        """An IMDS ``spot/instance-action`` document: the host goes in ~2 minutes (or stops/hibernates)."""
        with contextlib.suppress(ValueError, AttributeError):
            self._spot_action = str(json.loads(document).get("action") or self._spot_action)
        if self._spot_notice_at is None:
            self._spot_notice_at = time.monotonic()
        self.notify(f"spot interruption notice {document}")

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._terminate = True
        self.notify(f"received {signal.Signals(signum).name}")

    # -- steps --

    def restore(self) -> int | None:
        s = self.settings
        result = self.store.restore(s.workflow_id, s.task_id, s.directory, scanner=self.scanner)
        for skipped in result.skipped:
            log.warning("skipped corrupt checkpoint %d: %s", skipped.sequence, skipped.reason)
        if result.found is None:
            log.info("no checkpoint to restore for %s/%s: starting fresh", s.workflow_id, s.task_id)
            return None
        self.manifest = result.found.manifest
        log.info(
            "restored checkpoint %d (%d files, %d bytes) in %.2f s",
            result.found.record.sequence,
            len(self.manifest.files),
            result.restored_bytes,
            result.seconds,
        )
        return result.found.record.sequence

    def checkpoint(self, why: str) -> SaveResult | None:
        s = self.settings
        try:
            scanned = self.scanner.scan()
            result = self.store.save(s.workflow_id, s.task_id, scanned, s.directory, previous=self.manifest)
        except StepspotError as exc:
            log.warning("checkpoint (%s) failed, will try again: %s", why, exc.message)
            report_checkpoint_failure(s, why, exc.message)
            return None
        except OSError as exc:
            log.warning("checkpoint (%s) could not read the directory: %s", why, exc)
            report_checkpoint_failure(s, why, f"could not read the checkpoint directory: {exc}")
            return None
        if result.manifest is not None:
            self.manifest = result.manifest
        if result.record is not None and result.uploaded_files:
            measured = result.seconds
            self.checkpoint_cost = (
                measured if self.checkpoint_cost is None else (0.5 * self.checkpoint_cost + 0.5 * measured)
            )
        log.info("%s (%s)", _describe(result), why)
        return result

    def next_interval(self) -> float:
        if self.settings.interval is not None:
            return self.settings.interval
        if self.checkpoint_cost is None:
            return AUTO_FIRST_CHECKPOINT_SECONDS
        return young_daly_interval(self.checkpoint_cost, self.settings.mtbi)

    def _reap(self, child: subprocess.Popen[bytes]) -> None:
        child.wait()
        self._wake.set()

    def _signal_child(self, signum: int) -> None:
        child = self._child
        if child is None or child.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signum)

    def _wait_for_write(self, deadline: float) -> str:
        """After the notice signal: wait until the program exits, its writes settle, or the deadline."""
        assert self._child is not None
        before = self.scanner.fingerprint()
        last, changed_at = before, None
        while time.monotonic() < deadline:
            if self._child.poll() is not None:
                return "program exited"
            time.sleep(0.05)
            try:
                current = self.scanner.fingerprint()
            except OSError:
                continue
            if current != last:
                last, changed_at = current, time.monotonic()
            elif changed_at is not None and time.monotonic() - changed_at >= self.settings.settle:
                return "program finished writing"
        return "grace period over"

    def handle_notice(self) -> None:
        started = time.monotonic()
        reason = self._notice_reason or "notice"
        log.warning("%s: asking the program to checkpoint with %s", reason, self.settings.notice_signal.name)
        self._signal_child(self.settings.notice_signal)
        outcome = self._wait_for_write(started + self.settings.notice_grace)
        self.checkpoint(f"{reason}; {outcome}")
        elapsed = time.monotonic() - started
        log.warning("notice handled in %.2f s (Spot gives %d s)", elapsed, SPOT_NOTICE_SECONDS)
        self._notice_handled = True

    def _stop_child(self) -> None:
        """After a SIGTERM: give the program ``stop_timeout`` to exit, then end it."""
        assert self._child is not None
        deadline = time.monotonic() + self.settings.stop_timeout
        if self.settings.notice_signal != signal.SIGTERM:
            self._signal_child(signal.SIGTERM)
        while self._child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._child.poll() is None:
            log.warning("program did not exit %.0f s after SIGTERM: killing it", self.settings.stop_timeout)
            self._signal_child(signal.SIGKILL)

    def _await_reclaim(self, code: int, exited_at: float) -> int:
        """After an IMDS notice and a failed program: outlive the program until the host goes.

        Exiting now would end the container before the instance, and Batch would report an ordinary
        non-zero exit (an application error, spending the task's retries on Spot). Waiting lets Batch
        report ``Host EC2 (instance i-...) terminated.``; if the host is still here after the wait, or
        ECS drains it with SIGTERM, EXIT_SPOT_NOTICE tells the classifier the same thing.
        """
        assert self._spot_notice_at is not None
        deadline = self._spot_notice_at + self.settings.reclaim_wait
        if exited_at >= deadline and not self._terminate:
            # The host outlived the notice and the program kept running: this exit is its own.
            return code
        if not self._terminate:
            log.warning(
                "program exited with %d after the Spot interruption notice; waiting up to %.0f s for the host "
                "to be reclaimed so Batch reports the interruption",
                code,
                max(0.0, deadline - time.monotonic()),
            )
        while not self._terminate and time.monotonic() < deadline:
            self._wake.wait(timeout=max(0.0, deadline - time.monotonic()))
            self._wake.clear()
        if self._terminate:
            why = "SIGTERM after the Spot interruption notice (the instance is being drained or shut down)"
        else:
            why = f"host not reclaimed {self.settings.reclaim_wait:.0f} s after the {self._spot_action} notice"
        log.warning("%s: exiting with %d (stopped on a Spot interruption notice)", why, EXIT_SPOT_NOTICE)
        return EXIT_SPOT_NOTICE

    def run(self, command: Sequence[str]) -> int:
        s = self.settings
        restored = self.restore()
        env = dict(os.environ)
        env["STEPSPOT_CHECKPOINT_DIR"] = str(s.directory)
        env["STEPSPOT_RESTORED_SEQUENCE"] = "" if restored is None else str(restored)
        previous_handlers = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        watcher = None
        if s.imds_endpoint:
            watcher = ImdsNoticeWatcher(s.imds_endpoint, s.imds_poll, self.notify_spot)
        try:
            try:
                # Own session: the notice signal reaches the whole process group (shell wrappers included).
                self._child = subprocess.Popen(
                    list(command), env=env, start_new_session=True, preexec_fn=_die_with_parent
                )
            except FileNotFoundError:
                raise AgentExit(
                    EXIT_COMMAND_NOT_FOUND,
                    f"Command {command[0]!r} was not found: check the task's command and the image's PATH.",
                ) from None
            except PermissionError:
                raise AgentExit(
                    EXIT_NOT_EXECUTABLE,
                    f"Command {command[0]!r} is not executable: chmod +x it or run it through its interpreter.",
                ) from None
            log.info("started %s (pid %d), checkpointing %s", command[0], self._child.pid, s.directory)
            if watcher:
                watcher.start()
            child = self._child
            threading.Thread(target=self._reap, args=(child,), daemon=True).start()
            next_due = time.monotonic() + self.next_interval()
            while child.poll() is None:
                if self._notice_reason is not None and not self._notice_handled:
                    self.handle_notice()
                    if self._terminate:
                        self._stop_child()
                        break
                if self._terminate and self._notice_handled:
                    self._stop_child()
                    break
                if time.monotonic() >= next_due and child.poll() is None:
                    self.checkpoint("periodic")
                    next_due = time.monotonic() + self.next_interval()
                self._wake.wait(timeout=max(0.0, min(0.5, next_due - time.monotonic())))
                self._wake.clear()
            code = _exit_status(child.wait())
            exited_at = time.monotonic()
            if code != 0 or s.save_on_success:
                # A retry after a crash resumes from whatever the program last wrote.
                self.checkpoint(f"program exited with {code}")
            log.info("program exited with %d", code)
            if code != 0 and self._spot_notice_at is not None:
                return self._await_reclaim(code, exited_at)
            return code
        finally:
            if watcher:
                watcher.stop()
            for sig, handler in previous_handlers.items():
                signal.signal(sig, handler)


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"stepspot-agent: error: {message}\n")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workflow-id", help="workflow id (env STEPSPOT_WORKFLOW_ID)")
    parser.add_argument("--task-id", help="task id (env STEPSPOT_TASK_ID)")
    parser.add_argument("--bucket", help="checkpoint bucket (env STEPSPOT_BUCKET)")
    parser.add_argument("--table", help="checkpoint table (env STEPSPOT_CHECKPOINT_TABLE)")
    parser.add_argument("--checkpoint-dir", help="directory the program writes (env STEPSPOT_CHECKPOINT_DIR)")
    parser.add_argument("--endpoint-url", help="AWS endpoint, e.g. a moto server (env AWS_ENDPOINT_URL)")
    parser.add_argument("--region", help="AWS region (env AWS_REGION / AWS_DEFAULT_REGION)")
    parser.add_argument(
        "--state-table", help="check the workflow exists in this state table (env STEPSPOT_STATE_TABLE; off when unset)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    for name in (
        "interval",
        "mtbi",
        "signal",
        "grace",
        "settle",
        "stop_timeout",
        "imds_endpoint",
        "imds_poll",
        "reclaim_wait",
    ):
        parser.set_defaults(**{name: None})
    parser.set_defaults(no_imds=False)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="stepspot-agent", description="Checkpoint agent for stepspot jobs.")
    commands = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    commands.required = True

    run = commands.add_parser(
        "run",
        help="restore, run CMD, checkpoint periodically and on notice",
        usage="stepspot-agent run [options] -- CMD [ARGS...]",
    )
    _common(run)
    run.add_argument("--interval", help="seconds between checkpoints or 'auto' (env STEPSPOT_CHECKPOINT_INTERVAL)")
    run.add_argument("--mtbi", help="expected seconds between interruptions for 'auto' (env STEPSPOT_CHECKPOINT_MTBI)")
    run.add_argument("--signal", help="signal telling the program to write now (env STEPSPOT_CHECKPOINT_SIGNAL, TERM)")
    run.add_argument("--grace", help="max seconds to wait for the program's write (env STEPSPOT_CHECKPOINT_GRACE, 60)")
    run.add_argument("--settle", help="seconds of quiet that mean the write is done (env STEPSPOT_CHECKPOINT_SETTLE)")
    run.add_argument(
        "--stop-timeout", help="after SIGTERM, seconds before the program is killed (env STEPSPOT_STOP_TIMEOUT)"
    )
    run.add_argument("--imds-endpoint", help="instance metadata endpoint (env STEPSPOT_IMDS_ENDPOINT; 'off')")
    run.add_argument("--imds-poll", help="seconds between IMDS polls (env STEPSPOT_IMDS_POLL_INTERVAL, 5)")
    run.add_argument("--no-imds", action="store_true", help="do not poll IMDS (SIGTERM still works)")
    run.add_argument(
        "--reclaim-wait",
        help="after an IMDS notice, max seconds (from the notice) a failed program's exit waits for the host "
        f"to be reclaimed before exiting {EXIT_SPOT_NOTICE} (env STEPSPOT_RECLAIM_WAIT, 150)",
    )
    run.add_argument(
        "--save-on-success",
        action="store_true",
        help="also checkpoint when the program exits 0 (env STEPSPOT_CHECKPOINT_ON_SUCCESS)",
    )
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")

    save = commands.add_parser("save", help="checkpoint the directory once and print the result as JSON")
    _common(save)
    restore = commands.add_parser("restore", help="restore the latest valid checkpoint and print it as JSON")
    _common(restore)
    return parser


def _execute(args: argparse.Namespace) -> int:
    mismatch = version_mismatch(os.environ)
    if mismatch:
        raise AgentExit(EXIT_MISCONFIGURATION, mismatch)
    settings = settings_from(args)
    if args.action == "run":
        command = list(args.command)
        if command and command[0] == "--":
            command = command[1:]
        if not command:
            raise AgentExit(
                EXIT_USAGE, "No command to run: put it after '--', e.g. stepspot-agent run -- python simulate.py."
            )
        if os.sep not in command[0] and shutil.which(command[0]) is None:
            raise AgentExit(
                EXIT_COMMAND_NOT_FOUND,
                f"Command {command[0]!r} was not found on PATH: check the task's command and the image's PATH.",
            )
    problem = check_directory(settings.directory)
    if problem:
        raise AgentExit(EXIT_BAD_DIRECTORY, f"The {problem}: point STEPSPOT_CHECKPOINT_DIR at a writable directory.")
    store = build_store(settings)
    if args.action == "run":
        log.info("task runner %s on Python %s (%s)", deployment_version(), platform.python_version(), sys.executable)
        return Agent(settings, store).run(command)
    if args.action == "save":
        scanner = DirectoryScanner(settings.directory)
        try:
            result = store.save(settings.workflow_id, settings.task_id, scanner.scan(), settings.directory)
        except (StepspotError, OSError) as exc:
            unreadable = f"could not read the checkpoint directory: {exc}"
            reason = exc.message if isinstance(exc, StepspotError) else unreadable
            report_checkpoint_failure(settings, "save command", reason)
            raise
        print(json.dumps(_save_summary(result, store.bucket)))
        return 0
    outcome = store.restore(settings.workflow_id, settings.task_id, settings.directory)
    found = outcome.found
    print(
        json.dumps(
            {
                "found": found is not None,
                "sequence": found.record.sequence if found else None,
                "uri": store.uri(found.record) if found else None,
                "restored_bytes": outcome.restored_bytes,
                "seconds": round(outcome.seconds, 3),
                "skipped": [{"sequence": s.sequence, "reason": s.reason} for s in outcome.skipped],
            }
        )
    )
    return 0


def _save_summary(result: SaveResult, bucket: str) -> dict[str, Any]:
    record = result.record
    return {
        "saved": record is not None,
        "sequence": record.sequence if record else None,
        "uri": f"s3://{bucket}/{record.manifest_key}" if record else None,
        "uploaded_files": result.uploaded_files,
        "uploaded_bytes": result.uploaded_bytes,
        "reused_files": result.reused_files,
        "seconds": round(result.seconds, 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s stepspot-agent %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("botocore").setLevel(logging.WARNING)
    try:
        return _execute(args)
    except AgentExit as exc:
        print(f"stepspot-agent: error: {exc.message}", file=sys.stderr)
        return exc.code
    except StepspotError as exc:
        print(f"stepspot-agent: error: {exc.message}", file=sys.stderr)
        return exit_code_for(exc)


if __name__ == "__main__":
    sys.exit(main())
