"""Key grammar of the DynamoDB tables (see docs/contracts.md). Pure: no AWS calls here."""

from __future__ import annotations

WORKFLOW_META_SK = "META"
TASK_SK_PREFIX = "TASK#"


def workflow_pk(workflow_id: str) -> str:
    return f"WF#{workflow_id}"


def workflow_key(workflow_id: str) -> dict[str, str]:
    return {"pk": workflow_pk(workflow_id), "sk": WORKFLOW_META_SK}


def task_key(workflow_id: str, task_id: str) -> dict[str, str]:
    return {"pk": workflow_pk(workflow_id), "sk": f"{TASK_SK_PREFIX}{task_id}"}


def is_task_sk(sk: object) -> bool:
    return str(sk).startswith(TASK_SK_PREFIX)


def task_id_from_sk(sk: str) -> str:
    if not sk.startswith(TASK_SK_PREFIX):
        raise ValueError(f"not a task sort key: {sk!r}")
    return sk[len(TASK_SK_PREFIX) :]


def breaker_key(queue_name: str) -> dict[str, str]:
    return {"pk": f"BREAKER#{queue_name}", "sk": "STATE"}


def event_dedup_key(source: str, event_id: str) -> dict[str, str]:
    return {"pk": f"EVENT#{source}#{event_id}", "sk": "DEDUP"}


def job_index_key(job_id: str) -> dict[str, str]:
    return {"pk": f"JOB#{job_id}", "sk": "JOB"}


def checkpoint_pk(workflow_id: str, task_id: str) -> str:
    return f"{workflow_id}#{task_id}"


def ready_pk(workflow_id: str) -> str:
    """Partition of the READY markers: kept apart from the task items so listing them stays cheap."""
    return f"WF#{workflow_id}#READY"


def ready_key(workflow_id: str, task_id: str) -> dict[str, str]:
    """Marker of a task whose dependencies are done but which waits for a free slot (scheduler)."""
    return {"pk": ready_pk(workflow_id), "sk": task_id}


def dependency_key(workflow_id: str, run_tag: str, task_id: str, parent_id: str) -> dict[str, str]:
    """Marker that ``parent_id`` finishing was counted for ``task_id`` in one run (scheduler)."""
    return {"pk": f"WF#{workflow_id}#DEPS", "sk": f"{run_tag}#{task_id}#{parent_id}"}


def derived_definition_key(base_arn: str, image: str) -> dict[str, str]:
    """Cache of the derived job definition of (base revision ARN, image) (attempt manager)."""
    return {"pk": "JOBDEF", "sk": f"{base_arn}#{image}"}


def submit_pacing_key() -> dict[str, str]:
    """The SubmitJob pacing bucket of a deployment (attempt manager)."""
    return {"pk": "PACING#SubmitJob", "sk": "BUCKET"}
