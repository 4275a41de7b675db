"""The cost ledger: what each attempt of a task cost, where it ran, and what reclaims threw away. Pure.

One ``LedgerEntry`` per Batch job (attempt). Its price is the hourly price of the instance it ran on
(On-Demand from the bundled table ``data/instance_prices.json``, Spot from the zone's Spot price at the
attempt's start) times the share of the instance the job held, times nodes, times its run time:

- share = max(job vCPUs / instance vCPUs, job memory / instance memory), at most 1: the scarcer of the
  two decides how many such jobs Batch can pack on the instance;
- lost work = the part of a reclaimed attempt after its last checkpoint (the next attempt redoes it);
  a reclaimed attempt without a checkpoint loses all of its run time.

Totals (per task and per workflow): spent on Spot, spent On-Demand (of which on fallbacks from Spot),
lost to reclaims, and the all-On-Demand equivalent: the work every attempt kept (all of it, except the
lost part of reclaimed attempts: reclaims do not happen On-Demand, application failures would), priced
at the On-Demand price of the instance it ran on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from functools import cache
from importlib import resources
from typing import Any, Protocol

from stepspot.capacity import InstanceTable, default_instance_table

SPOT, ON_DEMAND = "SPOT", "ON_DEMAND"
PRICE_TABLE_RESOURCE = "data/instance_prices.json"
LOCAL_ZONE_SUFFIXES = "abcdef"
# Emulated Spot prices: a stable discount per type and zone within the range Spot usually trades at.
LOCAL_SPOT_DISCOUNT = (0.55, 0.75)


class PriceTableError(ValueError):
    """Indicates that the instance price table is malformed or lacks an instance type."""


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    memory_mib: int
    on_demand_hourly: float
    gpus: int = 0


@dataclass(frozen=True)
class InstancePrices:
    region: str
    currency: str
    source: str
    retrieved: str
    instances: Mapping[str, InstanceType]

    def instance(self, name: str) -> InstanceType:
        found = self.instances.get(name)
        if found is None:
            raise PriceTableError(
                f"instance type {name!r} is not in the price table of {self.region} ({self.retrieved}); "
                "run scripts/refresh_prices.py to refresh it"
            )
        return found


def instance_prices_from(data: Mapping[str, Any], specs: InstanceTable | None = None) -> InstancePrices:
    """Join the hourly prices of ``data`` with the vCPUs/memory/GPUs of the instance table (one owner:
    ``data/instance_types.json``, ``stepspot.capacity``); a priced type the table lacks is left out."""
    specs = specs or default_instance_table()
    try:
        instances = {}
        for name, entry in data["instance_types"].items():
            spec = specs.get(name)
            if spec is None:
                continue
            instances[name] = InstanceType(
                name=name,
                vcpus=spec.vcpus,
                memory_mib=spec.memory_mib,
                on_demand_hourly=float(entry["on_demand_hourly"]),
                gpus=spec.gpus,
            )
        return InstancePrices(
            region=str(data["region"]),
            currency=str(data["currency"]),
            source=str(data["source"]),
            retrieved=str(data["retrieved"]),
            instances=instances,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PriceTableError(f"the instance price table is malformed ({exc!r}); regenerate it") from exc


@cache
def default_instance_prices() -> InstancePrices:
    text = resources.files("stepspot").joinpath(PRICE_TABLE_RESOURCE).read_text(encoding="utf-8")
    return instance_prices_from(json.loads(text))


def other_region_note(prices: InstancePrices, region: str) -> str | None:
    """Why a ledger's On-Demand figures may be off: the bundled table is another region's (it holds one)."""
    if not region or region == prices.region:
        return None
    return (
        f"On-Demand prices are the bundled table's for {prices.region}, not {region}'s: run "
        f"`python scripts/refresh_prices.py --region {region}` and redeploy to price this region"
    )


@dataclass(frozen=True)
class Placement:
    instance_type: str
    availability_zone: str
    instance_id: str = ""


@dataclass(frozen=True)
class AttemptRecord:
    """What happened to one Batch job of a task (times in epoch seconds)."""

    task_id: str
    attempt: int
    job_id: str
    capacity: str  # SPOT | ON_DEMAND
    status: str  # SUCCEEDED | FAILED
    created_at: float
    started_at: float | None
    stopped_at: float | None
    vcpus: int
    memory_mib: int
    nodes: int = 1
    gpus: int = 0
    fallback: bool = False  # On-Demand because Spot failed the task before
    reclaimed: bool = False
    failure_class: str | None = None
    reason: str = ""
    last_checkpoint_at: float | None = None  # last checkpoint this attempt completed


@dataclass(frozen=True)
class LedgerEntry:
    task_id: str
    attempt: int
    job_id: str
    capacity: str
    status: str
    created_at: float
    started_at: float | None
    stopped_at: float | None
    instance_type: str
    availability_zone: str
    runtime_seconds: float
    hourly_usd: float  # the whole instance, at the attempt's capacity
    on_demand_hourly_usd: float
    share: float
    nodes: int
    cost_usd: float
    on_demand_equivalent_usd: float
    lost: bool
    lost_seconds: float
    lost_usd: float
    fallback: bool = False
    reclaimed: bool = False
    failure_class: str | None = None
    reason: str = ""
    last_checkpoint_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LedgerEntry:
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name not in known:
                continue
            if value is not None and known[name].type in ("float", "float | None"):
                value = float(value)
            elif value is not None and known[name].type == "int":
                value = int(value)
            values[name] = value
        return cls(**values)


def share_of_instance(vcpus: int, memory_mib: int, instance: InstanceType) -> float:
    return min(1.0, max(vcpus / instance.vcpus, memory_mib / instance.memory_mib))


def price_attempt(
    record: AttemptRecord, placement: Placement, instance: InstanceType, spot_hourly: float
) -> LedgerEntry:
    """Price one attempt. ``spot_hourly`` is the zone's Spot price of the instance type (used for Spot)."""
    started, stopped = record.started_at, record.stopped_at
    runtime = max(0.0, stopped - started) if started is not None and stopped is not None else 0.0
    share = share_of_instance(record.vcpus, record.memory_mib, instance)
    hourly = spot_hourly if record.capacity == SPOT else instance.on_demand_hourly
    factor = share * record.nodes * runtime / 3600
    cost = hourly * factor
    lost_seconds = 0.0
    if record.reclaimed and started is not None and stopped is not None:
        saved = record.last_checkpoint_at
        kept_until = saved if saved is not None and started <= saved <= stopped else started
        lost_seconds = stopped - kept_until
    return LedgerEntry(
        task_id=record.task_id,
        attempt=record.attempt,
        job_id=record.job_id,
        capacity=record.capacity,
        status=record.status,
        created_at=record.created_at,
        started_at=started,
        stopped_at=stopped,
        instance_type=placement.instance_type,
        availability_zone=placement.availability_zone,
        runtime_seconds=runtime,
        hourly_usd=hourly,
        on_demand_hourly_usd=instance.on_demand_hourly,
        share=share,
        nodes=record.nodes,
        cost_usd=cost,
        on_demand_equivalent_usd=instance.on_demand_hourly * factor,
        lost=record.reclaimed,
        lost_seconds=lost_seconds,
        lost_usd=cost * lost_seconds / runtime if runtime else 0.0,
        fallback=record.fallback,
        reclaimed=record.reclaimed,
        failure_class=record.failure_class,
        reason=record.reason,
        last_checkpoint_at=record.last_checkpoint_at,
    )


