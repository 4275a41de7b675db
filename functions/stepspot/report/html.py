"""`stepspot report` / `stepspot local --report`: one self-contained HTML file telling a run's story.

The page embeds its data (compact JSON) and Apache ECharts (``report/vendor/echarts.min.js``, copied at
build time from the npm package pinned in ``report-assets/package.json`` by ``make report-assets``), so it
opens offline. ECharts rather than Plotly: its minified build is ~1.1 MB against Plotly's ~4.5 MB (the
report of a 1,000-task run must stay under 2 MB), it draws on a canvas (thousands of bars stay fast) and
its custom series draws a Gantt timeline and its graph series the DAG. The page is a Jinja2 template.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import markupsafe

from stepspot.cost import SPOT
from stepspot.errors import ConfigurationError, FatalError
from stepspot.report.model import RunRecord

ECHARTS_RESOURCE = "report/vendor/echarts.min.js"
TEMPLATE_NAME = "report.html.j2"


class ReportAssetsMissing(ConfigurationError):
    """Indicates that the charting library was not built into this installation."""


class ReportPathError(FatalError):
    """Indicates that the report cannot be written where it was asked for."""


def check_report_path(path: Path) -> None:
    """Refuse a path the report cannot be written to, before any work is done."""
    if path.is_dir():
        raise ReportPathError(f"{path} is a directory; give the report a file name, e.g. {path / 'report.html'}")
    parent = next((p for p in [path.parent, *path.parent.parents] if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ReportPathError(f"cannot write the report under {parent}; choose a writable path")


def echarts_source() -> str:
    asset = resources.files("stepspot").joinpath(ECHARTS_RESOURCE)
    if not asset.is_file():
        raise ReportAssetsMissing(
            "the report's charting library (Apache ECharts) is not in this installation: run `make report-assets` "
            "(it copies the pinned npm package into functions/stepspot/report/vendor/) and try again"
        )
    return asset.read_text(encoding="utf-8")


def _levels(tasks: list[Any]) -> dict[str, int]:
    level: dict[str, int] = {}
    pending = {t.task_id: t for t in tasks}
    while pending:
        progressed = False
        for task_id, task in list(pending.items()):
            deps = [d for d in task.depends_on if d in level or d in pending]
            if all(d in level for d in deps):
                level[task_id] = 1 + max((level[d] for d in deps), default=-1)
                del pending[task_id]
                progressed = True
        if not progressed:  # a cycle cannot come from a validated plan; place the rest last
            for task_id in pending:
                level[task_id] = 0
            break
    return level


def report_data(record: RunRecord) -> dict[str, Any]:
    """The page's data: arrays rather than objects, times in seconds from the first submission."""
    entries = sorted(record.ledger, key=lambda e: (e.task_id, e.attempt, e.created_at))
    origin = min((e.created_at for e in entries), default=0.0)

    def rel(t: float | None) -> float | None:
        return None if t is None else round(t - origin, 1)

    row = {t.task_id: i for i, t in enumerate(record.tasks)}
    attempts = []
    previous_stop: dict[str, float | None] = {}
    checkpoints = {task: sorted(times) for task, times in record.checkpoints.items()}
    restored = []
    for e in entries:
        index = row.get(e.task_id)
        if index is None:
            continue
        before = [t for t in checkpoints.get(e.task_id, []) if t <= (e.started_at or e.created_at)]
        if e.attempt > 1 and before and e.started_at is not None:
            restored.append([index, rel(e.started_at)])
        attempts.append(
            [
                index,
                e.attempt,
                1 if e.capacity == SPOT else 0,
                rel(previous_stop.get(e.task_id)),  # back-off wait from the previous attempt's end ...
                rel(e.created_at),  # ... to this submission; queue wait to the start
                rel(e.started_at),
                rel(e.stopped_at),
                1 if e.reclaimed else 0,
                e.status[0],  # S | F
                e.instance_type,
                e.availability_zone,
                round(e.cost_usd, 6),
                round(e.lost_usd, 6),
                e.failure_class or "",
                1 if e.fallback else 0,
            ]
        )
        previous_stop[e.task_id] = e.stopped_at
    saved = [[row[task], rel(t)] for task, times in checkpoints.items() if task in row for t in times]
    levels = _levels(record.tasks)
    per_level: dict[int, int] = {}
    nodes = []
    for task in record.tasks:
        level = levels.get(task.task_id, 0)
        position = per_level.get(level, 0)
        per_level[level] = position + 1
        nodes.append([task.task_id, task.state, level, position, task.failure_class or ""])
    edges = [[row[d], row[t.task_id]] for t in record.tasks for d in t.depends_on if d in row]
    totals = record.totals()
    per_task = record.totals_per_task()
    failure_classes: dict[str, int] = {}
    for e in entries:
        if e.failure_class:
            failure_classes[e.failure_class] = failure_classes.get(e.failure_class, 0) + 1
    top = sorted(per_task.items(), key=lambda kv: -kv[1].total_usd)[:25]
    lost = [
        [e.task_id, e.attempt, e.instance_type, e.availability_zone, round(e.lost_seconds), round(e.lost_usd, 4)]
        for e in entries
        if e.reclaimed
    ]
    return {
        "tasks": [t.task_id for t in record.tasks],
        "attempts": attempts,
        "saved": saved,
        "restored": restored,
        "nodes": nodes,
        "edges": edges,
        "totals": totals.to_dict(4),
        "top": [[task_id, round(t.total_usd, 4), round(t.lost_usd, 4), t.attempts] for task_id, t in top],
        "lost": lost,
        "failure_classes": failure_classes,
        "currency": record.currency,
    }


def render_report(record: RunRecord) -> str:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("stepspot", "report"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
    )
    template = environment.get_template(TEMPLATE_NAME)
    data = report_data(record)
    states: dict[str, int] = {}
    for task in record.tasks:
        states[task.state] = states.get(task.state, 0) + 1
    return template.render(
        record=record,
        data=data,
        states=dict(sorted(states.items())),
        echarts=markupsafe.Markup(echarts_source().replace("</script", "<\\/script")),
    )


def write_report(record: RunRecord, path: Path) -> int:
    """Write the report; returns its size in bytes. Written whole or not at all."""
    check_report_path(path)
    text = render_report(record)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)
    except OSError as exc:
        raise ReportPathError(f"cannot write the report to {path} ({exc.strerror}); choose a writable path") from exc
    return len(text.encode("utf-8"))
