"""The run record of a workflow on AWS, from its state table items, plan and checkpoint items. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from stepspot.aws.cost_store import ledger_from_item
from stepspot.checkpointing.model import CREATED_EPOCH_FIELD, STATUS_COMPLETE, STATUS_FIELD
from stepspot.cost import default_instance_prices, other_region_note
from stepspot.report.model import RunRecord, TaskRecord
from stepspot.scheduler import TaskState
from stepspot.state_items import TaskItem, Workflow

SPOT_PRICE_SOURCE = "Spot: EC2 DescribeSpotPriceHistory for the zone and hour of each attempt"


def run_record_from_state(
    *,
    workflow_id: str,
    status: str,
    environment: str,
    region: str,
    meta: Mapping[str, Any] | None,
    tasks: Iterable[Mapping[str, Any]],
    depends_on: Mapping[str, Iterable[str]],
    checkpoint_items: Mapping[str, Iterable[Mapping[str, Any]]],
) -> RunRecord:
    """``tasks`` are task items (with ``task_id``), ``checkpoint_items`` the ``SEQ#`` items per task."""
    prices = default_instance_prices()
    task_records = []
    ledger = []
    for item in tasks:
        task = TaskItem.from_item(item)
        task_records.append(
            TaskRecord(
                task_id=task.task_id,
                depends_on=tuple(depends_on.get(task.task_id, ())),
                state=task.state,
                failure_class=task.last_failure_class or None,
                reason=task.last_failure or "",
            )
        )
        ledger.extend(ledger_from_item(item))
    checkpoints = {
        task_id: sorted(
            float(i[CREATED_EPOCH_FIELD])
            for i in items
            if i.get(STATUS_FIELD) == STATUS_COMPLETE and CREATED_EPOCH_FIELD in i
        )
        for task_id, items in checkpoint_items.items()
    }
    notes = []
    if any(t.state != TaskState.PENDING for t in task_records) and not ledger:
        notes.append("no attempt is in the cost ledger yet (the workflow monitor adds each job when it ends)")
    elsewhere = other_region_note(prices, region)
    if elsewhere:
        notes.append(elsewhere)
    # The monitor prices a type the table lacks from the fitted rates (aws/cost_sources.py): say which.
    fitted = sorted({e.instance_type for e in ledger if e.instance_type and e.instance_type not in prices.instances})
    if fitted:
        notes.append(
            f"On-Demand prices of {', '.join(fitted)} are estimates from per-vCPU and per-GiB rates "
            "(data/prices.json): the bundled price table lacks these types"
        )
    return RunRecord(
        workflow_id=workflow_id,
        name=str((meta or {}).get(Workflow.NAME) or workflow_id),
        status=status,
        environment=environment,
        region=region,
        currency=prices.currency,
        price_source=f"On-Demand: {prices.source} ({prices.retrieved}); {SPOT_PRICE_SOURCE}",
        tasks=task_records,
        ledger=ledger,
        checkpoints=checkpoints,
        notes=notes,
    )
