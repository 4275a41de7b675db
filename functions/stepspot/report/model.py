"""What a run did, as the report and the cost summaries need it: tasks, their attempts (the cost ledger)
and checkpoint times. Built from a local run or from the state table on AWS. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stepspot.cost import CostTotals, LedgerEntry, totals, totals_per_task


@dataclass(frozen=True)
class TaskRecord:
    task_id: str
    depends_on: tuple[str, ...]
    state: str  # final (or current) state of the task item
    failure_class: str | None = None
    reason: str = ""


@dataclass
class RunRecord:
    workflow_id: str
    name: str
    status: str
    environment: str
    region: str
    currency: str
    price_source: str
    tasks: list[TaskRecord]
    ledger: list[LedgerEntry]
    checkpoints: Mapping[str, list[float]] = field(default_factory=dict)  # task -> completion times
    notes: list[str] = field(default_factory=list)

    def totals(self) -> CostTotals:
        return totals(self.ledger)

    def totals_per_task(self) -> dict[str, CostTotals]:
        return totals_per_task(self.ledger)

    def cost_summary(self) -> dict[str, Any]:
        """The cost block of summaries and ``stepspot status --json``."""
        per_task = self.totals_per_task()
        return {
            "currency": self.currency,
            "region": self.region,
            "prices": self.price_source,
            **self.totals().to_dict(),
            "per_task": {task_id: t.to_dict() for task_id, t in sorted(per_task.items())},
        }
