"""The cost ledger on the state table (written by the workflow monitor, read by `status` and `report`).

- task item: ``cost_ledger`` (map: job id -> ledger entry) and the task's sums (``stepspot.state_items.COST_SUMS``);
- workflow META item: the same sums over all its tasks.

An entry and its sums are written in one transaction, conditional on the entry not being there yet, so a
redelivered or replayed job event adds nothing twice. Needs ``dynamodb:UpdateItem`` on the state table.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from stepspot.aws.conditional_writes import conditional_write
from stepspot.cost import CostTotals, LedgerEntry, totals
from stepspot.state_items import COST_SUMS, Task
from stepspot.state_keys import task_key, workflow_key

_DIGITS = 9  # DynamoDB numbers: keep sums exact to a billionth of a dollar


def _number(value: float | int) -> Decimal:
    return Decimal(str(round(value, _DIGITS))) if isinstance(value, float) else Decimal(value)


def _stored(entry: LedgerEntry) -> dict[str, Any]:
    return {
        k: (_number(v) if isinstance(v, float | int) and not isinstance(v, bool) else v)
        for k, v in entry.to_dict().items()
    }


def totals_from_item(item: Mapping[str, Any]) -> CostTotals:
    """The running sums of a task or workflow item as ``CostTotals`` (savings derived)."""
    values = {field: float(item.get(attribute, 0) or 0) for field, attribute in COST_SUMS.items()}
    saving = values["all_on_demand_usd"] - values["total_usd"]
    return CostTotals(
        attempts=int(values["attempts"]),
        spot_usd=values["spot_usd"],
        on_demand_usd=values["on_demand_usd"],
        fallback_usd=values["fallback_usd"],
        lost_usd=values["lost_usd"],
        total_usd=values["total_usd"],
        all_on_demand_usd=values["all_on_demand_usd"],
        savings_usd=saving,
        savings_percent=100 * saving / values["all_on_demand_usd"] if values["all_on_demand_usd"] else 0.0,
    )


def ledger_from_item(item: Mapping[str, Any]) -> list[LedgerEntry]:
    entries = [LedgerEntry.from_dict(e) for e in (item.get(Task.COST_LEDGER) or {}).values()]
    return sorted(entries, key=lambda e: (e.attempt, e.created_at))


class CostStore:
    def __init__(self, state_table: Any) -> None:
        self._table = state_table
        # The resource's client takes high-level types (the resource's serializer applies to it too).
        self._client = state_table.meta.client

    def record(self, workflow_id: str, entry: LedgerEntry) -> bool:
        """Add an attempt to its task's ledger and both sums; False when it was recorded before."""
        key = task_key(workflow_id, entry.task_id)
        created = conditional_write(
            lambda: self._table.update_item(
                Key=key,
                UpdateExpression=f"SET {Task.COST_LEDGER} = if_not_exists({Task.COST_LEDGER}, :empty)",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":empty": {}},
            ),
            "calling dynamodb:UpdateItem (cost ledger)",
        )
        if not created.applied:
            return False  # no such task item
        sums = totals([entry])
        adds = ", ".join(f"{attribute} :{field}" for field, attribute in COST_SUMS.items())
        values = {f":{field}": _number(getattr(sums, field)) for field in COST_SUMS}
        task_update = {
            "TableName": self._table.name,
            "Key": key,
            "UpdateExpression": f"SET {Task.COST_LEDGER}.#job = :entry ADD {adds}",
            "ConditionExpression": f"attribute_exists(pk) AND attribute_not_exists({Task.COST_LEDGER}.#job)",
            "ExpressionAttributeNames": {"#job": entry.job_id},
            "ExpressionAttributeValues": {**values, ":entry": _stored(entry)},
        }
        workflow_update = {
            "TableName": self._table.name,
            "Key": workflow_key(workflow_id),
            "UpdateExpression": f"ADD {adds}",
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeValues": values,
        }
        # Attempts ending together all add to the workflow item: DynamoDB cancels colliding transactions
        # (TransactionConflict), which conditional_write retries; only the entry's own condition failing
        # (item 0) means an earlier delivery recorded it. A false condition on the workflow item alone
        # (no such workflow) records nothing either.
        items = [{"Update": task_update}, {"Update": workflow_update}]
        written = conditional_write(
            lambda: self._client.transact_write_items(TransactItems=items),
            "calling dynamodb:TransactWriteItems (cost ledger)",
            guarded=(0,),
        )
        return written.applied
