"""`stepspot outputs WORKFLOW [TASK] [--download DIR]`: what tasks published, and fetching it.

A submitted workflow's outputs are read from ``runs/<workflow>/<task>/outputs/`` in the deployment's
bucket (manifest first, files checked against it). A local run (``stepspot local``) keeps each task's
outputs in the private working directory of its successful attempt; for those this prints where they
are on disk (``<workdir>/runs/<workflow>/outputs.json`` records them) and ``--download`` copies them.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from rich.table import Table

from stepspot.cli.output import console, err_console
from stepspot.cli.remote_context import (
    EXIT_OK,
    EXIT_USAGE,
    RemoteContext,
    usage_errors_exit_2,
    workflow_id_from,
)
from stepspot.local.summary import LOCAL_OUTPUTS_FILE


def _rows(published: dict[str, list[dict[str, Any]]], location: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"task_id": task, "path": f["path"], "size": f["size"], "location": f"{location[task]}{f['path']}"}
        for task, files in published.items()
        for f in files
    ]


def _print(rows: list[dict[str, Any]], workflow_id: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"Outputs of {workflow_id}", title_justify="left")
    for column in ("task", "path", "size", "location"):
        table.add_column(column, justify="right" if column == "size" else "left", overflow="fold")
    for row in rows:
        table.add_row(row["task_id"], row["path"], str(row["size"]), row["location"])
    console.print(table)


def _refuse(message: str) -> int:
    err_console.print(f"stepspot: {message}", highlight=False, soft_wrap=True)
    return EXIT_USAGE


def _only(published: dict[str, Any], task: str | None) -> dict[str, Any] | None:
    if task is None:
        return published
    if task not in published:
        return None
    return {task: published[task]}


@usage_errors_exit_2
def run_outputs(args: argparse.Namespace) -> int:
    workflow_id = workflow_id_from(args.workflow)
    local_file = args.workdir / "runs" / workflow_id / LOCAL_OUTPUTS_FILE
    if local_file.is_file():
        return _local(args, workflow_id, json.loads(local_file.read_text(encoding="utf-8")))
    context = RemoteContext.from_args(args)
    from stepspot.aws.run_outputs import RunOutputs

    store = RunOutputs(context.client("s3"), context.deployment.bucket_name)
    task_ids = [args.task] if args.task else store.tasks(workflow_id)
    manifests = store.manifests(workflow_id, task_ids)
    if args.task and args.task not in manifests:
        return _refuse(
            f"task {args.task!r} of workflow {workflow_id!r} has published no outputs in "
            f"{context.deployment.environment} (it has not succeeded, or declares no outputs): `stepspot status` "
            "shows its state."
        )
    if not manifests:
        return _refuse(
            f"workflow {workflow_id!r} has no published outputs in {context.deployment.environment}: tasks publish "
            "their declared outputs when they succeed (`stepspot status` shows their state)."
        )
    published = {task: [{"path": f.path, "size": f.size} for f in files] for task, files in manifests.items()}
    prefix = f"s3://{store.bucket}/runs/{workflow_id}"
    _print(_rows(published, {t: f"{prefix}/{t}/outputs: " for t in published}), workflow_id, args.json)
    if args.download:
        total = 0
        for task, files in manifests.items():
            total += store.download(workflow_id, task, files, args.download / task)
        console.print(f"downloaded {sum(map(len, manifests.values()))} files ({total} bytes) into {args.download}")
    return EXIT_OK


def _local(args: argparse.Namespace, workflow_id: str, document: dict[str, Any]) -> int:
    tasks = document.get("tasks", {})
    if not tasks:
        shared = args.workdir / "runs" / workflow_id / "shared"
        where = f" (its shared file system is {shared})" if shared.is_dir() else ""
        return _refuse(f"local run {workflow_id!r} published no outputs: no task declares outputs{where}.")
    chosen = _only(tasks, args.task)
    if chosen is None:
        return _refuse(
            f"task {args.task!r} of local run {workflow_id!r} published no outputs (it did not succeed or declares "
            f"none); tasks with outputs: {', '.join(tasks) or 'none'}."
        )
    published = {task: entry["files"] for task, entry in chosen.items()}
    _print(_rows(published, {t: entry["work_dir"] + "/" for t, entry in chosen.items()}), workflow_id, args.json)
    if args.download:
        count = 0
        for task, entry in chosen.items():
            for f in entry["files"]:
                target = args.download / task / f["path"]
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(Path(entry["work_dir"]) / f["path"], target)
                count += 1
        console.print(f"copied {count} files into {args.download}")
    return EXIT_OK
