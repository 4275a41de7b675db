"""Attempt manager Lambda: decides each task attempt of the task state machine, from start to retry.

Before an attempt it chooses where the attempt runs (Spot or On-Demand through the breaker, the queue, the
job request with the memory raised after an out-of-memory attempt); after a failed attempt it classifies
the failure and decides whether, when and on which capacity to retry. (Formerly the "fleet manager":
it manages attempts, not a fleet.) It also carries the operators' compute-environment verbs
(create / modify / terminate / check_health), which share its settings and Batch adapter.

Events:
  {"action": "choose_capacity", "workflow_id", "task_id", "plan_uri", "attempt", "on_demand"}
      -> the job request of the attempt: job_name, queue_arn, queue_name, capacity (SPOT|ON_DEMAND),
         job_definition_arn, multi_node, container_overrides | node_overrides, timeout_seconds,
         submit_delay_seconds (account-wide SubmitJob pacing, stepspot.aws.submit_pacing)
  {"action": "classify_failure", ... same ids ..., "job": <choose_capacity result>, "error": {"Error","Cause"}}
      -> the next state of the task execution: ids, attempt + 1, on_demand, and
         decision {action: retry|give_up, wait_seconds, failure_class, reason, exit_code}
  {"action": "create" | "terminate", "compute_environment": "spot" | "on_demand", "max_vcpus"?}
  {"action": "modify", "compute_environment", "desired_vcpus"?, "min_vcpus"?, "max_vcpus"?}
  {"action": "check_health"}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import boto3
from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stepspot import breaker, capacity, failures, fleet
from stepspot.aws.batch import Batch, job_name, queue_name
from stepspot.aws.breaker_store import BreakerStore
from stepspot.aws.definition_cache import DerivedDefinitionTable
from stepspot.aws.s3 import DocumentStore
from stepspot.aws.submit_pacing import SubmitPacer
from stepspot.aws.task_attempts import TaskAttempts
from stepspot.dataflow import DEFAULT_SHARED_MOUNT_PATH
from stepspot.emf import MetricBatch
from stepspot.errors import ConfigurationError, InvalidEventError, UnknownTaskError
from stepspot.handlers._cache import cold_start
from stepspot.handlers._plans import ShardedPlan, load_plan
from stepspot.metrics import DEFAULT_NAMESPACE, DIMENSION_ENVIRONMENT, MetricName
from stepspot.plan import Plan, PlannedTask
from stepspot.policy import FailureClass, Policy, policy_from_env_value
from stepspot.settings import LambdaSettings, load_settings
from stepspot.state_items import Task

logger = Logger()

FAILURE_METRICS = {
    FailureClass.SPOT_RECLAIM: MetricName.SPOT_RECLAIM_FAILURES,
    FailureClass.CAPACITY: MetricName.CAPACITY_FAILURES,
    FailureClass.INFRA_TRANSIENT: MetricName.INFRASTRUCTURE_FAILURES,
    FailureClass.APP_ERROR: MetricName.APPLICATION_FAILURES,
    FailureClass.MISCONFIGURATION: MetricName.MISCONFIGURATION_FAILURES,
}


class AttemptManagerSettings(LambdaSettings):
    bucket: str = Field(alias="STEPSPOT_BUCKET", min_length=3)
    state_table: str = Field(alias="STEPSPOT_STATE_TABLE", min_length=3)
    spot_queue_arn: str = Field(alias="STEPSPOT_SPOT_QUEUE_ARN", pattern=r"^arn:")
    ondemand_queue_arn: str = Field(alias="STEPSPOT_ONDEMAND_QUEUE_ARN", pattern=r"^arn:")
    # Multi-node jobs: their own On-Demand queue (cluster placement group); the On-Demand queue if unset.
    mnp_queue_arn: str | None = Field(None, alias="STEPSPOT_MNP_QUEUE_ARN", pattern=r"^arn:")
    # The GPU pair (Terraform gpu_enabled); tasks with GPUs cannot run without them.
    gpu_spot_queue_arn: str | None = Field(None, alias="STEPSPOT_GPU_SPOT_QUEUE_ARN", pattern=r"^arn:")
    gpu_ondemand_queue_arn: str | None = Field(None, alias="STEPSPOT_GPU_ONDEMAND_QUEUE_ARN", pattern=r"^arn:")
    # Instance types per queue ({"spot": [...], "on-demand": [...], "mnp": [...], "gpu-spot": [...], ...},
    # JSON): the ceiling of out-of-memory escalation. Unset: the contract's defaults (data/instance_types.json).
    instance_types_json: str | None = Field(None, alias="STEPSPOT_INSTANCE_TYPES")
    # Where the deployment mounts its shared file system (Terraform shared_mount_path): STEPSPOT_SHARED_DIR.
    shared_mount_path: str = Field(DEFAULT_SHARED_MOUNT_PATH, alias="STEPSPOT_SHARED_MOUNT_PATH", pattern=r"^/[^,\s]*$")
    mnp_compute_env: str | None = Field(None, alias="STEPSPOT_MNP_COMPUTE_ENV")
    spot_compute_env: str = Field(alias="STEPSPOT_SPOT_COMPUTE_ENV", min_length=1)
    ondemand_compute_env: str = Field(alias="STEPSPOT_ONDEMAND_COMPUTE_ENV", min_length=1)
    job_definition_arn: str = Field(alias="STEPSPOT_JOB_DEFINITION_ARN", pattern=r"^arn:")
    mnp_job_definition_arn: str = Field(alias="STEPSPOT_MNP_JOB_DEFINITION_ARN", pattern=r"^arn:")
    environment: str = Field(alias="STEPSPOT_ENVIRONMENT", min_length=1)
    policy_json: str | None = Field(None, alias="STEPSPOT_POLICY")
    namespace: str = Field(DEFAULT_NAMESPACE, alias="POWERTOOLS_METRICS_NAMESPACE")

    @field_validator("instance_types_json")
    @classmethod
    def _known_queues(cls, value: str | None) -> str | None:
        # Checked at cold start: a queue key Terraform and Python spell differently would silently
        # drop that queue's memory ceiling.
        if value is not None:
            try:
                unknown = sorted(set(capacity.instance_types_from_json(value)) - set(capacity.QUEUE_NAMES))
            except ValueError as exc:  # json.JSONDecodeError too
                raise ValueError(f"not a JSON object of queue name -> instance types ({exc})") from None
            if unknown:
                raise ValueError(f"unknown queue(s) {', '.join(unknown)}; expected {', '.join(capacity.QUEUE_NAMES)}")
        return value


class AttemptEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")

    action: Literal["choose_capacity", "classify_failure", "create", "modify", "terminate", "check_health"]
    workflow_id: str | None = Field(None, min_length=1, max_length=80)
    task_id: str | None = Field(None, min_length=1, max_length=80)
    plan_uri: str | None = Field(None, pattern=r"^s3://")
    attempt: int = Field(1, ge=1)
    on_demand: bool = False
    job: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    compute_environment: Literal["spot", "on_demand", "mnp"] = "spot"
    min_vcpus: int | None = Field(None, ge=0)
    desired_vcpus: int | None = Field(None, ge=0)
    max_vcpus: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _fields_of_action(self) -> AttemptEvent:
        if self.action in ("choose_capacity", "classify_failure"):
            missing = [n for n in ("workflow_id", "task_id", "plan_uri") if getattr(self, n) is None]
            if missing:
                raise ValueError(f"a {self.action} event needs {', '.join(missing)}")
        if self.action == "classify_failure" and self.error is None:
            raise ValueError("a classify_failure event needs error (the Catch's $.error)")
        return self


@dataclass(frozen=True)
class Runtime:
    """What a warm attempt manager keeps between invocations (built once per cold start)."""

    settings: AttemptManagerSettings
    policy: Policy
    documents: DocumentStore
    batch: Batch
    breakers: BreakerStore
    attempts: TaskAttempts
    pacer: SubmitPacer | None = None


@cold_start
def runtime() -> Runtime:
    settings = load_settings(AttemptManagerSettings)
    dynamodb = boto3.resource("dynamodb")
    policy = policy_from_env_value(settings.policy_json)
    return Runtime(
        settings=settings,
        policy=policy,
        documents=DocumentStore(boto3.client("s3"), settings.bucket),
        batch=Batch(boto3.client("batch"), DerivedDefinitionTable(dynamodb, settings.state_table)),
        breakers=BreakerStore(dynamodb, settings.state_table),
        attempts=TaskAttempts(dynamodb, settings.state_table),
        pacer=SubmitPacer(dynamodb, settings.state_table, policy.submit_rate_per_second),
    )


class AttemptManager:
    """The attempt manager's work for one invocation, on the runtime's adapters."""

    def __init__(self, rt: Runtime, metrics: MetricBatch) -> None:
        self.settings = rt.settings
        self.policy = rt.policy
        self.documents = rt.documents
        self.batch = rt.batch
        self.breakers = rt.breakers
        self.attempts = rt.attempts
        self.pacer = rt.pacer
        self.metrics = metrics
        self.spot_queue = queue_name(rt.settings.spot_queue_arn)

    def _task(self, request: AttemptEvent) -> tuple[ShardedPlan | Plan, PlannedTask]:
        assert request.plan_uri and request.task_id
        plan = load_plan(self.documents, request.plan_uri)  # reads only the task's shard of the plan
        if not plan.has_task(request.task_id):
            raise UnknownTaskError(f"task {request.task_id!r} is not part of workflow {plan.workflow_id}")
        return plan, plan.task(request.task_id)

    def _queue_arns(self) -> dict[str, str | None]:
        s = self.settings
        return {
            capacity.SPOT: s.spot_queue_arn,
            capacity.ON_DEMAND: s.ondemand_queue_arn,
            capacity.MNP: s.mnp_queue_arn or s.ondemand_queue_arn,
            capacity.GPU_SPOT: s.gpu_spot_queue_arn,
            capacity.GPU_ON_DEMAND: s.gpu_ondemand_queue_arn,
        }

    def _queue(self, choice: fleet.Capacity, task: PlannedTask) -> str:
        key = fleet.queue_key(task.queue, task.gpus, task.multi_node, choice)
        arn = self._queue_arns()[key]
        if arn is None:
            variable = "STEPSPOT_GPU_SPOT_QUEUE_ARN" if key == capacity.GPU_SPOT else "STEPSPOT_GPU_ONDEMAND_QUEUE_ARN"
            raise ConfigurationError(
                f"task {task.id!r} needs queue {key!r}, which this deployment does not have ({variable} is not set): "
                "deploy with gpu_enabled = true, or remove the task's gpus/queue"
            )
        return arn

    def _memory_ceiling(self, task: PlannedTask) -> int | None:
        """The most memory any queue the task may run on offers a job of its vCPUs and GPUs."""
        if self.settings.instance_types_json:
            by_queue = capacity.instance_types_from_json(self.settings.instance_types_json)
        else:
            by_queue = capacity.capacity_from_variables({"gpu_enabled": True}, "", "").instance_types_by_queue()
        keys = capacity.queues_of(task.queue, task.gpus, task.nodes, task.use_spot)
        ceilings = [capacity.memory_ceiling(by_queue.get(key, []), task.vcpus, task.gpus) for key in keys]
        known = [c for c in ceilings if c is not None]
        return min(known) if known else None

    def choose_capacity(self, request: AttemptEvent) -> dict[str, Any]:
        plan, task = self._task(request)
        choice = fleet.preliminary_choice(task.multi_node, task.use_spot, request.on_demand, task.queue)
        if choice.needs_breaker:
            spot_queue = queue_name(self._queue(fleet.Capacity.SPOT, task))  # the breaker of its family's Spot queue
            admission, _ = self.breakers.apply(
                spot_queue, lambda state, now: breaker.admit(state, now, self.policy.breaker)
            )
            choice = fleet.apply_breaker(admission)
        queue_arn = self._queue(choice.capacity, task)
        recorded = self.attempts.record_choice(
            plan.workflow_id,
            task.id,
            request.attempt,
            queue_name(queue_arn),
            choice.capacity.value,
            choice.fallback,
            base_memory=task.memory,
        )
        if (
            recorded.get(Task.CHOICE_ATTEMPT) == request.attempt
            and recorded.get(Task.CAPACITY) != choice.capacity.value
        ):
            # A redelivery: keep what the first delivery chose (and told the breaker).
            chosen = fleet.Capacity(str(recorded[Task.CAPACITY]))
            choice = fleet.CapacityChoice(chosen, "as chosen by the first delivery", fallback=choice.fallback)
            queue_arn = self._queue(chosen, task)
        base = self.settings.mnp_job_definition_arn if task.multi_node else self.settings.job_definition_arn
        job = fleet.job_request(
            workflow_id=plan.workflow_id,
            environment=self.settings.environment,
            task=task,
            attempt=request.attempt,
            choice=choice,
            queue_arn=queue_arn,
            queue_name=queue_name(queue_arn),
            job_definition_arn=self.batch.definition_for_image(base, task.container_image),
            job_name=job_name(plan.workflow_id, task.id, request.attempt),
            memory=int(recorded.get(Task.NEXT_MEMORY) or task.memory),  # raised after an out-of-memory attempt
            shared_mount_path=self.settings.shared_mount_path,
        )
        # The PaceSubmission state waits this long before RunJob (account-wide SubmitJob budget).
        job["submit_delay_seconds"] = self.pacer.reserve() if self.pacer else 0
        return job

    def classify_failure(self, request: AttemptEvent) -> dict[str, Any]:
        plan, task = self._task(request)
        error = request.error or {}
        job = request.job or {}
        found = failures.classify(error.get("Error"), error.get("Cause"))
        cls = found.failure_class
        item, counted = self.attempts.record_failure(
            plan.workflow_id, task.id, request.attempt, cls.value, found.reason, found.job_id
        )
        if counted:
            self.metrics.add(FAILURE_METRICS[cls], 1)
            if job.get("capacity") == "SPOT" and cls in (FailureClass.SPOT_RECLAIM, FailureClass.CAPACITY):
                self.breakers.apply(
                    str(job.get("queue_name") or self.spot_queue),
                    lambda state, now: (None, breaker.record_failure(state, now, self.policy.breaker)),
                )
        decision = failures.decide(
            found,
            int(item.get(f"{Task.FAILURES_PREFIX}{cls.value}", 1)),
            task_retry_attempts=task.retry_attempts,
            task_backoff_multiplier=task.backoff_multiplier,
            use_spot=task.use_spot,
            on_demand_now=request.on_demand,
            policy=self.policy,
            jitter_key=(plan.workflow_id, task.id),
        )
        if found.out_of_memory:
            memory = int(job.get("memory") or task.memory)
            next_memory = self.policy.out_of_memory.next_memory(memory, self._memory_ceiling(task))
            decision = failures.with_memory(decision, memory, next_memory)
            if decision.retry and next_memory is not None:
                self.attempts.record_next_memory(plan.workflow_id, task.id, request.attempt + 1, next_memory)
        logger.info("attempt failed", extra={"classification": found.to_dict(), "decision": decision.reason})
        return {
            "workflow_id": plan.workflow_id,
            "task_id": task.id,
            "plan_uri": request.plan_uri,
            "attempt": request.attempt + 1,
            "on_demand": decision.on_demand,
            "decision": {
                "action": decision.action,
                "wait_seconds": decision.wait_seconds,
                "failure_class": cls.value,
                "reason": decision.reason,
                "exit_code": found.exit_code,
            },
        }

    # -- compute environments (the seed's verbs) --------------------------------------------------

    def _environment_name(self, which: str) -> str:
        if which == "mnp":
            if not self.settings.mnp_compute_env:
                raise InvalidEventError(
                    "compute_environment 'mnp' needs STEPSPOT_MNP_COMPUTE_ENV in the function's environment"
                )
            return self.settings.mnp_compute_env
        return self.settings.spot_compute_env if which == "spot" else self.settings.ondemand_compute_env

    def create(self, request: AttemptEvent) -> dict[str, Any]:
        name = self._environment_name(request.compute_environment)
        self.batch.update_environment(name, enabled=True, max_vcpus=request.max_vcpus)
        return self._environment_summary(name)

    def modify(self, request: AttemptEvent) -> dict[str, Any]:
        name = self._environment_name(request.compute_environment)
        if request.min_vcpus is None and request.desired_vcpus is None and request.max_vcpus is None:
            raise InvalidEventError("modify needs at least one of min_vcpus, desired_vcpus, max_vcpus")
        self.batch.update_environment(
            name, min_vcpus=request.min_vcpus, desired_vcpus=request.desired_vcpus, max_vcpus=request.max_vcpus
        )
        return self._environment_summary(name)

    def terminate(self, request: AttemptEvent) -> dict[str, Any]:
        """Scale to zero and disable: running jobs finish, no new instance starts."""
        name = self._environment_name(request.compute_environment)
        self.batch.update_environment(name, enabled=False, min_vcpus=0, desired_vcpus=0)
        return self._environment_summary(name)

    def check_health(self) -> dict[str, Any]:
        names = [self.settings.spot_compute_env, self.settings.ondemand_compute_env]
        if self.settings.mnp_compute_env:
            names.append(self.settings.mnp_compute_env)
        environments = [self._environment_summary(name) for name in names]
        queues = {}
        arns = [self.settings.spot_queue_arn, self.settings.ondemand_queue_arn]
        if self.settings.mnp_queue_arn:
            arns.append(self.settings.mnp_queue_arn)
        for arn in arns:
            queues[queue_name(arn)] = {
                status.lower(): len(self.batch.jobs_in_queue(arn, status)) for status in ("RUNNABLE", "RUNNING")
            }
        spot_breaker = self.breakers.get(self.spot_queue)
        return {
            "healthy": all(e["healthy"] for e in environments),
            "compute_environments": environments,
            "queues": queues,
            "spot_breaker": {"state": spot_breaker.status.value, "failures_in_window": spot_breaker.failures},
        }

    def _environment_summary(self, name: str) -> dict[str, Any]:
        described = self.batch.describe_environment(name)
        resources = described.get("computeResources") or {}
        return {
            "name": name,
            "state": described.get("state"),
            "status": described.get("status"),
            "status_reason": described.get("statusReason"),
            "healthy": described.get("status") == "VALID" and described.get("state") == "ENABLED",
            "min_vcpus": resources.get("minvCpus"),
            "desired_vcpus": resources.get("desiredvCpus"),
            "max_vcpus": resources.get("maxvCpus"),
        }


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    rt = runtime()
    # Per invocation, not per container: local mode runs several invocations at once on threads.
    metrics = MetricBatch(rt.settings.namespace, {DIMENSION_ENVIRONMENT: rt.settings.environment})
    try:
        return _handle(AttemptManager(rt, metrics), event)
    finally:
        metrics.flush()


def _handle(manager: AttemptManager, event: dict[str, Any]) -> dict[str, Any]:
    try:
        request = AttemptEvent.model_validate(event)
    except ValidationError as exc:
        raise InvalidEventError.from_validation(exc, "attempt manager event") from None
    logger.append_keys(action=request.action, workflow_id=request.workflow_id, task_id=request.task_id)
    if request.action == "choose_capacity":
        return manager.choose_capacity(request)
    if request.action == "classify_failure":
        return manager.classify_failure(request)
    if request.action == "create":
        return manager.create(request)
    if request.action == "modify":
        return manager.modify(request)
    if request.action == "terminate":
        return manager.terminate(request)
    return manager.check_health()
