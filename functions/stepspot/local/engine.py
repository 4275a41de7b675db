"""The embedded engine of local mode: the real state machines, handlers and jobs on one machine.

1. A moto server (``ThreadedMotoServer``, localhost, free port) holds S3, DynamoDB, Batch job
   definitions and Step Functions with its ASL interpreter enabled; jobs reach it via
   ``AWS_ENDPOINT_URL``.
2. The state machines are rendered from the same templates as on AWS, with local ARNs.
3. The interpreter's Lambda calls run the real handlers, each function in a process of its own
   (``LocalLambda``, ``lambda_processes``), DynamoDB in a process of its own (``dynamodb_process``); its
   Batch calls run subprocesses (``LocalBatch``) under the checkpoint agent, with fault injection.
4. An in-process EventBridge delivers job, interruption and execution events to the monitoring Lambdas.
5. After the run, the execution histories give state transitions and the largest state payload.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import shutil
import socket
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from stepspot import asl, call_log
from stepspot._gc import collected_after_setup
from stepspot.aws.s3 import definition_key
from stepspot.capacity import DeploymentCapacity, check_workflow
from stepspot.capacity_sources import offline_capacity
from stepspot.checkpointing.aws.table import CheckpointTable
from stepspot.errors import FatalError, UnknownTaskError, WorkflowValidationError
from stepspot.events import SFN_EXECUTION_STATUS_CHANGE
from stepspot.local import dynamodb_process, lambda_processes, moto_patches
from stepspot.local.aws_faults import AwsFaults
from stepspot.local.batch import SHUTDOWN_POLL_SECONDS, LocalBatch
from stepspot.local.contained import contained
from stepspot.local.direct_calls import direct_calls
from stepspot.local.events import EventBus
from stepspot.local.faults import Faults
from stepspot.local.instances import LocalInstances, jobs_described_by, ledger_placement
from stepspot.local.lambdas import ACCOUNT_ID, FUNCTIONS, REGION, LocalLambda
from stepspot.local.resources import LocalResources, create, definition_text
from stepspot.local.runner import local_runner
from stepspot.local.story import Story
from stepspot.local.summary import HistorySource, RunSummary, analyse_histories, summarise
from stepspot.plan import Plan, build_plan
from stepspot.policy import DEFAULT_POLICY, Policy
from stepspot.workflow import LoadedWorkflow

# Local mode runs at most this many task executions at once unless the policy says otherwise:
# each one is a thread of the interpreter, and the machine is small.
LOCAL_MAX_RUNNING_TASKS = 64


class LocalRunError(FatalError):
    """Indicates that a local run cannot start because of its input (file, flags, commands)."""


@dataclass
class LocalOptions:
    faults: Faults = field(default_factory=Faults)
    time_scale: float = 600.0  # simulated seconds per real second (waits, notices, breaker timers)
    policy: Policy | None = None
    # Job slots (processes at once). On AWS the compute environment scales out to the ready jobs; with a
    # slot per core a ready task on the critical path waited behind others (makespan 1.2x the critical
    # path on the scheduling benchmark). Four per core, at least 8: the host's CPU is time-shared instead.
    max_parallel_jobs: int = max(8, (os.cpu_count() or 2) * 4)
    workdir: Path = Path(".stepspot")
    timeout_seconds: float = 900.0  # real seconds before the run is abandoned
    duplicate_scheduler_events: bool = False  # deliver every scheduler event twice (at-least-once test)
    on_progress: Callable[[dict[str, Any]], None] | None = None
    on_event: Callable[[str], None] | None = None  # one line per event of the run's story, as it happens
    progress_interval: float = 0.5
    quiet_monitoring: bool = True
    # The deployment local mode emulates (its queues and instance types): every task must fit it, as on
    # AWS. None: the dev environment's Terraform variables (stepspot local --env).
    capacity: DeploymentCapacity | None = None
    aws_fault_rate: float = 0.0  # --aws-faults: AWS-side faults (stepspot.local.aws_faults), seeded by faults.seed


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def local_policy(policy: Policy, time_scale: float) -> Policy:
    """The breaker's timers and the scheduler's heartbeat interval run on wall-clock time inside the
    handlers: compress them like the rest (the interpreter compresses the heartbeat limit they serve)."""
    breaker = policy.breaker
    scaled = {
        "window_seconds": max(1, round(breaker.window_seconds / time_scale)),
        "cooldown_seconds": max(1, round(breaker.cooldown_seconds / time_scale)),
        "trial_timeout_seconds": max(1, round(breaker.trial_timeout_seconds / time_scale)),
    }
    running = policy.max_running_tasks
    if "max_running_tasks" not in policy.model_fields_set:
        running = min(running, LOCAL_MAX_RUNNING_TASKS)
    heartbeat_interval = policy.workflow_heartbeat_interval_seconds / time_scale
    return policy.model_copy(
        update={
            "breaker": breaker.model_copy(update=scaled),
            "max_running_tasks": running,
            "workflow_heartbeat_interval_seconds": heartbeat_interval,
        }
    )


def host_path(workflow_dir: Path) -> str:
    """PATH of the jobs: this installation's scripts (python, stepspot-agent) first, then the ``bin/``
    directory next to the workflow (standing for programs on the image's PATH), then the host's."""
    image_bin = [str(workflow_dir / "bin")] if (workflow_dir / "bin").is_dir() else []
    return os.pathsep.join([str(Path(sys.executable).parent), *image_bin, os.environ.get("PATH", "")])


def check_commands(plan: Plan, workflow_dir: Path) -> None:
    """A command that does not exist on this machine is a user error, reported before anything runs
    (every such task at once, so one fix round is enough)."""
    path = host_path(workflow_dir)
    missing: list[str] = []
    for task_id in plan.order:
        program = plan.tasks[task_id].command[0]
        if "/" in program:
            candidate = Path(program) if Path(program).is_absolute() else workflow_dir / program
            if candidate.exists():
                continue
        elif shutil.which(program, path=path):
            continue
        missing.append(f"{task_id!r} ({program!r})")
    if missing:
        which = f"task {missing[0]}" if len(missing) == 1 else f"{len(missing)} tasks: {', '.join(missing)}"
        raise LocalRunError(
            f"command not found on this machine for {which}; local mode runs each task's "
            "command on the host (no container), so install them or change those tasks' commands"
        )


def check_task_ids(plan: Plan, faults: Faults) -> None:
    for flag, ids in (
        ("--fail-task", faults.failing_tasks),
        ("--reclaim-task", faults.reclaim_tasks),
        ("--reclaim-once", faults.reclaim_once_tasks),
    ):
        for task_id in sorted(ids):
            if task_id not in plan.tasks:
                known = ", ".join(plan.order[:8]) + (", ..." if len(plan.order) > 8 else "")
                raise UnknownTaskError(
                    f"{flag} {task_id}: the workflow has no task {task_id!r} (its tasks: {known})", task_id=task_id
                )


class LocalEngine:
    def __init__(self, options: LocalOptions | None = None) -> None:
        self.options = options or LocalOptions()
        self._interrupted = threading.Event()
        self._batch: LocalBatch | None = None

    def interrupt(self) -> None:
        """Stop the run soon (Ctrl-C): the workflow is stopped, its jobs killed, the emulator shut
        down; ``run`` returns a summary with status INTERRUPTED. Safe from a signal handler."""
        self._interrupted.set()

    def kill_jobs_now(self) -> None:
        """Last resort (a second Ctrl-C): SIGKILL every running job's process group, no waiting."""
        if self._batch is not None:
            self._batch.kill_all()

    def run(self, loaded: LoadedWorkflow, source: Path, workflow_id: str | None = None) -> RunSummary:
        options = self.options
        workflow_id = workflow_id or _local_workflow_id(loaded)
        capacity = options.capacity or offline_capacity("dev")
        problems = check_workflow(loaded.workflow, capacity)
        if problems:  # before anything starts: a task no queue of the emulated deployment can hold
            raise WorkflowValidationError(problems, source=str(source))
        plan = build_plan(loaded.workflow, workflow_id, loaded.warnings, graph=loaded.graph)
        check_task_ids(plan, options.faults)
        workflow_dir = source.resolve().parent
        check_commands(plan, workflow_dir)
        runner = local_runner()  # the task runner bundle, or a refusal naming the fix before anything starts
        policy = local_policy(options.policy or DEFAULT_POLICY, options.time_scale)
        if self._interrupted.is_set():
            raise KeyboardInterrupt

        call_log.install_from_env()  # the test suite's IAM evaluation records the Lambdas' calls too

        run_dir = (options.workdir / "runs" / workflow_id).resolve()
        if run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        port = _free_port()
        endpoint = f"http://127.0.0.1:{port}"
        resources = LocalResources()
        env = self._lambda_environment(resources, policy, port, capacity)
        server = _emulator_server(port)
        server.start()
        diagnostics = _Diagnostics(run_dir / "engine.log")
        bus: EventBus | None = None
        batch: LocalBatch | None = None
        lambdas: LocalLambda | None = None
        mock = None
        stopping: threading.Thread | None = None
        process = contextlib.ExitStack()  # what the run changes in this process, undone last (local.contained)
        try:
            setup_done = process.enter_context(collected_after_setup())
            router = process.enter_context(contained(env, run_dir / "lambdas.log"))
            _configure_moto(endpoint)
            # The Lambdas call the same backends without HTTP (5x faster), DynamoDB in a process of its own;
            # the job subprocesses reach them through the server.
            from moto import mock_aws

            mock = mock_aws(config=cast(Any, MOTO_CONFIG))
            mock.start(reset=False)
            # DynamoDB on the other core, forked before the run has a table or a thread of its own.
            aws_faults = AwsFaults(rate=options.aws_fault_rate, seed=options.faults.seed)
            dynamodb = process.enter_context(dynamodb_process.forked(len(FUNCTIONS), aws_faults))
            served_elsewhere = {"dynamodb": dynamodb.call}
            import boto3

            session = boto3.session.Session(region_name=REGION)
            definitions = asl.render({f"{k}_arn": v for k, v in resources.function_arns.items()}, policy)
            # On the other core while the resources are made: create() registers the state machines last.
            moto_patches.parse_ahead_of(definition_text(definition) for definition in definitions.values())
            job_definitions = create(session, resources, definitions)
            instances = LocalInstances(session, resources, ledger_placement(plan, options.faults.seed))
            instances.create()
            os.environ["STEPSPOT_JOB_DEFINITION_ARN"] = job_definitions["job"]
            os.environ["STEPSPOT_MNP_JOB_DEFINITION_ARN"] = job_definitions["mnp"]
            if boto3.DEFAULT_SESSION is None:  # the handlers' clients come from boto3's default session
                boto3.setup_default_session()
            handler_session = cast(Any, boto3.DEFAULT_SESSION)
            _load_service_models(handler_session)
            for module_name in FUNCTIONS.values():  # imported once, here: each function's process inherits it
                importlib.import_module(module_name)
            functions = process.enter_context(
                lambda_processes.forked(
                    dict(zip(FUNCTIONS, dynamodb.reserved, strict=True)),
                    run_dir / "lambdas.log",
                    handler_session.events,
                )
            )
            serve = lambda_processes.server(handler_session.events, handler_session._session)
            lambdas = LocalLambda(resources.function_arns, router, functions, serve)
            if options.duplicate_scheduler_events:
                lambdas.duplicate.add("scheduler")
            bus = EventBus(lambdas.call, aws_faults.event_deliveries if aws_faults.enabled else None)
            bus.start()
            batch = LocalBatch(
                workdir=run_dir,
                base_environment=self._job_environment(env, workflow_dir, endpoint),
                faults=options.faults,
                time_scale=options.time_scale,
                expected_seconds=lambda task_id: _expected_seconds(plan, task_id, options.time_scale),
                spot_queues={resources.spot_queue, resources.gpu_spot_queue},
                max_parallel_jobs=options.max_parallel_jobs,
                bus=bus,
                runner=runner,
                workflow_dir=workflow_dir,
                latest_checkpoint=CheckpointTable(
                    session.client("dynamodb"), resources.checkpoint_table
                ).latest_sequence,
            )
            batch.place_instance = instances.place
            batch.start()
            self._batch = batch
            story = Story(batch, options.on_event)
            story.attach(lambdas)
            with (
                moto_patches.hooked(
                    aws_faults.lambda_client(lambdas),
                    aws_faults.batch_client(batch),
                    options.time_scale,
                    sync_poll_seconds=0.05,
                    execution_ended=self._execution_ended(bus),
                ),
                aws_faults.installed(handler_session.events),
                jobs_described_by(batch, handler_session.events),
                direct_calls(handler_session.events, served_elsewhere),
                direct_calls(session.events, served_elsewhere),
            ):
                setup_done()
                execution = self._execute(session, resources, plan, source, loaded, bus)
                if self._interrupted.is_set():
                    batch.close()  # no job outlives an interrupted run
                # The executions have ended: their histories are read while the bus delivers what is left
                # (the monitor's backlog keeps another process busy meanwhile, not this one).
                with ThreadPoolExecutor(max_workers=1, thread_name_prefix="histories") as reader:
                    arns = (execution["executionArn"], resources.state_machine_arn("task"))
                    histories = reader.submit(analyse_histories, HistorySource(), *arns)
                    # Every event of the run reaches its Lambdas before the summary counts what they did;
                    # what cannot (a stuck handler, an interrupted run) is reported as undelivered.
                    bus.close(timeout=1.0 if self._interrupted.is_set() else 300.0)
                    # Nothing reaches the functions any more: their processes leave while the summary is
                    # made, and the jobs' servers (each stops at its next shutdown poll) stop meanwhile.
                    lambdas.close()
                    lambda_processes.release(functions)
                    stopping = threading.Thread(target=_stop_servers, args=(batch, server), name="stepspot-stop")
                    stopping.start()
                    summary = summarise(
                        session=session,
                        resources=resources,
                        plan=plan,
                        execution=execution,
                        histories=histories.result(),
                        batch=batch,
                        bus=bus,
                        router=router,
                        time_scale=options.time_scale,
                        run_dir=run_dir,
                        story=story,
                        interrupted=self._interrupted.is_set(),
                    )
                if aws_faults.enabled:
                    aws_faults.injected.update(dynamodb.injected_faults())
                    summary.events["aws_faults"] = _fault_report(aws_faults, session, resources, plan)
            return summary
        finally:
            if stopping is not None:
                stopping.join()  # the jobs, their IMDS and the server were stopped while the summary was made
            else:
                _stop_servers(batch, server)
            if bus is not None:
                bus.close(timeout=1.0)
            if lambdas is not None:
                lambdas.close()  # asynchronous invocations left after the end (duplicates) are dropped
            diagnostics.close()
            if mock is not None:
                mock.stop()
            process.close()

    # -- internals --------------------------------------------------------------------------------

    def _lambda_environment(
        self, resources: LocalResources, policy: Policy, port: int, capacity: DeploymentCapacity
    ) -> dict[str, str]:
        gpu: dict[str, str] = {}
        if capacity.has_gpu:
            gpu = {
                "STEPSPOT_GPU_SPOT_QUEUE_ARN": resources.queue_arn(resources.gpu_spot_queue),
                "STEPSPOT_GPU_ONDEMAND_QUEUE_ARN": resources.queue_arn(resources.gpu_ondemand_queue),
            }
        return {
            **gpu,
            "STEPSPOT_INSTANCE_TYPES": json.dumps(capacity.instance_types_by_queue()),
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "MOTO_PORT": str(port),
            "STEPSPOT_BUCKET": resources.bucket,
            "STEPSPOT_STATE_TABLE": resources.state_table,
            "STEPSPOT_CHECKPOINT_TABLE": resources.checkpoint_table,
            "STEPSPOT_TASK_STATE_MACHINE_ARN": resources.state_machine_arn("task"),
            # The scheduler's continuations and the monitor's reports: served by LocalLambda (asynchronously).
            "STEPSPOT_SCHEDULER_FUNCTION_ARN": resources.function_arns["scheduler"],
            "STEPSPOT_SPOT_QUEUE_ARN": resources.queue_arn(resources.spot_queue),
            "STEPSPOT_ONDEMAND_QUEUE_ARN": resources.queue_arn(resources.ondemand_queue),
            "STEPSPOT_SPOT_COMPUTE_ENV": resources.spot_compute_env,
            "STEPSPOT_ONDEMAND_COMPUTE_ENV": resources.ondemand_compute_env,
            "STEPSPOT_ENVIRONMENT": "local",
            "STEPSPOT_SNS_TOPIC_ARN": "",
            "STEPSPOT_POLICY": policy.to_json(),
            "STEPSPOT_CHECKPOINT_RETENTION_DAYS": "1",
            "STEPSPOT_CHECKPOINT_KEEP_LAST": "3",
            "POWERTOOLS_SERVICE_NAME": "stepspot-local",
            "POWERTOOLS_METRICS_NAMESPACE": "Stepspot",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }

    def _job_environment(self, env: dict[str, str], workflow_dir: Path, endpoint: str) -> dict[str, str]:
        keep = ("HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "PYTHONPATH", call_log.CALL_LOG_ENV)
        base = {k: os.environ[k] for k in keep if k in os.environ}
        base.update(
            {k: v for k, v in env.items() if k.startswith(("AWS_", "STEPSPOT_BUCKET", "STEPSPOT_CHECKPOINT_TABLE"))}
        )
        base["STEPSPOT_STATE_TABLE"] = env["STEPSPOT_STATE_TABLE"]
        base["AWS_ENDPOINT_URL"] = endpoint
        base["PATH"] = host_path(workflow_dir)
        base["STEPSPOT_WORKFLOW_DIR"] = str(workflow_dir)
        base["PYTHONUNBUFFERED"] = "1"
        return base

    def _execute(
        self,
        session: Any,
        resources: LocalResources,
        plan: Plan,
        source: Path,
        loaded: LoadedWorkflow,
        bus: EventBus,
    ) -> dict[str, Any]:
        s3 = session.client("s3")
        key = definition_key(plan.workflow_id)  # where `stepspot run` puts it, the only key the parser may read
        s3.put_object(Bucket=resources.bucket, Key=key, Body=source.read_bytes())
        sfn = session.client("stepfunctions")
        workflow_arn = resources.state_machine_arn("workflow")
        started = sfn.start_execution(
            stateMachineArn=workflow_arn,
            name=plan.workflow_id,
            input=json.dumps({"definition_uri": f"s3://{resources.bucket}/{key}", "workflow_id": plan.workflow_id}),
        )
        execution_arn = started["executionArn"]
        described_at_start = sfn.describe_execution(executionArn=execution_arn)
        bus.publish(SFN_EXECUTION_STATUS_CHANGE, _execution_detail(described_at_start), [execution_arn])
        deadline = time.monotonic() + self.options.timeout_seconds
        from stepspot.aws.scheduler_state import SchedulerState

        task_states = SchedulerState(session.resource("dynamodb"), resources.state_table)
        next_progress = 0.0
        status_of = _emulated_execution_status()
        while True:
            if status_of(execution_arn) != "RUNNING":
                described: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
                break
            if self._interrupted.is_set():
                _stop_all(sfn, resources, execution_arn)
                return {**sfn.describe_execution(executionArn=execution_arn), "status": "INTERRUPTED"}
            if time.monotonic() > deadline:
                sfn.stop_execution(executionArn=execution_arn, error="LocalTimeout", cause="local run timed out")
                raise LocalRunError(
                    f"the workflow did not finish within {self.options.timeout_seconds:.0f} s; "
                    "raise --timeout or lower the tasks' work"
                )
            if self.options.on_progress and time.monotonic() >= next_progress:
                began = time.monotonic()
                self.options.on_progress(_progress(task_states, plan))
                # The snapshot reads every task item: at most a tenth of the engine's time goes to it.
                spent = time.monotonic() - began
                next_progress = began + max(self.options.progress_interval, 10 * spent)
            self._interrupted.wait(0.05)  # the end of the run is seen within 50 ms (describe is in-process)
        _settle_task_executions(sfn, resources, deadline=time.monotonic() + 10)
        if self.options.on_progress:
            self.options.on_progress(_progress(task_states, plan))
        return described

    def _execution_ended(self, bus: EventBus) -> Callable[[Any], None]:
        """Publish an execution's end as Step Functions does (the rules pick what reaches the monitor),
        until the run is interrupted: what Ctrl-C stops is the run's own teardown, not news for it."""

        def publish(execution: Any) -> None:
            if not self._interrupted.is_set():
                described = execution.to_describe_output()
                bus.publish(SFN_EXECUTION_STATUS_CHANGE, _execution_detail(described), [described["executionArn"]])

        return publish


# The services the handlers call on every task's path. Loading a service's model takes botocore 50-150 ms
# the first time in a session; done before the workflow starts (and the function processes are forked),
# that is not counted as orchestration overhead of the run (it was a third of a second on the first task's
# path). EC2 and ECS (0.05 s) are left to the functions that use them: the monitor's cost sources and the
# interruption handler, off the tasks' path.
HANDLER_SERVICES = ("s3", "dynamodb", "stepfunctions", "batch", "sns", "lambda")


def _load_service_models(session: Any) -> None:
    for service in HANDLER_SERVICES:
        session.client(service, region_name=REGION)
    session.resource("dynamodb", region_name=REGION)


def _stop_all(sfn: Any, resources: LocalResources, execution_arn: str, quiet_for: float = 0.15) -> None:
    """Stop the workflow execution and every running task execution (Ctrl-C), until none has been running
    for ``quiet_for`` seconds (at most 2 s): a scheduler invocation in flight may still start one, whose
    states would otherwise go on into the emulator's teardown."""
    cause = "interrupted on this machine (Ctrl-C)"
    with contextlib.suppress(Exception):
        sfn.stop_execution(executionArn=execution_arn, error="Interrupted", cause=cause)
    arn = resources.state_machine_arn("task")
    deadline, quiet_since = time.monotonic() + 2.0, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - quiet_since < quiet_for:
        with contextlib.suppress(Exception):
            for item in sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING").get("executions", []):
                sfn.stop_execution(executionArn=item["executionArn"], error="Interrupted", cause=cause)
                quiet_since = time.monotonic()
        time.sleep(0.05)


class _Diagnostics:
    """While a run goes, Python logging, warnings and thread tracebacks go to the run's engine.log,
    never to the terminal (the CLI's display owns it)."""

    def __init__(self, path: Path) -> None:
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s"))
        root = logging.getLogger()
        self._saved_handlers = list(root.handlers)
        self._saved_level = root.level
        for handler in self._saved_handlers:
            root.removeHandler(handler)
        root.addHandler(self.handler)
        root.setLevel(logging.WARNING)
        logging.captureWarnings(True)
        self._saved_hook = threading.excepthook
        threading.excepthook = self._thread_exception

    def _thread_exception(self, args: threading.ExceptHookArgs) -> None:
        name = getattr(args.thread, "name", "?")
        logging.getLogger("stepspot.local").error("thread %s failed", name, exc_info=args.exc_value)

    def close(self) -> None:
        root = logging.getLogger()
        root.removeHandler(self.handler)
        for handler in self._saved_handlers:
            root.addHandler(handler)
        root.setLevel(self._saved_level)
        logging.captureWarnings(False)
        self.handler.close()
        threading.excepthook = self._saved_hook


def _fault_report(aws_faults: AwsFaults, session: Any, resources: LocalResources, plan: Plan) -> dict[str, Any]:
    """What --aws-faults injected, and what the run left behind (counters, running executions)."""
    from stepspot.aws.scheduler_state import SchedulerState

    counters = SchedulerState(session.resource("dynamodb"), resources.state_table).counters(plan.workflow_id)
    sfn = session.client("stepfunctions")
    running = sfn.list_executions(stateMachineArn=resources.state_machine_arn("task"), statusFilter="RUNNING")
    return {
        "injected": aws_faults.summary(),
        "counters": {
            "total": counters.total,
            "succeeded": counters.succeeded,
            "failed": counters.failed,
            "skipped": counters.skipped,
            "running": counters.running,
            "ready": counters.ready,
        },
        "task_executions_running": len(running.get("executions", [])),
    }


def _emulated_execution_status() -> Callable[[str], str]:
    """An execution's status as the emulator holds it: the engine looks every 50 ms, and through the API
    that was one in ten of a run's calls (the run's own DescribeExecution follows once it has ended)."""
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    backend = stepfunctions_parser_backends[ACCOUNT_ID][REGION]

    # exec_status is None until the interpreter has started the execution
    def status(execution_arn: str) -> str:
        execution = backend.describe_execution(execution_arn)
        return str(getattr(getattr(execution, "exec_status", None), "value", "RUNNING"))

    return status


def _settle_task_executions(sfn: Any, resources: LocalResources, deadline: float) -> None:
    """Task executions end just after they answer the scheduler: wait for their last state."""
    arn = resources.state_machine_arn("task")
    while time.monotonic() < deadline:
        running = sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING").get("executions", [])
        if not running:
            return
        time.sleep(0.1)


def _execution_detail(described: dict[str, Any]) -> dict[str, Any]:

    def ms(value: Any) -> int | None:
        return int(value.timestamp() * 1000) if value else None

    return {
        "executionArn": described["executionArn"],
        "stateMachineArn": described["stateMachineArn"],
        "name": described["name"],
        "status": described["status"],
        "startDate": ms(described.get("startDate")),
        "stopDate": ms(described.get("stopDate")),
        "input": described.get("input"),  # EventBridge carries both (the monitor reads the task's input)
        "output": described.get("output"),
        "error": described.get("error"),
        "cause": (described.get("cause") or "")[:1000] or None,
    }


def _progress(task_states: Any, plan: Plan) -> dict[str, Any]:
    """Counts by state and the task items, read through the scheduler's adapter (``SchedulerState``)."""
    items = task_states.tasks(plan.workflow_id)
    counts = Counter(item.state for item in items)
    tasks = {item.task_id: dict(item.raw) for item in items}
    return {"workflow_id": plan.workflow_id, "total": len(plan.tasks), "counts": dict(counts), "tasks": tasks}


def _expected_seconds(plan: Plan, task_id: str, time_scale: float) -> float:
    task = plan.tasks.get(task_id)
    return (task.estimated_runtime_seconds if task else 60) / time_scale


def _local_workflow_id(loaded: LoadedWorkflow) -> str:
    import re
    import secrets

    slug = re.sub(r"[^a-z0-9]+", "-", loaded.workflow.name.lower()).strip("-")[:48] or "workflow"
    return f"{slug}-{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(2)}"


def _stop_servers(batch: LocalBatch | None, server: Any) -> None:
    """Stop the jobs (none is left in a run that ended), their IMDS and the emulator server."""
    if batch is not None:
        batch.close()
    server.stop()


def _emulator_server(port: int) -> Any:
    """moto's threaded server for the job subprocesses, polling for its shutdown every
    ``SHUTDOWN_POLL_SECONDS``."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    class EmulatorServer(ThreadedMotoServer):
        def _server_entry(self) -> None:  # moto 5.2.5's, with the poll interval
            app = DomainDispatcherApplication(create_backend_app)
            self._server = make_server(self._ip_address, self._port, app, True, request_handler=MotoRequestHandler)
            self._server_ready_event.set()
            self._server.serve_forever(poll_interval=SHUTDOWN_POLL_SECONDS)

    return EmulatorServer(ip_address="127.0.0.1", port=port, verbose=False)


MOTO_CONFIG: dict[str, Any] = {
    "stepfunctions": {"execute_state_machine": True},
    "lambda": {"use_docker": False},
    "batch": {"use_docker": False},
}


def _configure_moto(endpoint: str) -> None:
    config = json.dumps(MOTO_CONFIG).encode()
    request = urllib.request.Request(
        f"{endpoint}/moto-api/config", data=config, method="POST", headers={"Content-Type": "application/json"}
    )
    for _ in range(50):
        try:
            with urllib.request.urlopen(request, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise LocalRunError(f"the local AWS emulator at {endpoint} did not start")
