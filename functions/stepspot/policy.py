"""Fault-tolerance policy: the knobs of retries, backoff, the circuit breaker and concurrency. Pure.

One ``Policy`` object feeds two places that must agree: the ASL renderer (``stepspot.asl``) bakes the
Lambda retry settings into the state machines, and the Lambdas (scheduler, attempt manager) read the same
policy to decide retries, On-Demand fallback, breaker transitions and how many tasks run at once.
Defaults live here; a JSON or YAML file (``stepspot local --policy FILE``, ``python -m stepspot.asl
render --policy FILE``) or the Lambda environment variable ``STEPSPOT_POLICY`` (JSON) overrides any
subset of them. ``templates/README.md`` documents every knob.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stepspot.errors import ConfigurationError


class FailureClass(StrEnum):
    """Why an attempt failed; each class has its own retry budget and metric."""

    SPOT_RECLAIM = "spot_reclaim"
    CAPACITY = "capacity"
    INFRA_TRANSIENT = "infra_transient"
    APP_ERROR = "app_error"
    MISCONFIGURATION = "misconfiguration"


class _Knobs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Backoff(_Knobs):
    """Exponential backoff ``min(max, base * rate**(n-1))`` with optional full jitter."""

    base_seconds: float = Field(default=30.0, ge=0, le=3600, description="Delay before the first retry")
    rate: float = Field(default=2.0, ge=1.0, le=10.0, description="Growth factor per retry")
    max_seconds: float = Field(default=900.0, ge=0, le=86_400, description="Upper bound of one delay")
    jitter: bool = Field(default=True, description="Full jitter: a delay drawn uniformly from [0, computed delay]")

    def delay(self, retry_number: int, rate: float | None = None, unit_random: float = 1.0) -> int:
        """Seconds to wait before retry ``retry_number`` (1-based). ``unit_random`` in [0, 1] applies
        the jitter; pass a value derived from stable ids so a redelivered decision waits the same."""
        if retry_number < 1:
            raise ValueError("retry_number starts at 1")
        growth = self.rate if rate is None else rate
        raw = min(self.max_seconds, self.base_seconds * growth ** (retry_number - 1))
        if self.jitter:
            raw *= min(max(unit_random, 0.0), 1.0)
        return round(raw)


class ClassPolicy(_Knobs):
    """What to do after an attempt failed with one failure class."""

    max_retries: int = Field(ge=0, le=100, description="Retries of this class before the task fails")
    backoff: bool = Field(description="Wait with exponential backoff before retrying")
    fallback_to_on_demand_after: int | None = Field(
        default=None, ge=0, le=100, description="Move the task to On-Demand after this many failures of the class"
    )


def _default_classes() -> dict[FailureClass, ClassPolicy]:
    return {
        # A reclaim says nothing about the program: retry at once, resuming from the checkpoint; after
        # two reclaims of the same task stop gambling and finish it On-Demand.
        FailureClass.SPOT_RECLAIM: ClassPolicy(max_retries=6, backoff=False, fallback_to_on_demand_after=2),
        # No Spot capacity in the queue: the next attempt goes straight to On-Demand.
        FailureClass.CAPACITY: ClassPolicy(max_retries=3, backoff=False, fallback_to_on_demand_after=1),
        # Image pulls, host start failures, API throttling: usually gone after a short wait.
        FailureClass.INFRA_TRANSIENT: ClassPolicy(max_retries=3, backoff=True),
        # The program itself failed: the task's own retry_attempts (from the plan) bound this class;
        # max_retries here is only the ceiling.
        FailureClass.APP_ERROR: ClassPolicy(max_retries=10, backoff=True),
        # The job can never run as submitted (no instance type holds it, the image does not exist, the
        # role is denied): retrying only burns time, the task fails at once saying what to change.
        FailureClass.MISCONFIGURATION: ClassPolicy(max_retries=0, backoff=False),
    }


class Breaker(_Knobs):
    """Circuit breaker per Spot queue (see ``stepspot.breaker``)."""

    failure_threshold: int = Field(default=3, ge=1, le=1000, description="Spot failures within the window that open it")
    window_seconds: int = Field(default=600, ge=1, le=86_400, description="Length of the counting window")
    cooldown_seconds: int = Field(default=300, ge=1, le=86_400, description="Time open before one trial on Spot")
    trial_timeout_seconds: int = Field(
        default=3600, ge=1, le=7 * 86_400, description="A half-open trial that never reports is abandoned after this"
    )


class OutOfMemory(_Knobs):
    """Out-of-memory attempts (``OutOfMemoryError: Container killed due to memory usage``) retry with more."""

    factor: float = Field(
        default=1.5, ge=1.0, le=10.0, description="Memory of the next attempt: this many times the last"
    )
    ceiling_mib: int | None = Field(
        default=None,
        ge=128,
        le=1_572_864,
        description="Most memory an escalated attempt gets (MiB); null: the largest instance of the task's queue",
    )

    def next_memory(self, memory_mib: int, queue_ceiling_mib: int | None) -> int | None:
        """Memory of the retry, or None when it cannot grow (already at the ceiling)."""
        ceilings = [c for c in (self.ceiling_mib, queue_ceiling_mib) if c is not None]
        grown = -(-int(memory_mib * self.factor * 1000) // 1000)  # ceil, without float noise
        if ceilings:
            grown = min(grown, min(ceilings))
        return grown if grown > memory_mib else None


class LambdaRetry(_Knobs):
    """Retry of the orchestration Lambdas themselves (throttling, RetryableError), rendered into the ASL."""

    interval_seconds: int = Field(default=1, ge=1, le=300)
    max_attempts: int = Field(default=6, ge=0, le=99)
    backoff_rate: float = Field(default=2.0, ge=1.0, le=10.0)
    max_delay_seconds: int = Field(default=60, ge=1, le=3600)


class Policy(_Knobs):
    """Every orchestration knob, with defaults suitable for production."""

    backoff: Backoff = Backoff()
    failure_classes: dict[FailureClass, ClassPolicy] = Field(default_factory=_default_classes)
    breaker: Breaker = Breaker()
    out_of_memory: OutOfMemory = OutOfMemory()
    lambda_retry: LambdaRetry = LambdaRetry()
    max_running_tasks: int = Field(
        default=500, ge=1, le=100_000, description="Task executions running at once per workflow (dataflow order kept)"
    )
    # SubmitJob allows about 50 calls per second per account: a burst of submissions is retried with
    # full jitter for minutes (2 s doubling, at most submit_retry_max_delay_seconds apart), not seconds.
    submit_retry_attempts: int = Field(
        default=8, ge=0, le=20, description="Retries of a throttled or failed batch:SubmitJob call in the ASL"
    )
    submit_rate_per_second: float = Field(
        default=25.0,
        ge=0.1,
        le=50.0,
        description="SubmitJob calls per second for the whole deployment (Batch allows about 50 per account)",
    )
    submit_retry_max_delay_seconds: int = Field(
        default=60, ge=1, le=3600, description="Longest wait between two SubmitJob retries (before jitter)"
    )
    # At most 600 s: a skipped heartbeat delays the next one by this much at most, inside the 3,600 s margin
    # of StartWorkflow's HeartbeatSeconds (stepspot.workflow_limits.MARGIN_SECONDS).
    workflow_heartbeat_interval_seconds: float = Field(
        default=60.0,
        ge=0,
        le=600,
        description="Least time between two heartbeats of a workflow's token from one scheduler container (0: "
        "one on every task event)",
    )

    @model_validator(mode="before")
    @classmethod
    def _merge_classes(cls, data: Any) -> Any:
        # A partial failure_classes override keeps the defaults of the classes it does not name.
        if isinstance(data, dict) and isinstance(data.get("failure_classes"), dict):
            merged: dict[str, Any] = {k.value: v.model_dump() for k, v in _default_classes().items()}
            for name, value in data["failure_classes"].items():
                merged[str(name)] = {**merged.get(str(name), {}), **(value or {})}
            data = {**data, "failure_classes": merged}
        return data

    def for_class(self, failure_class: FailureClass) -> ClassPolicy:
        return self.failure_classes[failure_class]

    def to_json(self) -> str:
        return self.model_dump_json()


DEFAULT_POLICY = Policy()


def policy_from_mapping(data: dict[str, Any] | None, source: str = "policy") -> Policy:
    """Build a policy from a (partial) mapping; unknown or out-of-range knobs raise ConfigurationError."""
    try:
        return Policy.model_validate(data or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise ConfigurationError(
            f"{source}: {where}: {first['msg']}; see templates/README.md for the policy knobs and their ranges"
        ) from exc


def load_policy_file(path: str | Path) -> Policy:
    """Read a JSON or YAML policy file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigurationError(f"policy file {path} does not exist; pass an existing JSON or YAML file") from exc
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"policy file {path} is not valid JSON or YAML: {exc}") from exc
    if data is not None and not isinstance(data, dict):
        raise ConfigurationError(f"policy file {path} must hold a mapping of knobs, not {type(data).__name__}")
    return policy_from_mapping(data, source=str(path))


def policy_from_env_value(value: str | None) -> Policy:
    """The Lambdas' policy: ``STEPSPOT_POLICY`` (JSON, optional) over the defaults."""
    if not value:
        return DEFAULT_POLICY
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"STEPSPOT_POLICY is not valid JSON: {exc.msg}") from exc
    return policy_from_mapping(data, source="STEPSPOT_POLICY")


def stable_unit_random(*parts: str | int) -> float:
    """A number in [0, 1) fixed by its inputs: jitter that a redelivered event reproduces exactly."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
