"""Duration and cost estimates. Pure: prices come from ``data/prices.json``, which names its source and date.

Cost model: a task costs ``hours x nodes x (vcpus x rate_vcpu + memory_GiB x rate_GiB + gpus x rate_gpu)``.
The per-vCPU and per-GiB hourly rates are fitted (least squares) from reference instance prices, so a
memory-heavy task costs more than a compute-heavy one with the same vCPUs. The "Spot plan" prices each
task as stepspot would run it: Spot when the task may use Spot, On-Demand otherwise (multi-node jobs,
``spot_enabled: false``). Interruptions and retries are not priced: the estimate is a lower bound.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class Rates:
    """Hourly USD rates of one purchase option."""

    per_vcpu: float
    per_gib: float
    per_gpu: float

    def hourly(self, vcpus: int, memory_mib: int, gpus: int, nodes: int) -> float:
        return nodes * (vcpus * self.per_vcpu + memory_mib / 1024 * self.per_gib + gpus * self.per_gpu)


@dataclass(frozen=True)
class PriceTable:
    on_demand: Rates
    spot: Rates
    source: str
    retrieved: str
    region: str
    currency: str


def _fit(instances: list[dict[str, Any]], key: str) -> tuple[float, float]:
    """Least-squares ``price = a*vcpus + b*GiB`` through the origin (2x2 normal equations)."""
    sxx = sum(i["vcpus"] ** 2 for i in instances)
    syy = sum(i["memory_gib"] ** 2 for i in instances)
    sxy = sum(i["vcpus"] * i["memory_gib"] for i in instances)
    sxp = sum(i["vcpus"] * i[key] for i in instances)
    syp = sum(i["memory_gib"] * i[key] for i in instances)
    det = sxx * syy - sxy * sxy
    if det == 0:
        raise ValueError("prices.json needs reference instances with different vCPU/memory ratios")
    return (sxp * syy - syp * sxy) / det, (sxx * syp - sxy * sxp) / det


def price_table_from(data: dict[str, Any]) -> PriceTable:
    instances = data["reference_instances"]
    od_vcpu, od_gib = _fit(instances, "on_demand_hourly")
    spot_vcpu, spot_gib = _fit(instances, "spot_hourly")
    return PriceTable(
        on_demand=Rates(od_vcpu, od_gib, data["gpu_hourly"]["on_demand"]),
        spot=Rates(spot_vcpu, spot_gib, data["gpu_hourly"]["spot"]),
        source=data["source"],
        retrieved=data["retrieved"],
        region=data["region"],
        currency=data["currency"],
    )


@cache
def default_prices() -> PriceTable:
    text = resources.files("stepspot").joinpath("data/prices.json").read_text(encoding="utf-8")
    return price_table_from(json.loads(text))


@dataclass(frozen=True)
class TaskCost:
    on_demand_usd: float
    planned_usd: float  # as stepspot runs it: Spot where allowed


def task_cost(
    runtime_seconds: float, vcpus: int, memory_mib: int, gpus: int, nodes: int, use_spot: bool, prices: PriceTable
) -> TaskCost:
    hours = runtime_seconds / 3600
    on_demand = prices.on_demand.hourly(vcpus, memory_mib, gpus, nodes) * hours
    planned = prices.spot.hourly(vcpus, memory_mib, gpus, nodes) * hours if use_spot else on_demand
    return TaskCost(on_demand, planned)


def summarise(
    on_demand: float, planned: float, vcpu_hours: float, critical_path_seconds: float, prices: PriceTable
) -> dict[str, Any]:
    """The estimate block of a plan (JSON-able, size independent of the number of tasks).
    ``planned`` is the cost as stepspot runs it (Spot where allowed)."""
    saving = on_demand - planned
    return {
        "duration_seconds": round(critical_path_seconds, 3),
        "vcpu_hours": round(vcpu_hours, 3),
        "on_demand_usd": round(on_demand, 2),
        "spot_usd": round(planned, 2),
        "spot_savings_usd": round(saving, 2),
        "spot_savings_percent": round(100 * saving / on_demand, 1) if on_demand else 0.0,
        "currency": prices.currency,
        "prices": {"source": prices.source, "retrieved": prices.retrieved, "region": prices.region},
        "assumptions": "unlimited capacity, no interruptions or retries; runtimes from estimated_runtime",
    }
