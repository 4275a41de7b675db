"""Emit CloudWatch metrics as Embedded Metric Format lines with Powertools, one document per dimension set.

Each call builds its own ``EphemeralMetrics``: Powertools' ``Metrics`` keeps one registry shared by
every instance in the process, which is right for one Lambda but mixes up metrics when several handlers
run in one process on several threads (local mode). ``service=""`` keeps Powertools from adding a
``service`` dimension: stepspot's metric streams are identified by name and ``environment`` (plus the
breakdowns listed in ``stepspot.metrics``), whichever function emits them, and the dashboard and alarms
rely on exactly those dimension sets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from aws_lambda_powertools.metrics import EphemeralMetrics


def emit(namespace: str, dimensions: Mapping[str, str], values: Iterable[tuple[str, str, float]]) -> None:
    """Print one EMF document with ``values`` (name, unit, value) under exactly ``dimensions``."""
    batch = list(values)
    if not batch:
        return
    document = EphemeralMetrics(namespace=namespace, service="")
    for name, value in dimensions.items():
        document.add_dimension(name=name, value=value)
    for name, unit, amount in batch:
        document.add_metric(name=name, unit=unit, value=amount)
    document.flush_metrics()
