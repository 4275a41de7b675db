"""One-line cost texts shared by `stepspot local` and `stepspot status`. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def cost_line(cost: Mapping[str, Any]) -> str:
    """``cost`` is a ``RunRecord.cost_summary()`` (or the same fields from the state table)."""
    savings = float(cost["savings_usd"])
    verdict = (
        f"saved ${savings:.4f} ({float(cost['savings_percent']):.1f}%)"
        if savings >= 0
        else f"Spot cost ${-savings:.4f} more than all On-Demand"
    )
    return (
        f"${float(cost['total_usd']):.4f} (Spot ${float(cost['spot_usd']):.4f}, lost to reclaims "
        f"${float(cost['lost_usd']):.4f}, On-Demand ${float(cost['on_demand_usd']):.4f} of which fallbacks "
        f"${float(cost['fallback_usd']):.4f}) vs all On-Demand ${float(cost['all_on_demand_usd']):.4f}: {verdict}"
    )
