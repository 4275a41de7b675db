"""What a local run did, measured: the summary table and ``--summary-json``.

Transitions and payload sizes come from the execution histories (as AWS bills and limits them); task
outcomes from the state table; attempts, interruptions and runtimes from the local Batch; checkpoints
from the checkpoint table; costs from the price table applied to the measured (scaled) runtimes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from stepspot.checkpointing.model import SEQUENCE_SK_PREFIX
from stepspot.estimate import default_prices, task_cost
from stepspot.local.ledger import local_run_record_of
from stepspot.plan import Plan
from stepspot.report.model import RunRecord
from stepspot.run_health import CHECKPOINT_EMPTY_MESSAGE, RUN_SK_PREFIX, reclaim_lost_work, restore_seconds

STEP_FUNCTIONS_PAYLOAD_LIMIT = 262_144


@dataclass
class RunSummary:
    workflow_id: str
    status: str
    error: str | None
    cause: str | None
    tasks: dict[str, int]
    attempts: int
    interruptions: int
    capacity_failures: int
    app_failures: int
    fallbacks_to_on_demand: int
    checkpoints: dict[str, int]
    makespan_seconds: float
    makespan_scaled_seconds: float
    critical_path: dict[str, Any]
    transitions: dict[str, Any]
    largest_state_payload_bytes: int
    estimated_cost: dict[str, Any]
    time_scale: float
    metrics: dict[str, float]
    events: dict[str, Any]
    per_task: list[dict[str, Any]] = field(default_factory=list)
    run_dir: str = ""
    data_problems: list[str] = field(default_factory=list)  # undeclared inputs found in failed jobs' logs
    interrupted: bool = False
    failures: list[dict[str, Any]] = field(default_factory=list)  # tasks that failed for good: cause, log tail
    story: list[str] = field(default_factory=list)  # the event lines printed while the run went
    cost: dict[str, Any] = field(default_factory=dict)  # the cost ledger's totals (stepspot.cost)
    ledger: list[dict[str, Any]] = field(default_factory=list)  # one entry per attempt
    run_record: RunRecord | None = field(default=None, repr=False)  # for --report; not in the JSON
    # Checkpointed tasks whose checkpoint directory stayed empty for two intervals (stepspot.run_health).
    checkpoint_warnings: list[str] = field(default_factory=list)
    # Events the monitoring Lambdas never saw or failed on: their metrics and task records miss them.
    monitoring_warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The summary's fields, the run record (for --report) left out: shallow, not ``asdict``'s deep
        copy of every field (the run record's included) only to be written out."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "run_record"}

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n", encoding="utf-8")


class HistorySource:
    """Execution histories straight from the emulator's backend: the same events GetExecutionHistory
    returns, without serialising thousands of them through the API (minutes for 1,000 tasks)."""

    def __init__(self) -> None:
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        from stepspot.local.lambdas import ACCOUNT_ID, REGION

        self._backend = stepfunctions_parser_backends[ACCOUNT_ID][REGION]

    def executions(self, state_machine_arn: str) -> list[str]:
        return [e.execution_arn for e in self._backend.describe_state_machine(state_machine_arn).executions]

    def events(self, execution_arn: str) -> list[dict[str, Any]]:
        events = self._backend.get_execution_history(execution_arn)["events"]
        return [{**e, "type": str(getattr(e["type"], "value", e["type"]))} for e in events]


def _payload_sizes(event: dict[str, Any]) -> list[int]:
    sizes = []
    for key, details in event.items():
        if key.endswith("EventDetails") and isinstance(details, dict):
            for name in ("input", "output", "parameters"):
                value = details.get(name)
                if isinstance(value, str):
                    sizes.append(len(value.encode("utf-8")))
    return sizes


def analyse_histories(source: HistorySource, workflow_arn: str, task_machine_arn: str) -> dict[str, Any]:
    """State transitions (StateEntered events) and the largest payload across all executions."""
    workflow_events = source.events(workflow_arn)
    task_arns = source.executions(task_machine_arn)
    workflow_transitions = sum(1 for e in workflow_events if e["type"].endswith("StateEntered"))
    largest = max((s for e in workflow_events for s in _payload_sizes(e)), default=0)
    task_transitions = 0
    restored = 0
    max_task_history = 0
    for arn in task_arns:
        events = source.events(arn)
        max_task_history = max(max_task_history, len(events))
        for event in events:
            if event["type"].endswith("StateEntered"):
                task_transitions += 1
            largest = max([largest, *_payload_sizes(event)])
            exited = event.get("stateExitedEventDetails")
            if exited and exited.get("name") == "FindCheckpoint":
                try:
                    checkpoint = json.loads(exited.get("output") or "{}").get("checkpoint") or {}
                except ValueError:
                    checkpoint = {}
                if checkpoint.get("found"):
                    restored += 1
    return {
        "workflow_history_events": len(workflow_events),
        "workflow_transitions": workflow_transitions,
        "task_executions": len(task_arns),
        "task_transitions": task_transitions,
        "max_task_history_events": max_task_history,
        "largest_payload": largest,
        "restored_by_state_machine": restored,
    }


def _longest_path(plan: Plan, seconds: dict[str, float]) -> tuple[float, list[str]]:
    finish: dict[str, float] = {}
    previous: dict[str, str | None] = {}
    for task_id in plan.order:
        deps = plan.tasks[task_id].depends_on
        best = max(deps, key=lambda d: finish[d]) if deps else None
        finish[task_id] = (finish[best] if best else 0.0) + seconds.get(task_id, 0.0)
        previous[task_id] = best
    if not finish:
        return 0.0, []
    last = max(finish, key=lambda t: finish[t])
    total = finish[last]
    path: list[str] = []
    cursor: str | None = last
    while cursor is not None:
        path.append(cursor)
        cursor = previous[cursor]
    return total, list(reversed(path))


def _checkpoint_items(session: Any, table: str, workflow_id: str) -> list[dict[str, Any]]:
    """The workflow's items of the checkpoint table (checkpoints and the runners' run records)."""
    dynamo_table = session.resource("dynamodb").Table(table)
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {}
    while True:
        page = dynamo_table.scan(**request)
        items.extend(i for i in page.get("Items", []) if str(i["pk"]).startswith(f"{workflow_id}#"))
        if "LastEvaluatedKey" not in page:
            return items
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _run_health(row: dict[str, Any], jobs: list[Any], runs: dict[str, dict[str, Any]]) -> None:
    """Per task: lost work of each reclaimed attempt, restore times, the empty-directory flag (run records)."""
    row["lost_work_seconds"], row["restore_seconds"], row["checkpoint_empty"] = [], [], False
    for job in jobs:
        run = runs.get(job.job_id)
        if run is None:
            continue
        row["checkpoint_empty"] = row["checkpoint_empty"] or bool(run.get("checkpoint_empty"))
        restore = restore_seconds(run)
        if restore is not None:
            row["restore_seconds"].append(restore)
        if job.reclaimed and job.stopped_at:
            lost = reclaim_lost_work(run, job.stopped_at)
            if lost is not None:
                row["lost_work_seconds"].append(lost)


def _checkpoint_counts(items: list[dict[str, Any]], run_dir: Path) -> dict[str, int]:
    """Saved: SEQ# items of the workflow's tasks. Restored: the agents' own reports in the job logs."""
    saved = sum(1 for i in items if str(i["sk"]).startswith(SEQUENCE_SK_PREFIX))
    restored = 0
    for log in [*run_dir.glob("tasks/*/attempt-*/output.log"), *run_dir.glob("jobs/*/output.log")]:
        text = log.read_text(encoding="utf-8", errors="replace").lower()
        if "restored checkpoint" in text or "resumed from checkpoint" in text:
            restored += 1
    return {"saved": saved, "restored": restored}


