"""Classification of a failed task attempt, and the decision that follows it. Pure.

Input is what the task state machine's ``Catch`` hands over: the ASL error name and its cause. For a
``batch:submitJob.sync`` failure the cause is the Batch job description as JSON (PascalCase on AWS,
camelCase from some emulators: both are read). For a Lambda or API failure it is an error message.

Classes (each with its own retry budget in ``stepspot.policy`` and its own metric):

- ``spot_reclaim``: the Spot host went away under the job (``Host EC2 (instance i-...) terminated.``), or
  the checkpoint agent exited with ``EXIT_SPOT_NOTICE`` (stopped on a Spot interruption notice, the host
  not reclaimed in time or drained by ECS).
- ``capacity``: the Spot queue could not place the job and ``jobStateTimeLimitActions`` cancelled it
  (``... JobStateTimeLimit action due to reason: CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY``).
- ``infra_transient``: the job never really ran (image pull, container start, host start failures,
  Batch API throttling).
- ``misconfiguration``: the job can never run as submitted, so it is not retried and the reason says
  what to change: no instance type of the queue holds it (``MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT``
  and the other ``MISCONFIGURATION:`` reasons), the image does not exist (``CannotPullContainerError``
  with "not found", "does not exist", "manifest unknown", "pull access denied"), the role is denied
  (``AccessDenied``, "is not authorized to perform"), the container's program is not in the image (runc's
  ``exec: "...": executable file not found``, e.g. no ``/bin/sh`` for the runner), or the runner could not
  start in the image (``EXIT_MISCONFIGURATION``, 78) or found the task's command missing or not executable
  there (127, 126): these three only when the runner ran the job.
- ``app_error``: the program failed (non-zero exit, out of memory, timeout), and anything unrecognised:
  retrying an unknown failure a bounded number of times is the safe default. An out-of-memory attempt
  (``OutOfMemoryError: Container killed due to memory usage``, exit 137) is marked ``out_of_memory``: its
  retry gets more memory (``policy.out_of_memory``, ``with_memory``).

Only ``spot_reclaim`` and ``capacity`` move a task to On-Demand.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any

from stepspot.agent_exit_codes import (
    EXIT_ACCESS_DENIED,
    EXIT_COMMAND_NOT_FOUND,
    EXIT_INPUT_UNAVAILABLE,
    EXIT_MISCONFIGURATION,
    EXIT_NOT_EXECUTABLE,
    EXIT_OUTPUT_MISSING,
    EXIT_SPOT_NOTICE,
    EXIT_STORE_UNAVAILABLE,
)
from stepspot.fleet import runner_invocation
from stepspot.policy import FailureClass, Policy, stable_unit_random
from stepspot.transient_errors import CALL_FAILURE_ERRORS

_SPOT_RECLAIM = re.compile(r"Host EC2 \(instance (?P<instance>i-[0-9a-zA-Z]+)\) terminated", re.IGNORECASE)
_CAPACITY = re.compile(r"CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY", re.IGNORECASE)
_MISCONFIGURATION = re.compile(r"MISCONFIGURATION:(?P<what>[A-Z_]+)")
# What to change, per Batch MISCONFIGURATION reason (jobStateTimeLimitActions cancels such jobs).
_MISCONFIGURATION_FIXES = {
    "JOB_RESOURCE_REQUIREMENT": "no instance type of the job's queue can hold the task's vcpus, memory and gpus: "
    "lower them, or add larger instance types to the queue's compute environment (`stepspot validate FILE "
    "--env ENV` names the largest shape that fits)",
    "COMPUTE_ENVIRONMENT_MAX_RESOURCE": "the job needs more vCPUs than its compute environment's maxvCpus: lower "
    "the task's vcpus or nodes, or raise the environment's *_max_vcpus Terraform variable",
}
_MISCONFIGURATION_FIX = (
    "the job's queue or compute environment cannot run it: fix the task's resources or the compute environment"
)
_IMAGE_MISSING = re.compile(
    r"CannotPullContainerError.*(?:not found|does not exist|manifest unknown|pull access denied|"
    r"invalid reference format|repository .* not found|name unknown)",
    re.IGNORECASE,
)
# runc could not start the container's entry program: it is not in the image. Retrying the same image cannot
# help (``exec: "gmx": executable file not found in $PATH``, ``exec: "/bin/sh": stat /bin/sh: no such file``).
_PROGRAM_MISSING = re.compile(
    r'exec: \\?"(?P<program>[^"\\]+)\\?": (?:executable file not found in \$PATH|stat \S+: no such file or directory)'
)
_ACCESS_DENIED = re.compile(r"AccessDenied|is not authorized to perform|UnauthorizedOperation", re.IGNORECASE)
_INFRA_TRANSIENT = re.compile(
    r"CannotPullContainerError|CannotStartContainerError|CannotInspectContainerError|"
    r"CannotCreateContainerError|ResourceInitializationError|DockerTimeoutError|"
    r"Task failed to start|Timeout waiting for network interface|ECS agent|"
    r"Essential container in task exited.*(?:SIGKILL by ECS agent)|InternalError",
    re.IGNORECASE,
)
_OUT_OF_MEMORY = re.compile(r"OutOfMemoryError|Container killed due to memory usage", re.IGNORECASE)


@dataclass(frozen=True)
class Classification:
    """One failed attempt, explained."""

    failure_class: FailureClass
    reason: str
    exit_code: int | None = None
    instance_id: str | None = None
    job_id: str | None = None
    out_of_memory: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "failure_class": self.failure_class.value,
            "reason": self.reason,
            "exit_code": self.exit_code,
            "instance_id": self.instance_id,
            "job_id": self.job_id,
            "out_of_memory": self.out_of_memory,
        }


def _ci(mapping: Any, *names: str) -> Any:
    """Case-insensitive lookup of the first present key: AWS PascalCase and the SDK's camelCase."""
    if not isinstance(mapping, dict):
        return None
    lowered = {str(k).lower(): v for k, v in mapping.items()}
    for name in names:
        value = lowered.get(name.lower())
        if value is not None:
            return value
    return None


