"""The agent's settings: flags merged over ``STEPSPOT_*`` environment variables, each value checked.

Standard library only. A bad value ends the agent with ``AgentExit`` (one sentence naming the variable
and the fix, and a documented exit code).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

from stepspot.agent_exit_codes import EXIT_ACCESS_DENIED as EXIT_ACCESS_DENIED  # 77, shared with failures.py
from stepspot.agent_exit_codes import EXIT_COMMAND_NOT_FOUND as EXIT_COMMAND_NOT_FOUND  # shared with failures.py
from stepspot.agent_exit_codes import EXIT_NOT_EXECUTABLE as EXIT_NOT_EXECUTABLE
from stepspot.agent_exit_codes import EXIT_SPOT_NOTICE as EXIT_SPOT_NOTICE  # 79, shared with failures.py
from stepspot.agent_exit_codes import EXIT_STORE_UNAVAILABLE as EXIT_STORE_UNAVAILABLE  # 75, shared too
from stepspot.checkpointing.model import parse_interval, validate_id
from stepspot.dataflow import DataflowError, InputSpec, parse_inputs, parse_outputs
from stepspot.job_environment import CHECKPOINT_ENABLED_VARIABLE, TASK_ID_VARIABLE, WORKFLOW_ID_VARIABLE
from stepspot.log_events import UNKNOWN_DIMENSION_VALUE

EXIT_USAGE = 64
EXIT_UNKNOWN_WORKFLOW = 65
EXIT_BAD_DIRECTORY = 66
EXIT_STORE_MISSING = 69
EXIT_INTERNAL = 70

DEFAULT_IMDS_ENDPOINT = "http://169.254.169.254"
DEFAULT_IMDS_POLL_SECONDS = 5.0
DEFAULT_MTBI_SECONDS = 6 * 3600.0  # a conservative guess for Spot; set from your interruption history
DEFAULT_NOTICE_GRACE_SECONDS = 60.0
DEFAULT_RECLAIM_WAIT_SECONDS = 150.0  # Spot terminates ~120 s after the notice; 30 s of slack
DEFAULT_SETTLE_SECONDS = 1.0
DEFAULT_STOP_TIMEOUT_SECONDS = 20.0
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class AgentExit(Exception):
    """Ends the agent with one sentence on stderr and a documented exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class AgentSettings:
    workflow_id: str
    task_id: str
    bucket: str
    table: str  # "" when checkpointing is off
    directory: Path  # the checkpoint directory (unused when checkpointing is off)
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
    checkpointing: bool = True
    work_dir: Path | None = None  # where the program runs (and inputs/outputs live); None = current directory
    inputs: tuple[InputSpec, ...] = field(default=())
    outputs: tuple[str, ...] = field(default=())
    attempt: str = ""
    job_id: str = ""  # AWS_BATCH_JOB_ID: names the attempt's run record (stepspot.run_health); "" off Batch
    mtbi_explicit: bool = False  # STEPSPOT_CHECKPOINT_MTBI / --mtbi given: wins over the observed MTBI
    # STEPSPOT_TIME_SCALE: simulated seconds per real second. 1 on AWS; local mode compresses time, and
    # 'auto' divides its simulated durations (first checkpoint, MTBI, bounds) by it, as local mode does a
    # numeric interval before the runner sees it.
    time_scale: float = 1.0

    @property
    def staging(self) -> bool:
        return bool(self.inputs or self.outputs)


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


def _flag(value: bool, env: str, default: bool) -> bool:
    if value:
        return True
    text = os.environ.get(env, "").strip().lower()
    if text == "":
        return default
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise AgentExit(EXIT_USAGE, f"{env} must be true or false, got {text!r}.")


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


def _json_env(name: str) -> object:
    text = os.environ.get(name, "").strip()
    if not text:
        return []
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise AgentExit(EXIT_USAGE, f"{name} is not valid JSON ({exc.msg}): set it as stepspot does.") from None