def summarise(
    *,
    session: Any,
    resources: Any,
    plan: Plan,
    execution: dict[str, Any],
    histories: dict[str, Any],
    batch: Any,
    bus: Any,
    router: Any,
    time_scale: float,
    run_dir: Path,
    story: Any = None,
    interrupted: bool = False,
) -> RunSummary:
    """The run's summary; ``histories`` is what ``analyse_histories`` found in the executions' histories."""
    outputs = local_outputs(plan, sorted(batch.jobs.values(), key=lambda j: j.created_at))
    (run_dir / LOCAL_OUTPUTS_FILE).write_text(json.dumps(outputs, indent=1) + "\n", encoding="utf-8")
    from stepspot.aws.scheduler_state import SchedulerState

    state = SchedulerState(session.resource("dynamodb"), resources.state_table)
    items = {i.task_id: i.raw for i in state.tasks(plan.workflow_id)}
    counts = {"total": len(plan.tasks), "succeeded": 0, "failed": 0, "skipped": 0, "not_run": 0}
    for task_id in plan.tasks:
        task_state = str(items.get(task_id, {}).get("state", "PENDING")).lower()
        key = task_state if task_state in counts else "not_run"
        counts[key] += 1

    jobs = sorted(batch.jobs.values(), key=lambda j: j.created_at)
    checkpoint_items = _checkpoint_items(session, resources.checkpoint_table, plan.workflow_id)
    runs = {str(i["sk"])[len(RUN_SK_PREFIX) :]: i for i in checkpoint_items if str(i["sk"]).startswith(RUN_SK_PREFIX)}
    prices = default_prices()
    spot_usd = on_demand_usd = lost_usd = fallback_usd = 0.0
    startup_real = 0.0  # successful attempts' real seconds outside their program (runner start, staging)
    measured: dict[str, float] = {}
    per_task: dict[str, dict[str, Any]] = {
        t: {
            "task_id": t,
            "state": str(items.get(t, {}).get("state", "PENDING")),
            "attempts": 0,
            "interruptions": 0,
            "capacity": None,
            "runtime_seconds": 0.0,
            "memory_mib": [],  # of each attempt, in order: out-of-memory retries ask for more
            "output_files": len(outputs["tasks"].get(t, {}).get("files", [])),
            "output_bytes": sum(f["size"] for f in outputs["tasks"].get(t, {}).get("files", [])),
        }
        for t in plan.order
    }
    for job in jobs:
        task = plan.tasks.get(job.task_id)
        row = per_task.get(job.task_id)
        if task is None or row is None:
            continue
        row["attempts"] += 1
        row["memory_mib"].append(job.memory_mib)
        row["interruptions"] += 1 if job.reclaimed else 0
        row["capacity"] = "SPOT" if job.spot else "ON_DEMAND"
        if job.started_at and job.stopped_at:
            real = job.stopped_at - job.started_at
            cost = task_cost(real * time_scale, task.vcpus, task.memory, task.gpus, task.nodes, job.spot, prices)
            spot_usd += cost.planned_usd
            on_demand_usd += cost.on_demand_usd if job.status == "SUCCEEDED" else 0.0
            if job.status != "SUCCEEDED":
                lost_usd += cost.planned_usd
            elif task.use_spot and not job.spot:
                fallback_usd += (
                    cost.on_demand_usd
                    - task_cost(
                        real * time_scale, task.vcpus, task.memory, task.gpus, task.nodes, True, prices
                    ).planned_usd
                )
            if job.status == "SUCCEEDED":
                measured[job.task_id] = real
                row["runtime_seconds"] = round(real, 3)
                program = story.program_seconds.get(job.job_id) if story is not None else None
                if program is not None:
                    startup_real += max(0.0, real - program)
    for task_id, row in per_task.items():
        _run_health(row, [j for j in jobs if j.task_id == task_id], runs)
    record = local_run_record_of(session, resources, plan, jobs, items, str(execution["status"]), batch, time_scale)
    task_costs = record.totals_per_task()
    for task_id, row in per_task.items():
        row["cost_usd"] = round(task_costs[task_id].total_usd, 6) if task_id in task_costs else 0.0
    start, stop = execution.get("startDate"), execution.get("stopDate")
    makespan = (stop - start).total_seconds() if start and stop else 0.0
    measured_cp, measured_path = _longest_path(plan, measured)
    estimate = plan.estimate
    planned_path_measured = sum(measured.get(t, 0.0) for t in plan.critical_path)
    planned_saving = round(float(estimate.get("on_demand_usd") or 0) - float(estimate.get("spot_usd") or 0), 4)
    measured_saving = round(on_demand_usd - spot_usd, 4)
    estimated_runtime = sum(plan.tasks[t].estimated_runtime_seconds for t in measured)
    status = "INTERRUPTED" if interrupted else str(execution["status"])
    transitions_total = histories["workflow_transitions"] + histories["task_transitions"]
    return RunSummary(
        workflow_id=plan.workflow_id,
        status=status,
        error=execution.get("error"),
        cause=(execution.get("cause") or None) and str(execution.get("cause"))[:2000],
        tasks=counts,
        attempts=len(jobs),
        interruptions=sum(1 for j in jobs if j.reclaimed),
        capacity_failures=sum(1 for j in jobs if "CAPACITY:" in (j.status_reason or "") and j.status == "FAILED"),
        app_failures=sum(1 for j in jobs if j.status == "FAILED" and j.exit_code not in (None, 0)),
        fallbacks_to_on_demand=sum(int(i.get("fallbacks", 0)) for i in items.values()),
        checkpoints=_checkpoint_counts(checkpoint_items, run_dir),
        makespan_seconds=round(makespan, 3),
        makespan_scaled_seconds=round(makespan * time_scale, 1),
        critical_path={
            "tasks": plan.critical_path,
            "estimated_seconds": estimate.get("duration_seconds"),
            # The planned path, timed: the successful attempts' runtimes of those same tasks.
            "measured_seconds": round(planned_path_measured, 3),
            "measured_scaled_seconds": round(planned_path_measured * time_scale, 1),
            "makespan_ratio": round(makespan / planned_path_measured, 3) if planned_path_measured else None,
            # The longest path by measured runtimes (it can differ from the planned one).
            "measured_longest_tasks": measured_path,
            "measured_longest_seconds": round(measured_cp, 3),
        },
        transitions={
            "total": transitions_total,
            "per_task": round(transitions_total / max(1, len(plan.tasks)), 3),
            "workflow_execution": histories["workflow_transitions"],
            "workflow_history_events": histories["workflow_history_events"],
            "task_executions": histories["task_executions"],
            "max_task_history_events": histories["max_task_history_events"],
        },
        largest_state_payload_bytes=histories["largest_payload"],
        estimated_cost={
            "currency": estimate.get("currency", "USD"),
            "spot_usd": round(spot_usd, 4),
            "on_demand_usd": round(on_demand_usd, 4),
            "savings_usd": measured_saving,
            "savings_percent": round(100 * measured_saving / on_demand_usd, 1) if on_demand_usd else 0.0,
            "planned": {
                **{k: estimate.get(k) for k in ("spot_usd", "on_demand_usd", "spot_savings_percent")},
                "savings_usd": planned_saving,
            },
            "interrupted_attempts_usd": round(lost_usd, 4),
            "on_demand_fallback_extra_usd": round(fallback_usd, 4),
            "runtime_vs_estimate": round(sum(measured.values()) * time_scale / estimated_runtime, 3)
            if estimated_runtime
            else None,
            "local_startup_seconds": round(startup_real, 3),
            "explanation": saving_explanation(
                planned_saving,
                measured_saving,
                lost_usd,
                fallback_usd,
                sum(measured.values()) * time_scale,
                estimated_runtime,
                status=status,
                finished=counts["succeeded"],
                total=counts["total"],
                startup_seconds=startup_real,
                time_scale=time_scale,
            ),
            "basis": "measured runtimes x time scale, price table of the plan; On-Demand = successful attempts "
            "only, as if nothing had been interrupted",
        },
        time_scale=time_scale,
        metrics=dict(sorted(router.metrics.items())),
        events={
            "published": dict(bus.published),
            # emitted but matched by no EventBridge rule of the deployment, so no Lambda sees them on AWS
            "unmatched": dict(bus.unmatched),
            "delivered": dict(bus.delivered),
            # copies the Lambdas had not seen when the run ended (the engine closes the bus first)
            "undelivered": dict(bus.undelivered),
            "handler_failures": dict(bus.failed),
            "outcomes": {function: dict(counts) for function, counts in bus.outcomes.items()},
        },
        per_task=list(per_task.values()),
        run_dir=str(run_dir),
        data_problems=_undeclared_inputs(plan, jobs),
        interrupted=interrupted,
        failures=list(story.failures.values()) if story is not None else [],
        story=list(story.lines) if story is not None else [],
        cost=record.cost_summary(),
        ledger=[entry.to_dict() for entry in record.ledger],
        run_record=record,
        checkpoint_warnings=[
            f"{row['task_id']}: {CHECKPOINT_EMPTY_MESSAGE}" for row in per_task.values() if row["checkpoint_empty"]
        ],
        monitoring_warnings=monitoring_warnings(dict(bus.undelivered), dict(bus.failed)),
    )