def _job_description(cause: str | None) -> dict[str, Any] | None:
    if not cause:
        return None
    try:
        parsed = json.loads(cause)
    except (TypeError, ValueError):
        return None
    if isinstance(parsed, dict) and (_ci(parsed, "JobId") or _ci(parsed, "Attempts") is not None):
        return parsed
    return None


def _attempt_facts(job: dict[str, Any]) -> tuple[list[str], int | None, str | None]:
    """Status reasons (job-level and of the last attempt, most specific first), exit code, instance."""
    reasons: list[str] = []
    exit_code: int | None = None
    attempts = _ci(job, "Attempts") or []
    last = attempts[-1] if attempts else {}
    container = _ci(last, "Container") or _ci(job, "Container") or {}
    for source in (container, last, job):
        reason = _ci(source, "StatusReason", "Reason")
        if isinstance(reason, str) and reason and reason not in reasons:
            reasons.append(reason)
    code = _ci(container, "ExitCode")
    if isinstance(code, int):
        exit_code = code
    instance = None
    for reason in reasons:
        match = _SPOT_RECLAIM.search(reason)
        if match:
            instance = match.group("instance")
            break
    return reasons, exit_code, instance


def classify(error: str | None, cause: str | None) -> Classification:
    """Explain one failed attempt from the ASL error name and cause."""
    error = error or "States.TaskFailed"
    job = _job_description(cause)
    if job is None:
        return _classify_call_error(error, cause or "")
    reasons, exit_code, instance = _attempt_facts(job)
    job_id = _ci(job, "JobId")
    text = " | ".join(reasons)
    if instance is not None:
        return Classification(FailureClass.SPOT_RECLAIM, reasons[0], exit_code, instance, job_id)
    if exit_code == EXIT_SPOT_NOTICE:
        reason = f"exit code {exit_code}: the checkpoint agent stopped on a Spot interruption notice"
        return Classification(FailureClass.SPOT_RECLAIM, reason, exit_code, None, job_id)
    staging = _staging_failure(job, exit_code)
    if staging is not None:
        return Classification(staging[0], staging[1], exit_code, None, job_id)
    if _CAPACITY.search(text):
        return Classification(FailureClass.CAPACITY, _first(reasons, _CAPACITY), exit_code, None, job_id)
    misconfigured = _misconfiguration(reasons, text, exit_code, _container_command(job))
    if misconfigured is not None:
        return Classification(FailureClass.MISCONFIGURATION, misconfigured, exit_code, None, job_id)
    if _OUT_OF_MEMORY.search(text):
        reason = _first(reasons, _OUT_OF_MEMORY)
        return Classification(FailureClass.APP_ERROR, reason, exit_code, None, job_id, out_of_memory=True)
    if _INFRA_TRANSIENT.search(text) and not exit_code:
        reason = _first(reasons, _INFRA_TRANSIENT)
        return Classification(FailureClass.INFRA_TRANSIENT, reason, exit_code, None, job_id)
    if exit_code not in (None, 0):
        return Classification(FailureClass.APP_ERROR, f"exit code {exit_code}", exit_code, None, job_id)
    reason = reasons[0] if reasons else "job failed without a reason"
    return Classification(FailureClass.APP_ERROR, reason, exit_code, None, job_id)


