"""Emit CloudWatch metrics as Embedded Metric Format lines with Powertools, one document per dimension set.

Each call builds its own ``EphemeralMetrics``: Powertools' ``Metrics`` keeps one registry shared by
every instance in the process, which is right for one Lambda but mixes up metrics when several handlers
run in one process on several threads (local mode). ``service=""`` keeps Powertools from adding a
``service`` dimension: stepspot's metric streams are identified by name and ``environment`` (plus the
breakdowns listed in ``stepspot.metrics``), whichever function emits them, and the dashboard and alarms
rely on exactly those dimension sets. A metric that ``stepspot.metrics`` does not list, or a unit or
dimension set it does not declare for that metric, raises ``ValueError``: that is a bug in the caller.

``counted`` reads a printed document back (local mode's metric totals), counting each emission once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.metrics import EphemeralMetrics

from stepspot.metrics import MetricName, spec


def _check(name: str, unit: str, dimensions: Mapping[str, str]) -> None:
    try:
        declared = spec(name)
    except KeyError:
        raise ValueError(f"Metric {name!r} is not registered in stepspot.metrics: add a MetricSpec for it.") from None
    if unit != declared.unit:
        raise ValueError(f"Metric {name!r} is declared with unit {declared.unit!r}, not {unit!r}.")
    if tuple(sorted(dimensions)) not in {tuple(sorted(d)) for d in declared.dimension_sets}:
        raise ValueError(
            f"Metric {name!r} is declared with dimension sets {list(declared.dimension_sets)}, "
            f"not {sorted(dimensions)}."
        )


def emit(namespace: str, dimensions: Mapping[str, str], values: Iterable[tuple[str, str, float]]) -> None:
    """Print one EMF document with ``values`` (name, unit, value) under exactly ``dimensions``."""
    batch = list(values)
    if not batch:
        return
    for name, unit, _ in batch:
        _check(name, unit, dimensions)
    document = EphemeralMetrics(namespace=namespace, service="")
    for name, value in dimensions.items():
        document.add_dimension(name=name, value=value)
    for name, unit, amount in batch:
        document.add_metric(name=name, unit=unit, value=amount)
    document.flush_metrics()


@dataclass
class MetricBatch:
    """One invocation's metrics under one dimension set (units from ``stepspot.metrics``).

    Handlers add to it while they work and ``flush`` it once at the end (also when they raise), so each
    invocation prints at most one EMF document.
    """

    namespace: str
    dimensions: Mapping[str, str]
    values: list[tuple[str, str, float]] = field(default_factory=list)

    def add(self, name: MetricName, value: float) -> None:
        self.values.append((name.value, spec(name).unit, float(value)))

    def flush(self) -> None:
        pending, self.values = self.values, []
        emit(self.namespace, self.dimensions, pending)


def counted(document: Mapping[str, Any]) -> dict[str, float]:
    """What one printed EMF document adds to each metric's total: the values of the metrics it carries
    under their total series, the first dimension set ``stepspot.metrics`` declares (``environment``
    alone), which every emission goes to. A document under another set (per queue, per instance type
    and zone) repeats an emission for a breakdown and adds nothing; so do metrics stepspot does not
    declare (not emitted through here)."""
    totals: dict[str, float] = {}
    directives = document.get("_aws", {}).get("CloudWatchMetrics", [])
    for directive in directives if isinstance(directives, list) else []:
        dimension_sets = {tuple(sorted(names)) for names in directive.get("Dimensions", [])}
        for metric in directive.get("Metrics", []):
            name = str(metric.get("Name"))
            try:
                total_series = tuple(sorted(spec(name).dimension_sets[0]))
            except KeyError:
                continue
            if total_series not in dimension_sets:
                continue
            value = document.get(name, 0)
            totals[name] = totals.get(name, 0.0) + sum(
                float(v) for v in (value if isinstance(value, list) else [value])
            )
    return totals