def monitoring_warnings(undelivered: dict[str, int], failed: dict[str, int]) -> list[str]:
    """One sentence per kind of event the monitoring Lambdas did not handle (their metrics miss it)."""
    lines = [
        f"{count} {kind} event(s) had not reached the monitoring Lambdas when the run ended"
        for kind, count in sorted(undelivered.items())
    ]
    lines += [
        f"the {function} failed on {count} event(s), retries included: see lambdas.log in the run files"
        for function, count in sorted(failed.items())
    ]
    return lines


LOCAL_OUTPUTS_FILE = "outputs.json"  # in the run directory: where each task's published outputs are on disk


def local_outputs(plan: Plan, jobs: list[Any]) -> dict[str, Any]:
    """Each task's declared outputs in the working directory of its successful attempt (what it published)."""
    from stepspot.dataflow import matches

    tasks: dict[str, Any] = {}
    for job in jobs:  # in creation order: a later successful attempt wins
        task = plan.tasks.get(job.task_id)
        if task is None or not task.outputs or job.status != "SUCCEEDED" or job.work_dir is None:
            continue
        files = []
        for path in sorted(p for p in job.work_dir.rglob("*") if p.is_file() and not p.is_symlink()):
            relative = path.relative_to(job.work_dir).as_posix()
            if not relative.startswith(".stepspot-") and any(matches(d, relative) for d in task.outputs):
                files.append({"path": relative, "size": path.stat().st_size})
        tasks[job.task_id] = {"work_dir": str(job.work_dir), "files": files}
    return {"workflow_id": plan.workflow_id, "tasks": tasks}


