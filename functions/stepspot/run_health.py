"""Checkpoint health of one job attempt: the run record, empty-directory rule, lost work, observed MTBI (pure).

Standard library only and Python 3.9 compatible: the task runner bundle imports it.

The runner keeps one *run record* per job attempt in the checkpoint table, next to the task's checkpoint
items (the job role may already read and write there, so nothing new is granted):

* ``pk = <workflow>#<task>``, ``sk = RUN#<Batch job id>``: when the program started and exited
  (``program_started_epoch``, ``program_exited_epoch``; a reclaim that kills the runner leaves the latter
  unset), how long the restore took (``restore_seconds``, ``restored_sequence``), ``last_saved_epoch``
  (scan start of the last save that made a new complete checkpoint: the state a restart resumes from),
  ``checkpoint_empty`` once the directory stayed empty for two intervals, and the instance type and zone
  read from IMDS.
* ``pk = STATS#<instance type>#<zone>``, ``sk = INTERRUPTIONS``: ``exposure_seconds`` (program running time
  on that type and zone, all workflows) and ``notices`` (Spot interruption notices those jobs received),
  both added atomically by the runners. Their ratio is the observed mean time between interruptions.

The workflow monitor reads the run record when the job ends (one Query, which it was already allowed) and
writes the lost work of a reclaimed job and the restore time onto the task item (state table).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

RUN_SK_PREFIX = "RUN#"
# Attributes of the run record that the workflow monitor carries over to the task item under the same
# names (stepspot.state_items.Task takes them from here: this module must stay standard library only).
CHECKPOINT_EMPTY = "checkpoint_empty"
LOST_WORK_SECONDS = "lost_work_seconds"
RESTORE_SECONDS = "restore_seconds"
STATS_PK_PREFIX = "STATS#"
STATS_SK = "INTERRUPTIONS"
# Exposure is added when this much has accumulated (and on a notice and at exit): one write per job every
# few minutes, not per checkpoint. A reclaim without notice drops at most this much, a pessimistic error.
EXPOSURE_FLUSH_SECONDS = 300.0

# After this many checkpoint intervals with an empty directory the task is flagged.
EMPTY_AFTER_INTERVALS = 2
CHECKPOINT_EMPTY_MESSAGE = "checkpointing enabled but nothing saved"

# Observed MTBI is used only when the runs on that type and zone add up to at least this much time:
# below it one early notice would set a tiny MTBI (and a checkpoint every few seconds).
MIN_EXPOSURE_SECONDS = 3600.0
MIN_OBSERVED_MTBI_SECONDS = 600.0

MTBI_SOURCE_FIXED = "fixed"
MTBI_SOURCE_OBSERVED = "observed"
MTBI_SOURCE_NONE_SEEN = "observed, no interruption yet"


def run_sk(job_id: str) -> str:
    """The run record's sort key: one per Batch job (a multi-node job's ``<id>#<node>`` is its parent's)."""
    return RUN_SK_PREFIX + job_id.split("#", 1)[0]


def stats_key(instance_type: str, availability_zone: str) -> dict[str, str]:
    """The interruption statistics item of one type and zone: its own partition key, so no hot partition."""
    return {"pk": f"{STATS_PK_PREFIX}{instance_type}#{availability_zone}", "sk": STATS_SK}


def checkpoint_empty_due(program_started: float, now: float, interval: float, saved_anything: bool) -> bool:
    """True once the directory stayed empty for ``EMPTY_AFTER_INTERVALS`` intervals since the program started."""
    if saved_anything or not math.isfinite(interval):
        return False
    return now - program_started >= EMPTY_AFTER_INTERVALS * interval


def lost_work_seconds(program_started_epoch: float, last_saved_epoch: float | None, stopped_epoch: float) -> float:
    """Compute lost by a reclaim: from the last state made durable (or the program's start) to the stop."""
    since = program_started_epoch if last_saved_epoch is None else max(program_started_epoch, last_saved_epoch)
    return max(0.0, stopped_epoch - since)


def observed_mtbi(exposure_seconds: float, notices: int, fallback: float) -> tuple[float, str]:
    """(MTBI, source) for Young/Daly from the interruptions observed on one instance type and zone.

    ``exposure / notices`` once there is enough exposure; with none seen yet the exposure itself is a
    lower bound of the MTBI, so the larger of it and the fixed value is used. Too little exposure: fixed.
    """
    if exposure_seconds < MIN_EXPOSURE_SECONDS:
        return fallback, MTBI_SOURCE_FIXED
    if notices <= 0:
        return max(fallback, exposure_seconds), MTBI_SOURCE_NONE_SEEN
    return max(MIN_OBSERVED_MTBI_SECONDS, exposure_seconds / notices), MTBI_SOURCE_OBSERVED


def _number(item: Mapping[str, Any], name: str) -> float | None:
    value = item.get(name)
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def reclaim_lost_work(run: Mapping[str, Any], stopped_epoch: float) -> float | None:
    """Lost work of a reclaimed attempt from its run record; None when the program never started.

    The compute ends when the program exits (``program_exited_epoch``, e.g. it stopped on the notice and
    the runner waited for the host to go) or when the job stopped, whichever came first.
    """
    started = _number(run, "program_started_epoch")
    if started is None:
        return None
    exited = _number(run, "program_exited_epoch")
    end = stopped_epoch if exited is None else min(exited, stopped_epoch)
    return round(lost_work_seconds(started, _number(run, "last_saved_epoch"), end), 3)


def restore_seconds(run: Mapping[str, Any]) -> float | None:
    """How long the attempt's restore took, when it restored a checkpoint."""
    if run.get("restored_sequence") in (None, ""):
        return None
    seconds = _number(run, RESTORE_SECONDS)
    return None if seconds is None else round(seconds, 3)


def task_health(task: Mapping[str, Any], runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What `stepspot status` and the local summary show per task: empty flag, lost work and restores.

    ``task`` is the task item (the monitor's totals), ``runs`` its run records (live: a running job's
    empty flag is there before the monitor copies it).
    """
    empty = bool(task.get(CHECKPOINT_EMPTY)) or any(bool(r.get(CHECKPOINT_EMPTY)) for r in runs)
    lost = [float(x) for x in task.get(LOST_WORK_SECONDS) or []]
    restores = [float(x) for x in task.get(RESTORE_SECONDS) or []]
    return {
        CHECKPOINT_EMPTY: empty,
        LOST_WORK_SECONDS: lost,
        RESTORE_SECONDS: restores,
        "warning": CHECKPOINT_EMPTY_MESSAGE if empty else None,
    }


def seconds_list(values: list[float]) -> str:
    """``"12.3, 4.0"`` for a column of per-reclaim (or per-restore) seconds; ``"-"`` for none."""
    return ", ".join(f"{v:.1f}" for v in values) or "-"