def _misconfiguration(reasons: list[str], text: str, exit_code: int | None, command: list[str]) -> str | None:
    """The reason and what to change, when retrying cannot fix the failure; else None."""
    wrapped = runner_invocation(command) is not None  # the container command is the task runner's
    match = _MISCONFIGURATION.search(text)
    if match:
        fix = _MISCONFIGURATION_FIXES.get(match.group("what"), _MISCONFIGURATION_FIX)
        return f"{_first(reasons, _MISCONFIGURATION)}: {fix}"
    if _IMAGE_MISSING.search(text):
        return (
            f"{_first(reasons, _IMAGE_MISSING)}: the container image cannot be pulled; fix the task's "
            "container_image, or push the image and let the job role pull it"
        )
    if _ACCESS_DENIED.search(text):
        return (
            f"{_first(reasons, _ACCESS_DENIED)}: the job's role is denied; grant that permission to the job "
            "role (Terraform module iam) or fix the resource the task names"
        )
    missing = _PROGRAM_MISSING.search(text)
    if missing:
        program = missing.group("program")
        fix = (
            "the stepspot task runner needs /bin/sh and python3 >= 3.9 in the image: use an image that has them"
            if wrapped and command[:1] == [program]
            else "use an image that has it, or fix the task's command"
        )
        return f'{_first(reasons, _PROGRAM_MISSING)}: the image has no program "{program}": {fix}'
    # The runner's codes (it prints the sentence naming the command); outside the runner they are the program's.
    if wrapped and exit_code in (EXIT_COMMAND_NOT_FOUND, EXIT_NOT_EXECUTABLE):
        what = "was not found" if exit_code == EXIT_COMMAND_NOT_FOUND else "is not executable"
        return (
            f"exit code {exit_code}: the task's command (or a program it runs) {what} in the image, as the job log "
            "says: use an image that has it, or fix the task's command"
        )
    # 78 is the runner's (and its shell's) own; a program the runner does not wrap may exit 78 for its reasons.
    if exit_code == EXIT_MISCONFIGURATION and wrapped:
        return (
            f"exit code {exit_code}: the stepspot runner could not start the program in this image (for "
            "example no usable python3); use an image with python3, or fix the task's command"
        )
    return None


def _container_command(job: dict[str, Any]) -> list[str]:
    return [str(part) for part in _ci(_ci(job, "Container") or {}, "Command") or []]


def _staging_failure(job: dict[str, Any], exit_code: int | None) -> tuple[FailureClass, str] | None:
    """The agent's data-staging, store and access exit codes, only for jobs the agent ran (a program's own
    73/74/75/77 is its own)."""
    if exit_code not in (EXIT_INPUT_UNAVAILABLE, EXIT_OUTPUT_MISSING, EXIT_ACCESS_DENIED, EXIT_STORE_UNAVAILABLE):
        return None
    if runner_invocation(_container_command(job)) is None:  # the container command fleet.py builds
        return None
    if exit_code == EXIT_ACCESS_DENIED:
        why = (
            "the stepspot runner was denied an S3 or DynamoDB request (the job log names it): for a `uri` input "
            "add its bucket to input_bucket_arns in the environment's tfvars and run `make deploy`, otherwise "
            "grant the request to the job role"
        )
        return FailureClass.MISCONFIGURATION, f"exit code {exit_code}: {why}"
    if exit_code == EXIT_STORE_UNAVAILABLE:
        why = "the stepspot runner could not reach S3 or DynamoDB after its retries (the job log says which); retried"
        return FailureClass.INFRA_TRANSIENT, f"exit code {exit_code}: {why}"
    if exit_code == EXIT_INPUT_UNAVAILABLE:
        why = "a declared input is missing or corrupt (the job log names the file); retried"
        return FailureClass.INFRA_TRANSIENT, f"exit code {exit_code}: {why}"
    why = "the program exited 0 but a declared output was not produced (the job log names the path)"
    return FailureClass.APP_ERROR, f"exit code {exit_code}: {why}"


def _first(reasons: list[str], pattern: re.Pattern[str]) -> str:
    return next((r for r in reasons if pattern.search(r)), reasons[0])