UNPLACED = Placement("", "")
_NO_INSTANCE = InstanceType("", 1, 1, 0.0)


def unplaced_entry(record: AttemptRecord) -> LedgerEntry:
    """An attempt that never started (e.g. cancelled for lack of capacity): no instance, no cost."""
    return price_attempt(replace(record, started_at=None), UNPLACED, _NO_INSTANCE, 0.0)


@dataclass(frozen=True)
class CostTotals:
    attempts: int
    spot_usd: float
    on_demand_usd: float
    fallback_usd: float  # part of on_demand_usd: tasks that wanted Spot
    lost_usd: float  # part of spot_usd: work after the last checkpoint of reclaimed attempts
    total_usd: float
    all_on_demand_usd: float
    savings_usd: float
    savings_percent: float

    def to_dict(self, digits: int = 6) -> dict[str, Any]:
        return {k: round(v, digits) if isinstance(v, float) else v for k, v in asdict(self).items()}


def totals(entries: Iterable[LedgerEntry]) -> CostTotals:
    spot = on_demand = fallback = lost = all_on_demand = 0.0
    count = 0
    for entry in entries:
        count += 1
        if entry.capacity == SPOT:
            spot += entry.cost_usd
        else:
            on_demand += entry.cost_usd
            fallback += entry.cost_usd if entry.fallback else 0.0
        lost += entry.lost_usd
        kept = 1 - entry.lost_seconds / entry.runtime_seconds if entry.runtime_seconds else 1.0
        all_on_demand += entry.on_demand_equivalent_usd * kept
    total = spot + on_demand
    savings = all_on_demand - total
    return CostTotals(
        attempts=count,
        spot_usd=spot,
        on_demand_usd=on_demand,
        fallback_usd=fallback,
        lost_usd=lost,
        total_usd=total,
        all_on_demand_usd=all_on_demand,
        savings_usd=savings,
        savings_percent=100 * savings / all_on_demand if all_on_demand else 0.0,
    )


