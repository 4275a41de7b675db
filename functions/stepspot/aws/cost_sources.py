"""AWS adapters of the cost ledger: where a job ran and what Spot cost there and then. Cached per container.

- placement: ECS ``DescribeContainerInstances`` (the job's container instance -> EC2 instance id), then EC2
  ``DescribeInstances`` (instance type, availability zone). Both cached by ARN / instance id.
- instance types missing from the bundled price table: vCPUs and memory from the instance table
  (``stepspot.capacity``), else EC2 ``DescribeInstanceTypes``, priced
  On-Demand from the fitted per-vCPU/per-GiB rates of ``data/prices.json`` (an estimate: the report's
  notes name such types, ``report/from_state.py``). Cached by type.
- Spot price: EC2 ``DescribeSpotPriceHistory`` for the type, zone and ``Linux/UNIX`` with start = end = the
  attempt's start, which returns the price in effect then. Cached per (type, zone, hour).

IAM (workflow monitor role): ``ecs:DescribeContainerInstances``, ``ec2:DescribeInstances``,
``ec2:DescribeInstanceTypes``, ``ec2:DescribeSpotPriceHistory``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from stepspot.aws.errors import error_code
from stepspot.aws.errors import translate_client_error as translate
from stepspot.capacity import default_instance_table
from stepspot.cost import InstancePrices, InstanceType, Placement
from stepspot.cost_events import cluster_of
from stepspot.errors import FatalError
from stepspot.estimate import PriceTable

SPOT_PRODUCT = "Linux/UNIX"
# What AWS answers about a cluster, container instance or instance that is gone.
_GONE = {"ClusterNotFoundException", "InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"}
SPOT_CACHE_SECONDS = 3600  # Spot prices change at most a few times a day per type and zone


class PlacementUnknownError(FatalError):
    """Indicates that the instance a job ran on can no longer be described (terminated long ago)."""


class CostSources:
    def __init__(self, ecs: Any, ec2: Any, prices: InstancePrices, fitted: PriceTable) -> None:
        self._ecs = ecs
        self._ec2 = ec2
        self.prices = prices
        self._fitted = fitted
        self._placements: dict[str, Placement] = {}
        self._types: dict[str, InstanceType] = {}
        self._spot: dict[tuple[str, str, int], float] = {}

    def placement(self, container_instance_arn: str) -> Placement:
        cached = self._placements.get(container_instance_arn)
        if cached is not None:
            return cached
        try:
            described = self._ecs.describe_container_instances(
                cluster=cluster_of(container_instance_arn), containerInstances=[container_instance_arn]
            )
        except ClientError as exc:
            if error_code(exc) in _GONE:
                raise PlacementUnknownError(f"ECS no longer knows {container_instance_arn}") from exc
            raise translate(exc, "calling ecs:DescribeContainerInstances") from exc
        found = described.get("containerInstances") or []
        if not found or not found[0].get("ec2InstanceId"):
            raise PlacementUnknownError(f"ECS no longer knows container instance {container_instance_arn}")
        instance_id = str(found[0]["ec2InstanceId"])
        try:
            reservations = self._ec2.describe_instances(InstanceIds=[instance_id]).get("Reservations", [])
        except ClientError as exc:
            if error_code(exc) in _GONE:
                raise PlacementUnknownError(f"EC2 no longer knows instance {instance_id}") from exc
            raise translate(exc, "calling ec2:DescribeInstances") from exc
        instances = [i for r in reservations for i in r.get("Instances", [])]
        if not instances:
            raise PlacementUnknownError(f"EC2 no longer knows instance {instance_id}")
        instance = instances[0]
        placement = Placement(
            instance_type=str(instance["InstanceType"]),
            availability_zone=str(instance.get("Placement", {}).get("AvailabilityZone", "")),
            instance_id=instance_id,
        )
        self._placements[container_instance_arn] = placement
        return placement

    def instance_type(self, name: str) -> InstanceType:
        known = self.prices.instances.get(name) or self._types.get(name)
        if known is not None:
            return known
        table = default_instance_table().get(name)
        if table is not None:
            vcpus, memory, gpus = table.vcpus, table.memory_mib, table.gpus
        else:
            try:
                described = self._ec2.describe_instance_types(InstanceTypes=[name]).get("InstanceTypes", [])
            except ClientError as exc:
                raise translate(exc, "calling ec2:DescribeInstanceTypes") from exc
            if not described:
                raise PlacementUnknownError(f"EC2 does not describe instance type {name}")
            spec = described[0]
            vcpus = int(spec["VCpuInfo"]["DefaultVCpus"])
            memory = int(spec["MemoryInfo"]["SizeInMiB"])
            gpus = sum(int(g.get("Count", 0)) for g in spec.get("GpuInfo", {}).get("Gpus", []))
        hourly = self._fitted.on_demand.hourly(vcpus, memory, gpus, 1)
        found = InstanceType(name=name, vcpus=vcpus, memory_mib=memory, on_demand_hourly=hourly, gpus=gpus)
        self._types[name] = found
        return found

    def spot_price(self, instance_type: str, availability_zone: str, at: float) -> float:
        key = (instance_type, availability_zone, int(at // SPOT_CACHE_SECONDS))
        cached = self._spot.get(key)
        if cached is not None:
            return cached
        moment = datetime.fromtimestamp(at, UTC)
        try:
            history = self._ec2.describe_spot_price_history(
                InstanceTypes=[instance_type],
                AvailabilityZone=availability_zone,
                ProductDescriptions=[SPOT_PRODUCT],
                StartTime=moment,
                EndTime=moment,
            ).get("SpotPriceHistory", [])
        except ClientError as exc:
            raise translate(exc, "calling ec2:DescribeSpotPriceHistory") from exc
        price = spot_price_at([h for h in history if h.get("AvailabilityZone") in (None, availability_zone)], moment)
        if price is None:
            raise PlacementUnknownError(
                f"no Spot price of {instance_type} in {availability_zone} at {moment.isoformat()}"
            )
        self._spot[key] = price
        return price


def spot_price_at(history: list[dict[str, Any]], moment: datetime) -> float | None:
    """The price in effect at ``moment``: the newest record not after it (else the oldest one given)."""
    dated = sorted(((h["Timestamp"], float(h["SpotPrice"])) for h in history), key=lambda pair: pair[0])
    before = [price for stamp, price in dated if stamp <= moment]
    if before:
        return before[-1]
    return dated[0][1] if dated else None
