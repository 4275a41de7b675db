"""How long a workflow may run, and the longest silence between two scheduler events. Pure.

StartWorkflow waits (``.waitForTaskToken``) for the scheduler to answer when the last task ends. If
that answer is lost (a callback state failed for good, an execution was stopped from outside, a bug),
nothing would end the wait but Step Functions' one-year limit. So StartWorkflow gets:

- ``HeartbeatSeconds``: the scheduler sends SendTaskHeartbeat on task events (at most once per
  ``policy.workflow_heartbeat_interval_seconds``, at most 600 s, per container: within the margin), and
  while tasks run one of them ends within the longest time a single task can take (all its attempts,
  backoff waits and orchestration included): silence longer than that means the callback chain broke;
- ``TimeoutSeconds``: Graham's bound for greedy list scheduling on ``max_running_tasks`` slots,
  ``sum(bounds) / slots + longest path of bounds``, plus a margin: no run of this plan, however
  unlucky within its retry budgets, takes longer.

Bounds use each task's ``timeout`` (the RunJob state's TimeoutSeconds; Batch's 14 days without one),
so tasks with a realistic timeout give a tight heartbeat. Both are capped at Step Functions' limit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stepspot.fleet import DEFAULT_TIMEOUT_SECONDS

if TYPE_CHECKING:  # the policy (pydantic models, yaml) only where the limits are computed: validation
    from stepspot.policy import Policy  # checks too_many_tasks alone

# The largest workflow stepspot runs (docs/plan-format.md "Limits"): the parser Lambda's memory and the
# other Lambdas' settings are derived from measurements at this size (terraform/modules/functions/README.md).
# Larger definitions are refused at validation, before anything is built.
MAX_WORKFLOW_TASKS = 100_000

SFN_EXECUTION_MAX_SECONDS = 365 * 86_400  # a Standard execution ends after one year anyway
MARGIN_SECONDS = 3600  # Lambda retries, a slow queue, clock skew
ORCHESTRATION_SECONDS_PER_ATTEMPT = 600  # capacity choice, checkpoint restore, SubmitJob retries


def too_many_tasks(count: int) -> str | None:
    """The sentence refusing a definition of ``count`` tasks, or None when the size is supported."""
    if count <= MAX_WORKFLOW_TASKS:
        return None
    return (
        f"the workflow has {count:,} tasks, more than the {MAX_WORKFLOW_TASKS:,} stepspot supports: split it into "
        f"workflows of at most {MAX_WORKFLOW_TASKS:,} tasks each"
    )


def max_attempts(task: Any, policy: Policy) -> int:
    """Attempts the retry budgets allow: the first, every class's retries (app errors: the task's own)."""
    from stepspot.policy import FailureClass

    retries = 0
    for failure_class, rule in policy.failure_classes.items():
        if failure_class is FailureClass.APP_ERROR:
            retries += min(int(task.retry_attempts), rule.max_retries)
        else:
            retries += rule.max_retries
    return 1 + retries


def task_bound_seconds(task: Any, policy: Policy) -> int:
    """The longest a task execution can run: every attempt to its timeout, every wait at its maximum."""
    attempts = max_attempts(task, policy)
    per_attempt = int(task.timeout_seconds or DEFAULT_TIMEOUT_SECONDS) + ORCHESTRATION_SECONDS_PER_ATTEMPT
    return attempts * per_attempt + (attempts - 1) * math.ceil(policy.backoff.max_seconds)


def workflow_limits(tasks: Mapping[str, Any], order: list[str], policy: Policy) -> dict[str, int]:
    """``{"timeout_seconds", "heartbeat_seconds"}`` of StartWorkflow for a plan (``order``: topological)."""
    bounds = {task_id: task_bound_seconds(tasks[task_id], policy) for task_id in order}
    finish: dict[str, int] = {}
    for task_id in order:
        finish[task_id] = bounds[task_id] + max((finish[d] for d in tasks[task_id].depends_on), default=0)
    longest_path = max(finish.values(), default=0)
    total = sum(bounds.values())
    timeout = math.ceil(total / max(1, policy.max_running_tasks)) + longest_path + MARGIN_SECONDS
    timeout = min(timeout, SFN_EXECUTION_MAX_SECONDS)
    heartbeat = min(max(bounds.values(), default=0) + MARGIN_SECONDS, timeout - 1)  # must be below the timeout
    return {"timeout_seconds": timeout, "heartbeat_seconds": heartbeat}