def settings_from(args: argparse.Namespace) -> AgentSettings:
    """Merge flags over environment variables and check each value (AgentExit with the fix)."""
    workflow_id = _required(
        _env_or(args.workflow_id, WORKFLOW_ID_VARIABLE), "workflow id", "--workflow-id", WORKFLOW_ID_VARIABLE
    )
    task_id = _required(_env_or(args.task_id, TASK_ID_VARIABLE), "task id", "--task-id", TASK_ID_VARIABLE)
    for kind, value in (("workflow id", workflow_id), ("task id", task_id)):
        try:
            validate_id(kind, value)
        except ValueError as exc:
            raise AgentExit(EXIT_USAGE, str(exc)[0].upper() + str(exc)[1:]) from None
    # Only `run` can skip checkpoints (a task with inputs/outputs only); save/restore always need them.
    checkpointing = args.action != "run" or not getattr(args, "no_checkpoint", False)
    checkpointing = checkpointing and (args.action != "run" or _flag(False, CHECKPOINT_ENABLED_VARIABLE, True))
    try:
        inputs = parse_inputs(_json_env("STEPSPOT_INPUTS"))
        outputs = parse_outputs(_json_env("STEPSPOT_OUTPUTS"))
    except DataflowError as exc:
        raise AgentExit(EXIT_USAGE, f"STEPSPOT_INPUTS / STEPSPOT_OUTPUTS: {exc}.") from None
    bucket = _env_or(args.bucket, "STEPSPOT_BUCKET")
    if checkpointing or inputs or outputs:
        what = "checkpoint bucket" if checkpointing else "bucket"
        bucket = _required(bucket, what, "--bucket", "STEPSPOT_BUCKET")
    table = _env_or(args.table, "STEPSPOT_CHECKPOINT_TABLE") or ""
    directory = _env_or(args.checkpoint_dir, "STEPSPOT_CHECKPOINT_DIR") or ""
    if checkpointing:
        table = _required(table, "checkpoint table", "--table", "STEPSPOT_CHECKPOINT_TABLE")
        directory = _required(directory, "checkpoint directory", "--checkpoint-dir", "STEPSPOT_CHECKPOINT_DIR")
    work_dir = _env_or(getattr(args, "work_dir", None), "STEPSPOT_WORK_DIR")
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
        bucket=bucket or "",
        table=table,
        directory=Path(directory or ".").absolute(),
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
        save_on_success=_flag(bool(getattr(args, "save_on_success", False)), "STEPSPOT_CHECKPOINT_ON_SUCCESS", False),
        environment=_env_or(None, "STEPSPOT_ENVIRONMENT", UNKNOWN_DIMENSION_VALUE) or UNKNOWN_DIMENSION_VALUE,
        reclaim_wait=_number(
            _env_or(args.reclaim_wait, "STEPSPOT_RECLAIM_WAIT", str(DEFAULT_RECLAIM_WAIT_SECONDS)),
            "--reclaim-wait",
            "STEPSPOT_RECLAIM_WAIT",
        ),
        checkpointing=checkpointing,
        work_dir=Path(work_dir).absolute() if work_dir else None,
        inputs=inputs,
        outputs=outputs,
        attempt=os.environ.get("STEPSPOT_ATTEMPT", "") or os.environ.get("AWS_BATCH_JOB_ID", ""),
        job_id=os.environ.get("AWS_BATCH_JOB_ID", ""),
        mtbi_explicit=_env_or(args.mtbi, "STEPSPOT_CHECKPOINT_MTBI") is not None,
        time_scale=_time_scale(os.environ.get("STEPSPOT_TIME_SCALE", "") or "1"),
    )


def _time_scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise AgentExit(
            EXIT_USAGE, f"STEPSPOT_TIME_SCALE must be a positive number (1 outside local mode), got {text!r}."
        )
    return value