def _undeclared_inputs(plan: Plan, jobs: list[Any]) -> list[str]:
    from stepspot.local.undeclared import Attempt, advice

    def log_of(job: Any) -> str:  # only failed attempts are searched: no reading of 1,000 good logs
        if job.status != "FAILED" or job.log_path is None or not job.log_path.is_file():
            return ""
        return str(job.log_path.read_text(encoding="utf-8", errors="replace"))

    attempts = [Attempt(job.task_id, job.status == "FAILED", log_of(job), job.work_dir) for job in jobs]
    return advice(attempts, {task_id: list(task.outputs) for task_id, task in plan.tasks.items()})


def saving_explanation(
    planned: float,
    measured: float,
    lost_usd: float,
    fallback_usd: float,
    ran_seconds: float,
    estimated_seconds: float,
    *,
    status: str = "SUCCEEDED",
    finished: int = 0,
    total: int = 0,
    startup_seconds: float = 0.0,
    time_scale: float = 1.0,
) -> str:
    """One sentence on what made the measured saving differ from the planned one. A run that did not
    finish (Ctrl-C, a failed task) measured only part of the plan: that comes first, whatever else.
    ``startup_seconds`` (real) is the part of the successful attempts spent outside their programs:
    seconds on AWS, but hours once a local run's time scale multiplies them, so it is named."""
    reasons = []
    if estimated_seconds and abs(ran_seconds / estimated_seconds - 1) >= 0.1:
        reason = f"the tasks ran {_versus_estimate(ran_seconds / estimated_seconds)}"
        startup = startup_seconds * time_scale
        if startup >= 0.1 * estimated_seconds:
            programs = _versus_estimate((ran_seconds - startup) / estimated_seconds)
            reason += (
                f", their programs alone {programs}: the rest is this machine starting each attempt (task "
                f"runner, data staging: {startup_seconds:.1f} s real x {time_scale:g}, seconds on AWS)"
            )
        reasons.append(reason)
    if lost_usd >= 0.005:
        reasons.append(f"reclaimed or failed attempts cost ${lost_usd:.2f} of work done again")
    if fallback_usd >= 0.005:
        reasons.append(f"attempts moved to On-Demand paid ${fallback_usd:.2f} more than Spot")
    if status != "SUCCEEDED":
        how = "was interrupted" if status == "INTERRUPTED" else f"ended {status}"
        head = f"The run {how} with {finished} of {total} tasks done: the measured cost covers only what ran"
        return head + ("; " + "; ".join(reasons) if reasons else "") + "."
    if not reasons:
        return "The run went as planned: no work lost, runtimes close to the estimates."
    return "The difference comes from: " + "; ".join(reasons) + "."


def _versus_estimate(ratio: float) -> str:
    if abs(ratio - 1) < 0.1:
        return "close to the estimate"
    return f"{abs(1 - ratio) * 100:.0f} % {'shorter' if ratio < 1 else 'longer'} than estimated"