def totals_per_task(entries: Iterable[LedgerEntry]) -> dict[str, CostTotals]:
    grouped: dict[str, list[LedgerEntry]] = {}
    for entry in entries:
        grouped.setdefault(entry.task_id, []).append(entry)
    return {task_id: totals(items) for task_id, items in grouped.items()}


# ---------------------------------------------------------------------------------------------------
# Local mode: where an attempt "ran", deterministically from the seed
# ---------------------------------------------------------------------------------------------------


def _fraction(*parts: object) -> float:
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def local_placement(
    seed: int,
    task_id: str,
    attempt: int,
    vcpus: int,
    memory_mib: int,
    prices: InstancePrices,
    region: str,
    gpus: int = 0,
    capacity: str = SPOT,
    nodes: int = 1,
) -> Placement:
    """The instance an emulated attempt ran on, as Batch would pick it: among the default instance types
    of the attempt's compute environment (``instance_types.json`` defaults, as Terraform's), the smallest
    of each family that holds the job, one of them and a zone picked from (seed, task, attempt), so a
    rerun gives the same ledger."""
    specs = default_instance_table()
    if gpus:
        names = specs.defaults.get("gpu_instance_types", [])
    elif nodes > 1:
        names = specs.defaults.get("mnp_instance_types", [])
    else:
        names = specs.defaults.get("spot_instance_types" if capacity == SPOT else "ondemand_instance_types", [])
    fitting: dict[str, InstanceType] = {}
    for name in names:
        spec, priced = specs.get(name), prices.instances.get(name)
        if spec is None or priced is None or not spec.holds(vcpus, memory_mib, gpus):
            continue
        family = name.split(".", 1)[0]
        if family not in fitting or (priced.vcpus, priced.memory_mib) < (
            fitting[family].vcpus,
            fitting[family].memory_mib,
        ):
            fitting[family] = priced
    candidates = [fitting[family] for family in sorted(fitting)]
    if not candidates:
        raise PriceTableError(
            f"task {task_id!r} needs {vcpus} vCPUs, {memory_mib} MiB and {gpus} GPUs: no priced default instance "
            "type holds it; add its type to instance_prices.json (scripts/refresh_prices.py)"
        )
    chosen = candidates[int(_fraction(seed, task_id, attempt, "type") * len(candidates))]
    zone = LOCAL_ZONE_SUFFIXES[int(_fraction(seed, task_id, attempt, "zone") * len(LOCAL_ZONE_SUFFIXES))]
    return Placement(chosen.name, f"{region}{zone}")


def local_spot_price(seed: int, instance: InstanceType, availability_zone: str) -> float:
    low, high = LOCAL_SPOT_DISCOUNT
    discount = low + (high - low) * _fraction(seed, instance.name, availability_zone, "spot")
    return round(instance.on_demand_hourly * (1 - discount), 5)


class InstanceLookup(Protocol):
    def instance(self, name: str) -> InstanceType: ...


SpotPriceLookup = Callable[[str, str, float], float]  # (instance type, zone, epoch seconds) -> USD/hour


def build_ledger(
    records: Iterable[AttemptRecord],
    placement_of: Callable[[AttemptRecord], Placement],
    prices: InstanceLookup,
    spot_price: SpotPriceLookup,
) -> list[LedgerEntry]:
    entries = []
    for record in records:
        placement = placement_of(record)
        instance = prices.instance(placement.instance_type)
        at = record.started_at if record.started_at is not None else record.created_at
        hourly = spot_price(instance.name, placement.availability_zone, at) if record.capacity == SPOT else 0.0
        entries.append(price_attempt(record, placement, instance, hourly))
    return entries