def _classify_call_error(error: str, cause: str) -> Classification:
    message = _error_message(cause)
    if error in CALL_FAILURE_ERRORS or error.startswith("Lambda.") or "Throttl" in error:
        return Classification(FailureClass.INFRA_TRANSIENT, f"{error}: {message}".rstrip(": "))
    if error == "States.Timeout":
        return Classification(FailureClass.APP_ERROR, "the attempt ran past the task's timeout")
    return Classification(FailureClass.APP_ERROR, f"{error}: {message}".rstrip(": "))


def _error_message(cause: str) -> str:
    try:
        parsed = json.loads(cause)
    except (TypeError, ValueError):
        return cause[:500]
    if isinstance(parsed, dict):
        return str(parsed.get("errorMessage") or parsed.get("message") or cause)[:500]
    return cause[:500]


# ---------------------------------------------------------------------------------------------------
# What to do next


@dataclass(frozen=True)
class RetryDecision:
    """The outcome of a failed attempt: retry (where, after how long) or give up."""

    retry: bool
    on_demand: bool
    wait_seconds: int
    reason: str

    @property
    def action(self) -> str:
        return "retry" if self.retry else "give_up"


def decide(
    classification: Classification,
    failures_of_class: int,
    *,
    task_retry_attempts: int,
    task_backoff_multiplier: float,
    use_spot: bool,
    on_demand_now: bool,
    policy: Policy,
    jitter_key: tuple[str, ...] = (),
) -> RetryDecision:
    """Decide after the ``failures_of_class``-th failure (1-based, this one included) of a class.

    ``task_retry_attempts`` (from the plan) bounds application errors; the policy bounds the other
    classes. The jitter is derived from ``jitter_key`` so a redelivered decision is identical.
    """
    cls = classification.failure_class
    knobs = policy.for_class(cls)
    budget = knobs.max_retries
    if cls is FailureClass.MISCONFIGURATION and budget == 0:
        return RetryDecision(
            False, on_demand_now, 0, f"{cls.value}: {classification.reason} (not retried: a retry cannot fix it)"
        )
    if cls is FailureClass.APP_ERROR:
        budget = min(budget, task_retry_attempts)
    if failures_of_class > budget:
        noun = "retry" if budget == 1 else "retries"
        return RetryDecision(
            False,
            on_demand_now,
            0,
            f"{cls.value}: {classification.reason}; budget of {budget} {noun} used up",
        )
    on_demand = on_demand_now or not use_spot
    moved = False
    if (
        not on_demand
        and knobs.fallback_to_on_demand_after is not None
        and failures_of_class >= knobs.fallback_to_on_demand_after
    ):
        on_demand = moved = True
    wait = 0
    if knobs.backoff:
        # The task's own backoff_multiplier (workflow definition) sets the growth of its app retries.
        rate = max(1.0, task_backoff_multiplier) if cls is FailureClass.APP_ERROR else None
        wait = policy.backoff.delay(
            failures_of_class,
            rate=rate,
            unit_random=stable_unit_random(*jitter_key, cls.value, failures_of_class),
        )
    where = "On-Demand" if on_demand else "Spot"
    detail = f"{cls.value}: {classification.reason}; retry {failures_of_class}/{budget} on {where}"
    if moved:
        detail += " (moved to On-Demand)"
    if wait:
        detail += f" after {wait} s"
    return RetryDecision(True, on_demand, wait, detail)


def with_memory(decision: RetryDecision, memory_mib: int, next_memory_mib: int | None) -> RetryDecision:
    """The decision after an out-of-memory attempt: the retry gets ``next_memory_mib``; when memory cannot
    grow any more (None), retrying would fail the same way, so the task gives up saying why."""
    if not decision.retry:
        return decision
    if next_memory_mib is None:
        return RetryDecision(
            False,
            decision.on_demand,
            0,
            f"{FailureClass.APP_ERROR.value}: out of memory with {memory_mib} MiB, the most the task's queue "
            "offers (policy out_of_memory.ceiling_mib or its largest instance type): lower the program's memory "
            "use, or add instance types with more memory",
        )
    return replace(decision, reason=f"{decision.reason}, with {next_memory_mib} MiB (was {memory_mib} MiB)")


def memory_by_attempt(attempts: int, base_memory: int | None, escalations: Any) -> list[int | None]:
    """MiB each attempt had: the task's memory, raised from the attempt of each ``[attempt, MiB]``
    escalation on (task items: ``base_memory``, ``memory_escalations``). None where unknown."""
    raised = sorted((int(a), int(m)) for a, m in (escalations or []))
    memories: list[int | None] = []
    for attempt in range(1, int(attempts) + 1):
        current = int(base_memory) if base_memory else None
        for start, memory in raised:
            if start <= attempt:
                current = memory
        memories.append(current)
    return memories
