"""Recognise a task that read another task's file without declaring it as an input. Pure.

On AWS each attempt has its own container file system, so such a task fails with "No such file or
directory". Local mode gives every attempt a private working directory, so it fails the same way; this
turns that failure into advice: the job log names a missing file, another task of the run wrote (or
declares) that path, so the reader should declare it as an input from that task.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from stepspot.dataflow import matches

# "FileNotFoundError: [Errno 2] No such file or directory: 'x'", "cat: x: No such file or directory",
# "open x: no such file or directory" (Go), "can't open file 'x'" (python x.py).
_MISSING = (
    re.compile(r"No such file or directory: ['\"]([^'\"\n]+)['\"]", re.IGNORECASE),
    re.compile(r"([^\s:'\"]+): No such file or directory", re.IGNORECASE),
    re.compile(r"open ([^\s:'\"]+): no such file or directory", re.IGNORECASE),
    re.compile(r"can't open file ['\"]([^'\"\n]+)['\"]", re.IGNORECASE),
)


@dataclass(frozen=True)
class Attempt:
    task_id: str
    failed: bool
    log: str
    work_dir: Path | None


def missing_paths(log: str, work_dir: Path | None) -> list[str]:
    """Paths a log says were missing, relative to the attempt's working directory where possible."""
    found: list[str] = []
    for pattern in _MISSING:
        for match in pattern.finditer(log):
            path = match.group(1).strip()
            if work_dir is not None and path.startswith(str(work_dir) + "/"):
                path = path[len(str(work_dir)) + 1 :]
            path = path.removeprefix("./")
            if path and not path.startswith("/") and path not in found:
                found.append(path)
    return found


def _written(work_dir: Path | None, relative: str) -> bool:
    return work_dir is not None and (work_dir / relative).is_file()


def advice(attempts: Iterable[Attempt], declared_outputs: Mapping[str, list[str]]) -> list[str]:
    """One sentence per (reader, file, producer): the input to declare (and the output, if undeclared)."""
    attempts = list(attempts)
    by_task: dict[str, list[Attempt]] = {}
    for attempt in attempts:
        by_task.setdefault(attempt.task_id, []).append(attempt)
    sentences: list[str] = []
    for attempt in attempts:
        if not attempt.failed:
            continue
        for path in missing_paths(attempt.log, attempt.work_dir):
            for producer, outputs in declared_outputs.items():
                if producer == attempt.task_id:
                    continue
                declared = any(matches(o, path) or o == path for o in outputs)
                wrote = any(_written(a.work_dir, path) for a in by_task.get(producer, []))
                if not (declared or wrote):
                    continue
                item = json.dumps({"from": producer, "path": path})
                sentence = (
                    f"task {attempt.task_id!r} read {path!r}, which task {producer!r} "
                    f"{'declares as an output' if declared else 'wrote'}, without declaring it as an input "
                    f"(each task runs in its own directory, as on AWS): add {item} to the inputs of "
                    f"{attempt.task_id!r}"
                )
                if not declared:
                    sentence += f" and {path!r} to the outputs of {producer!r}"
                if sentence not in sentences:
                    sentences.append(sentence)
    return sentences
