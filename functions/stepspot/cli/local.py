"""`stepspot local FILE`: run a workflow on this machine with the same state machines as on AWS.

No AWS account: moto's Step Functions interpreter runs the rendered definitions, the Lambdas run
in-process, each task's command runs as a local process under the checkpoint agent. Fault injection
flags make Spot reclaims, capacity shortages and application failures happen on purpose.
Exit codes: 0 the workflow succeeded, 1 it failed, 2 bad input (file, flag, task id, missing command),
130 interrupted (Ctrl-C: the jobs are stopped, the run's files and summary kept).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich import filesize
from rich.console import Group
from rich.control import Control
from rich.live import Live
from rich.table import Table
from rich.text import Text

from stepspot.capacity_sources import offline_capacity
from stepspot.cli.data_checks import planned_shared_filesystem, refuses_missing_shared_filesystem
from stepspot.cli.output import EXIT_READER_GONE, console, end_process, err_console
from stepspot.errors import UnknownTaskError
from stepspot.local.faults import Faults
from stepspot.local.runner import bundle_checked_meanwhile
from stepspot.policy import load_policy_file
from stepspot.report.text import cost_line
from stepspot.run_health import seconds_list
from stepspot.scheduler import TaskState
from stepspot.state_items import Task

if TYPE_CHECKING:
    from stepspot.policy import Policy
    from stepspot.workflow import LoadedWorkflow

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
STATE_STYLES = {
    TaskState.PENDING: "dim",
    TaskState.READY: "cyan",
    TaskState.RUNNING: "yellow",
    TaskState.SUCCEEDED: "green",
    TaskState.FAILED: "red",
    TaskState.SKIPPED: "magenta",
}


def run(args: argparse.Namespace) -> int:
    from stepspot.workflow import load_workflow_file

    source = Path(args.file)
    if not source.is_file():
        err_console.print(
            f"stepspot: {source} does not exist; pass the path of a workflow definition",
            highlight=False,
            soft_wrap=True,
        )
        return EXIT_USAGE
    loaded = load_workflow_file(source)  # WorkflowValidationError -> exit 2 (cli/__init__)
    if loaded.workflow.global_config.shared_filesystem and refuses_missing_shared_filesystem(
        source, loaded, args.env, planned_shared_filesystem(args.env)
    ):
        return EXIT_USAGE  # as submit would refuse it on that environment
    if args.report:
        from stepspot.report.html import ReportPathError, check_report_path

        try:
            check_report_path(args.report)  # before the run: a bad path must not cost a whole run
        except ReportPathError as exc:
            err_console.print(f"stepspot: {exc.message}", highlight=False, soft_wrap=True)
            return EXIT_USAGE
    policy = load_policy_file(args.policy) if args.policy else None
    with bundle_checked_meanwhile():  # the runner bundle's check runs while the engine is imported
        return _run(args, source, loaded, policy)


def _run(args: argparse.Namespace, source: Path, loaded: LoadedWorkflow, policy: Policy | None) -> int:
    from stepspot.local.engine import LocalEngine, LocalOptions, LocalRunError

    options = LocalOptions(
        faults=Faults(
            spot_interruption_rate=args.spot_interruptions,
            interruptions_per_hour=args.interruptions_per_hour,
            capacity_shortage=args.capacity_shortage,
            app_failure_rate=args.app_failures,
            failing_tasks=frozenset(args.fail_task),
            reclaim_tasks=frozenset(args.reclaim_task),
            reclaim_once_tasks=frozenset(args.reclaim_once),
            seed=args.seed,
        ),
        time_scale=args.time_scale,
        policy=policy,
        workdir=args.workdir,
        timeout_seconds=args.timeout,
        capacity=offline_capacity(args.env),
        aws_fault_rate=args.aws_faults,
    )
    if args.max_parallel_jobs:
        options.max_parallel_jobs = args.max_parallel_jobs
    show_progress = not args.no_progress and console.is_terminal
    # One owner of the terminal: this console. The live display does not redirect stdout/stderr (the
    # handlers' output goes to the run's log files), and event lines print above it through the console.
    live = Live(
        Text("starting the local AWS emulator ..."),
        console=console,
        refresh_per_second=4,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
    )
    options.on_event = lambda line: console.print(line, highlight=False, markup=False, soft_wrap=True)
    if show_progress:
        options.on_progress = lambda snapshot: live.update(_progress_view(snapshot))
    engine = LocalEngine(options)

    def reader_gone() -> None:  # `stepspot local FILE | head`: nobody reads the run's output any more
        err_console.print("stepspot: the output's reader has gone (a closed pipe): stopping the run", highlight=False)
        engine.interrupt()

    try:
        with _interruptible(engine, restore_cursor=show_progress), console.when_reader_gone(reader_gone):
            if show_progress:
                with live:
                    summary = engine.run(loaded, source)
            else:
                summary = engine.run(loaded, source)
    except (LocalRunError, UnknownTaskError) as exc:
        err_console.print(f"stepspot: {exc.message}", highlight=False, soft_wrap=True)
        return EXIT_USAGE
    if summary.interrupted:
        threading.excepthook = lambda _args: None  # the stopped run's threads end quietly
    _print_summary(summary)
    if args.summary_json:
        summary.write_json(args.summary_json)
        console.print(f"summary written to {args.summary_json}", highlight=False)
    if args.report and summary.run_record is not None:
        from stepspot.report.html import write_report

        size = write_report(summary.run_record, args.report)
        console.print(f"report written to {args.report} ({size / 1e6:.2f} MB)", highlight=False)
    sys.stdout.flush()
    if summary.interrupted:
        return EXIT_READER_GONE if console.reader_gone.is_set() else EXIT_INTERRUPTED
    # The run is over and closed (emulator, jobs, log files); what is left is the emulator's objects, whose
    # one-by-one freeing at interpreter exit took a second after a 200-task run.
    return end_process(args, EXIT_OK if summary.status == "SUCCEEDED" else EXIT_FAILED)


@contextlib.contextmanager
def _interruptible(engine: Any, restore_cursor: bool = False) -> Iterator[None]:
    """Ctrl-C stops the run in order (jobs killed, emulator down, summary kept); a second Ctrl-C
    kills the jobs' process groups and exits at once, giving the terminal back the cursor the live
    display hid (``restore_cursor``: its exit, which would show it, never runs)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    presses = (signal.SIGINT, signal.SIGTERM)

    def quit_now() -> None:
        engine.kill_jobs_now()
        if restore_cursor:
            with contextlib.suppress(OSError, ValueError):  # nothing may keep this from exiting
                os.write(sys.stdout.fileno(), Control.show_cursor(True).segment.text.encode())
        # Plain writes: the console's lock may be held by the display, frozen where the press found it.
        os.write(2, b"\nstepspot: interrupted\n")
        os._exit(EXIT_INTERRUPTED)

    stopping = threading.Event()

    def on_sigint(_signum: int, _frame: Any) -> None:
        if not stopping.is_set():  # the first press; the second is the watcher's (below)
            stopping.set()
            os.write(2, b"\nstepspot: stopping the run (Ctrl-C again to quit at once) ...\n")
            engine.interrupt()

    # The second press quits from a thread of its own: a Python handler runs only when the main thread
    # runs Python code, so a signal delivered to another thread while the main thread waits without a
    # timeout (a join, a lock) would wait with it. Python's C-level handler writes each signal's number to
    # the wakeup fd, from whichever thread got it, and the watcher reads them there.
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    previous_wakeup = signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)

    def watch_presses() -> None:
        seen = 0
        while True:
            try:
                received = os.read(wake_read, 64)
            except OSError:
                return
            if not received:
                return
            seen += sum(1 for number in received if number in presses)
            if seen >= 2:
                quit_now()

    # SIGTERM (a CI job cancelled, `kill`) stops the run the same way: no job outlives this process.
    previous = {sig: signal.signal(sig, on_sigint) for sig in presses}
    watcher = threading.Thread(target=watch_presses, name="second-ctrl-c", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(previous_wakeup)
        os.close(wake_write)  # the watcher reads the end of the pipe and returns
        watcher.join(1.0)
        os.close(wake_read)


def _progress_view(snapshot: dict[str, Any]) -> Group:
    counts = snapshot["counts"]
    line = Text(f"{snapshot['workflow_id']}  ")
    for state, style in STATE_STYLES.items():
        if counts.get(state):
            line.append(f"{state.lower()} {counts[state]}  ", style=style)
    line.append(f"of {snapshot['total']}")
    running = [item for item in snapshot["tasks"].values() if item.get(Task.STATE) == TaskState.RUNNING]
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    for column in ("running task", "attempt", "capacity", "interruptions", "last failure"):
        table.add_column(column)
    for item in sorted(running, key=lambda i: str(i["task_id"]))[:12]:
        table.add_row(
            str(item["task_id"]),
            str(item.get(Task.ATTEMPTS, 0)),
            str(item.get(Task.CAPACITY, "-")),
            str(item.get(Task.INTERRUPTIONS, 0)),
            str(item.get(Task.LAST_FAILURE_CLASS, "")),
        )
    if len(running) > 12:
        table.add_row(f"... {len(running) - 12} more", "", "", "", "")
    return Group(line, table)


def _print_summary(summary: Any) -> None:
    style = {"SUCCEEDED": "green", "INTERRUPTED": "yellow"}.get(summary.status, "red")
    console.print(f"[bold {style}]{summary.status}[/]  workflow {summary.workflow_id}", highlight=False)
    if summary.interrupted:
        console.print("  stopped by Ctrl-C: jobs stopped, run files kept", highlight=False)
    elif summary.status != "SUCCEEDED" and summary.cause:
        console.print(f"  reason: {summary.cause[:400]}", highlight=False, soft_wrap=True)
    for problem in summary.data_problems:
        console.print(f"  [red]undeclared input:[/] {problem}", highlight=False, soft_wrap=True)
    for failure in summary.failures:
        console.print(
            f"  task {failure['task_id']} failed (attempt {failure['attempt']}): {failure['cause']}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        if failure["log_tail"]:
            console.print(f"  last lines of {failure['log']}:", highlight=False, markup=False, soft_wrap=True)
            for line in failure["log_tail"]:
                console.print(f"    {line}", highlight=False, markup=False, soft_wrap=True)
    for warning in [*summary.checkpoint_warnings, *summary.monitoring_warnings]:
        console.print(f"  [yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    tasks = summary.tasks
    cost = summary.estimated_cost
    rows = [
        (
            "tasks",
            f"{tasks['succeeded']} succeeded, {tasks['failed']} failed, {tasks['skipped']} skipped of {tasks['total']}",
        ),
        (
            "attempts",
            f"{summary.attempts} (interruptions {summary.interruptions}, capacity failures "
            f"{summary.capacity_failures}, application failures {summary.app_failures})",
        ),
        ("fallbacks to On-Demand", str(summary.fallbacks_to_on_demand)),
        ("checkpoints", f"{summary.checkpoints['saved']} saved, {summary.checkpoints['restored']} restored"),
        ("work lost per reclaim", _lost_work_text(summary.per_task)),
        (
            "makespan",
            f"{summary.makespan_seconds:.2f} s real = {summary.makespan_scaled_seconds / 3600:.2f} h "
            f"at time scale {summary.time_scale:g}",
        ),
        ("critical path", _critical_path_text(summary.critical_path, summary.per_task, summary.interrupted)),
        ("state transitions", f"{summary.transitions['total']} ({summary.transitions['per_task']} per task)"),
        ("largest state payload", f"{summary.largest_state_payload_bytes:,} bytes (limit 262,144)"),
        (
            "cost by task shape",
            f"as run ${cost['spot_usd']:.2f} (Spot where allowed, interrupted attempts included) vs all "
            f"On-Demand ${cost['on_demand_usd']:.2f}: "
            + _saving_text(cost["savings_usd"], cost["savings_percent"])
            + " (vCPU and GiB priced per hour, data/prices.json: the model of `stepspot plan`)",
        ),
        (
            "planned saving",
            f"${cost['planned']['savings_usd']:.2f} ({cost['planned']['spot_savings_percent']} %) of "
            f"${cost['planned']['on_demand_usd']:.2f}. {cost['explanation']}",
        ),
    ]
    if summary.cost:
        # Each attempt as its share of the emulated instance it ran on (data/instance_prices.json): the
        # model of the ledger `stepspot status` and `stepspot report` show on AWS.
        rows.append(("cost by instance (ledger)", cost_line(summary.cost)))
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    if len(summary.per_task) <= 30:
        console.print(_task_table(summary.per_task, interrupted=summary.interrupted))
    console.print(f"run files: {summary.run_dir}", style="dim", highlight=False)


def _task_table(per_task: list[dict[str, Any]], interrupted: bool = False) -> Table:
    """One row per task, short headers, and no column that has nothing to say in this run, so the
    table stays readable in an 80-column terminal (the JSON summary has every field)."""
    capacity_names = {"SPOT": "Spot", "ON_DEMAND": "On-Dem."}

    def state(row: dict[str, Any]) -> Text:
        return Text(_shown_state(row["state"], interrupted), style=STATE_STYLES.get(row["state"], ""))

    def memory(row: dict[str, Any]) -> str:  # the first and the last, when retries asked for more
        values = [str(m) for m in row.get("memory_mib") or []]
        return "-" if not values else values[0] if values[0] == values[-1] else f"{values[0]}>{values[-1]}"

    columns: list[tuple[str, Any]] = [
        ("task", lambda r: r["task_id"]),
        ("state", state),
        ("tries", lambda r: str(r["attempts"])),
        ("reclaims", lambda r: str(r["interruptions"])),
        ("on", lambda r: capacity_names.get(str(r["capacity"]), str(r["capacity"] or "-"))),
        ("MiB", memory),
        ("run s", lambda r: f"{r['runtime_seconds']:.1f}"),
        ("lost s", lambda r: seconds_list(r.get("lost_work_seconds") or [])),
        ("restore s", lambda r: seconds_list(r.get("restore_seconds") or [])),
        ("outputs", _outputs_cell),
        ("cost $", lambda r: f"{r.get('cost_usd', 0.0):.2f}"),
    ]
    # Left out when empty; the wide ones also in a narrow terminal (the rows above sum them up).
    optional = {"reclaims", "lost s", "restore s", "outputs"}
    wide = {"lost s", "restore s", "outputs"}
    shown = [
        (name, cell)
        for name, cell in columns
        if (name not in optional or any(cell(row) not in ("-", "0") for row in per_task))
        and (name not in wide or console.width >= 110)
    ]
    table = Table(header_style="bold", box=None, pad_edge=False)
    for name, _ in shown:
        table.add_column(name, no_wrap=name in ("task", "state"))
    for row in per_task:
        table.add_row(*(cell(row) for _, cell in shown))
    return table


def _outputs_cell(row: dict[str, Any]) -> str:
    return f"{row['output_files']}: {filesize.decimal(row['output_bytes'])}" if row.get("output_files") else "-"


def _lost_work_text(per_task: list[dict[str, Any]]) -> str:
    lost = [s for row in per_task for s in row.get("lost_work_seconds") or []]
    restores = [s for row in per_task for s in row.get("restore_seconds") or []]
    if not lost and not restores:
        return "-"
    text = f"max {max(lost):.2f} s, total {sum(lost):.2f} s real" if lost else "none"
    return text + (f"; restore max {max(restores):.2f} s" if restores else "")


def _saving_text(savings_usd: float, percent: float) -> str:
    if abs(savings_usd) < 0.005:
        return "no difference"
    if savings_usd > 0:
        return f"saved ${savings_usd:.2f} ({percent} %)"
    # Work done again (reclaims, failures) or fallbacks can make Spot dearer: say so plainly rather than
    # print "saved $-x"; the "planned saving" row says what drove it.
    return f"Spot cost ${-savings_usd:.2f} more"


def _shown_state(state: str, interrupted: bool) -> str:
    """After Ctrl-C a task the state table still records as RUNNING had its job stopped."""
    return "STOPPED" if interrupted and state == TaskState.RUNNING else str(state)


def _critical_path_text(cp: dict[str, Any], per_task: list[dict[str, Any]], interrupted: bool = False) -> str:
    """The planned critical path with its planned time and the time measured on that same path; a path
    with a task that did not succeed has no measured time (its successful attempts do not add up to it)."""
    path = f"{' -> '.join(cp['tasks'][:6])}{' ...' if len(cp['tasks']) > 6 else ''}"
    states = {row["task_id"]: row["state"] for row in per_task}
    unfinished = [t for t in cp["tasks"] if states.get(t) != TaskState.SUCCEEDED]
    if unfinished:
        shown = ", ".join(f"{t} {_shown_state(states.get(t, TaskState.PENDING), interrupted)}" for t in unfinished[:3])
        more = f" and {len(unfinished) - 3} more" if len(unfinished) > 3 else ""
        return f"{path}: planned {_hours(cp['estimated_seconds'])}, not measured ({shown}{more})"
    return (
        f"{path}: planned {_hours(cp['estimated_seconds'])}, measured {_hours(cp['measured_scaled_seconds'])} "
        f"({cp['measured_seconds']:.2f} s real)"
    )


def _hours(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"
