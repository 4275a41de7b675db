"""StartWorkflow's heartbeat and timeout, derived from the plan (stepspot.workflow_limits)."""

from __future__ import annotations

from stepspot.plan import build_plan
from stepspot.policy import DEFAULT_POLICY, policy_from_mapping
from stepspot.workflow import parse_workflow
from stepspot.workflow_limits import SFN_EXECUTION_MAX_SECONDS, task_bound_seconds, workflow_limits


def _plan(tasks):
    workflow = parse_workflow(
        {"name": "w", "tasks": [{"container_image": "i", "command": ["c"], **t} for t in tasks]}
    ).workflow
    return build_plan(workflow, "wf")


def test_timeouts_of_the_tasks_bound_the_heartbeat_and_the_chain_bounds_the_timeout():
    plan = _plan([{"id": "a", "timeout": 600}, {"id": "b", "timeout": 600, "depends_on": ["a"]}])
    limits = workflow_limits(plan.tasks, plan.order, DEFAULT_POLICY)
    bound = task_bound_seconds(plan.tasks["a"], DEFAULT_POLICY)
    # Heartbeat: one task's worst case (all attempts to their timeout, every wait) plus the margin
    assert limits["heartbeat_seconds"] == bound + 3600
    # Timeout: the chain of two such tasks plus the slot share, well under a year
    assert 2 * bound < limits["timeout_seconds"] < 30 * 86_400
    assert limits["heartbeat_seconds"] < limits["timeout_seconds"]


def test_a_task_without_timeout_is_bounded_by_batchs_14_days_and_the_limits_stay_under_a_year():
    plan = _plan([{"id": f"t{i}", **({"depends_on": [f"t{i - 1}"]} if i else {})} for i in range(5)])
    limits = workflow_limits(plan.tasks, plan.order, DEFAULT_POLICY)
    assert limits["timeout_seconds"] == SFN_EXECUTION_MAX_SECONDS
    assert limits["heartbeat_seconds"] < SFN_EXECUTION_MAX_SECONDS


def test_fewer_slots_mean_a_longer_deadline():
    tasks = [{"id": f"t{i}", "timeout": 600} for i in range(100)]
    plan = _plan(tasks)
    wide = workflow_limits(plan.tasks, plan.order, DEFAULT_POLICY)["timeout_seconds"]
    narrow = workflow_limits(plan.tasks, plan.order, policy_from_mapping({"max_running_tasks": 2}))
    assert narrow["timeout_seconds"] > 10 * wide
