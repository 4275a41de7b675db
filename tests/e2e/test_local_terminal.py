"""`stepspot local` as a person runs it: in a terminal (a pseudo-terminal), with Ctrl-C, twice with the
same seed, and with a task that fails. Each test runs the real CLI in a child process."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_helpers import MD_EXAMPLE, ROOT, sleep_task

pytestmark = pytest.mark.slow

STEPSPOT = str(Path(sys.executable).parent / "stepspot")
MD_PROGRAM = Path(__file__).resolve().parents[2] / "examples" / "molecular-dynamics" / "md.py"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"


def _spawn(argv: list[str], cwd: Path) -> tuple[int, int]:
    pid, fd = pty.fork()
    if pid == 0:  # the child: a session leader with the pty as its terminal
        os.chdir(cwd)
        os.environ.pop("NO_COLOR", None)
        for name in [n for n in os.environ if n.startswith("MAKE") or n == "MFLAGS"]:
            del os.environ[name]  # a `make` started here is not a sub-make of `make test`
        os.environ["COLUMNS"] = "160"
        os.execv(argv[0], argv)
    return pid, fd


@pytest.fixture(autouse=True)
def _no_child_left(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A CLI that hangs (the defect these tests guard against) is killed when its test ends."""
    children: list[int] = []
    real_spawn = _spawn

    def spawn(argv: list[str], cwd: Path) -> tuple[int, int]:
        pid, fd = real_spawn(argv, cwd)
        children.append(pid)
        return pid, fd

    monkeypatch.setitem(globals(), "_spawn", spawn)
    yield
    for pid in children:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _read_until_exit(
    pid: int, fd: int, timeout: float, stop_when: str | None = None, raw: bool = False
) -> tuple[str, int | None]:
    """Read the terminal until the child exits (or ``timeout``); returns the text (without its escape
    sequences unless ``raw``) and the exit code."""
    chunks: list[bytes] = []

    def text() -> str:
        decoded = b"".join(chunks).decode(errors="replace")
        return decoded if raw else ANSI.sub("", decoded)

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                data = b""
            if data:
                chunks.append(data)
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return text(), os.waitstatus_to_exitcode(status)
        if stop_when and stop_when in ANSI.sub("", b"".join(chunks).decode(errors="replace")):
            return text(), None
    return text(), None


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_a_run_in_a_terminal_finishes_with_live_progress_and_the_table(write_workflow, tmp_path):
    path = write_workflow([sleep_task("a", 1.0), sleep_task("b", 0.5, depends_on=["a"])], "tty")
    pid, fd = _spawn([STEPSPOT, "local", str(path), "--workdir", str(tmp_path / "w")], tmp_path)
    text, code = _read_until_exit(pid, fd, timeout=90)
    assert code == 0, "no exit within 90 s; the terminal showed:\n" + text[-3000:]
    assert "running task" in text  # the live display was drawn
    assert "a: attempt 1 started on Spot" in text  # an event line printed above it
    assert "SUCCEEDED  workflow tty-" in text and "state transitions" in text  # the final table


def test_ctrl_c_stops_a_run_with_130_and_leaves_no_process(write_workflow, tmp_path):
    marker = f"stepspot-ctrl-c-{os.getpid()}"
    task = sleep_task("long")
    task["command"] = [sys.executable, "-c", f"import time; time.sleep(120)  # {marker}"]
    path = write_workflow([task], "sigint")
    summary = tmp_path / "summary.json"
    argv = [STEPSPOT, "local", str(path), "--workdir", str(tmp_path / "w"), "--summary-json", str(summary)]
    pid, fd = _spawn(argv, tmp_path)
    text, code = _read_until_exit(pid, fd, timeout=60, stop_when="long: attempt 1 started")
    assert code is None, text
    deadline = time.monotonic() + 30
    while not _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_with(marker), "the task's process never started"
    os.kill(pid, signal.SIGINT)
    started = time.monotonic()
    rest, code = _read_until_exit(pid, fd, timeout=10)
    assert code == 130, text + rest
    assert time.monotonic() - started < 10
    assert "INTERRUPTED" in rest
    assert json.loads(summary.read_text())["status"] == "INTERRUPTED"
    time.sleep(0.5)
    assert _processes_with(marker) == []


def test_a_run_whose_reader_goes_away_stops_with_141_and_leaves_no_process(write_workflow, tmp_path):
    # `stepspot local FILE | head`: lines are read until a long task has started, then the pipe closes.
    # rich's answer to the closed pipe (SystemExit in the thread that printed, a state machine's) hung the
    # run for ever.
    marker = f"stepspot-closed-pipe-{os.getpid()}"
    tasks = [sleep_task("first", 0.1)]
    for index in range(8):
        task = sleep_task(f"then{index}", depends_on=["first"])
        task["command"] = [sys.executable, "-c", f"import time; time.sleep(120)  # {marker}"]
        tasks.append(task)
    path = write_workflow(tasks, "closed-pipe")
    summary = tmp_path / "summary.json"
    argv = [STEPSPOT, "local", str(path), "--workdir", str(tmp_path / "w"), "--summary-json", str(summary)]
    process = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        while "then0: attempt 1 started" not in (line := process.stdout.readline()):
            assert line, "the run ended before its long tasks started"
        process.stdout.close()  # the reader goes; the next event line meets the closed pipe
        started = time.monotonic()
        code = process.wait(timeout=30)
        stderr = process.stderr.read() if process.stderr else ""
    finally:
        process.kill()
    assert code == 141, stderr
    assert time.monotonic() - started < 30
    assert "the output's reader has gone (a closed pipe): stopping the run" in stderr
    assert "Traceback" not in stderr and "Exception=" not in stderr, stderr  # nothing after the teardown
    assert json.loads(summary.read_text())["status"] == "INTERRUPTED"
    time.sleep(0.5)
    assert _processes_with(marker) == []


def _run_pipe(path: Path, workdir: Path, *flags: str) -> tuple[str, dict]:
    out = workdir / "summary.json"
    argv = [STEPSPOT, "local", str(path), "--workdir", str(workdir), "--summary-json", str(out), *flags]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=240, check=False)
    return done.stdout + done.stderr, json.loads(out.read_text())


def test_the_same_seed_tells_the_same_story(write_workflow, tmp_path):
    tasks = [sleep_task(t, 0.2, **({"depends_on": ["a"]} if t != "a" else {})) for t in ("a", "b", "c", "d")]
    path = write_workflow(tasks, "seeded")
    runs = [_run_pipe(path, tmp_path / f"w{i}", "--spot-interruptions", "0.5", "--seed", "4") for i in (1, 2)]
    counts = [
        (s["attempts"], s["interruptions"], s["fallbacks_to_on_demand"], s["checkpoints"]["restored"]) for _, s in runs
    ]
    assert counts[0] == counts[1]
    assert runs[0][1]["interruptions"] > 0  # the seed does inject reclaims
    stories = [sorted(s["story"]) for _, s in runs]
    assert stories[0] == stories[1]
    for task in "abcd":  # each task's own lines come in the same order
        assert [x for x in runs[0][1]["story"] if x.startswith(f"{task}:")] == [
            x for x in runs[1][1]["story"] if x.startswith(f"{task}:")
        ]


def test_the_same_seed_saves_and_restores_the_same_checkpoints(tmp_path):
    # A program that asks the agent for its checkpoints (md.py --save-every): which states are saved,
    # when the notice comes and what is restored depend on the seed and the steps, not on the clock.
    shutil.copy(MD_PROGRAM, tmp_path / "md.py")
    produce = ["python", "md.py", "produce", "--input", "prep/system.json", "--output", "out/t.json"]
    document = {
        "name": "seeded-checkpoints",
        "global_config": {"checkpoint_interval": 3600},
        "tasks": [
            {
                "id": "prep",
                "container_image": "x",
                "spot_enabled": False,
                "estimated_runtime": 600,
                "command": ["python", "md.py", "preprocess", "--particles", "27", "--output", "prep/system.json"],
                "outputs": ["prep/system.json"],
            },
            {
                "id": "produce",
                "container_image": "x",
                "depends_on": ["prep"],
                "checkpoint_enabled": True,
                "inputs": [{"from": "prep", "path": "prep/system.json"}],
                "estimated_runtime": 21600,
                "command": [*produce, "--steps", "240", "--save-every", "40"],
            },
        ],
    }
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(document))
    flags = ("--reclaim-task", "produce", "--seed", "3", "--time-scale", "7200")
    runs = [_run_pipe(path, tmp_path / f"w{i}", *flags) for i in (1, 2)]
    for _, summary in runs:
        assert summary["status"] == "SUCCEEDED", summary["cause"]
    first, second = (summary for _, summary in runs)
    assert (first["attempts"], first["interruptions"], first["fallbacks_to_on_demand"]) == (4, 2, 1)
    assert first["checkpoints"] == second["checkpoints"] and first["checkpoints"]["restored"] == 2
    assert first["story"] == second["story"]  # one task at a time: the whole story in the same order
    story = "\n".join(first["story"])
    assert "prep: attempt 1 started on On-Demand: the task does not allow Spot" in story
    assert "produce: attempt 1 started on Spot: breaker closed" in story
    assert "produce: Spot interruption notice (attempt 1): 2 minutes to checkpoint" in story
    assert re.search(r"^produce: reclaimed after \d+ s on Spot \(attempt 2\)$", story, re.M)
    assert re.search(r"^produce: moved to On-Demand: spot_reclaim: .*\(moved to On-Demand\)", story, re.M)
    assert "produce: attempt 3 started on On-Demand: moved to On-Demand after Spot failures" in story
    assert "produce: resumed from checkpoint" in story and "produce: checkpoint 1 saved" in story


def test_a_failed_task_shows_its_log_tail(write_workflow, tmp_path):
    bad = {
        "id": "prepare",
        "container_image": "x",
        "command": [sys.executable, "-c", "import sys; print('reading input'); sys.exit(\"can't open file 'x.py'\")"],
        "retry_attempts": 1,
    }
    text, summary = _run_pipe(write_workflow([bad], "fails"), tmp_path / "w")
    assert summary["status"] == "FAILED"
    assert re.search(r"^prepare: backing off \d+ s before attempt 2$", text, re.M)
    assert "prepare: failed for good: app_error: exit code 1; budget of 1 retry used up" in text
    assert "prepare:   | can't open file 'x.py'" in text  # the tail in the event lines
    assert "task prepare failed (attempt 2)" in text  # and in the final summary, with its log
    assert "/tasks/prepare/attempt-2/output.log:\n    reading input\n    can't open file 'x.py'" in text
    (failure,) = summary["failures"]
    assert failure["task_id"] == "prepare" and failure["log_tail"] == ["reading input", "can't open file 'x.py'"]
    assert "/tasks/prepare/attempt-2/output.log" in failure["log"]


def test_a_second_ctrl_c_quits_at_once_and_still_leaves_no_process(write_workflow, tmp_path):
    marker = f"stepspot-twice-{os.getpid()}"
    task = sleep_task("long")
    task["command"] = [sys.executable, "-c", f"import time; time.sleep(120)  # {marker}"]
    path = write_workflow([task], "twice")
    pid, fd = _spawn([STEPSPOT, "local", str(path), "--workdir", str(tmp_path / "w")], tmp_path)
    text, code = _read_until_exit(pid, fd, timeout=60, stop_when="long: attempt 1 started", raw=True)
    assert code is None, text
    deadline = time.monotonic() + 30
    while not _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    os.kill(pid, signal.SIGINT)
    # The second press once the first was taken (two signals sent back to back can arrive as one).
    first, code = _read_until_exit(pid, fd, timeout=10, stop_when="stopping the run", raw=True)
    assert code is None, text + first
    os.kill(pid, signal.SIGINT)
    started = time.monotonic()
    rest, code = _read_until_exit(pid, fd, timeout=10, raw=True)
    rest = first + rest
    assert code == 130, text + rest
    assert time.monotonic() - started < 3
    time.sleep(0.5)
    assert _processes_with(marker) == []
    # The live display hid the cursor; quitting at once must not leave the user's terminal without one.
    shown = text + rest
    assert HIDE_CURSOR in shown and shown.rfind(SHOW_CURSOR) > shown.rfind(HIDE_CURSOR), repr(shown[-300:])
    assert "\nstepspot: interrupted" in ANSI.sub("", shown)  # on its own line, not after the live table


DEMO_TASKS = {task["id"] for task in json.loads(MD_EXAMPLE.read_text())["tasks"]}


def _event_lines(text: str) -> list[str]:
    """The story's lines (``task: event``) as the terminal or the pipe showed them (the live table is
    redrawn between them)."""
    lines = (line.strip() for line in text.replace("\r", "\n").splitlines())
    return [line for line in lines if line.split(": ", 1)[0] in DEMO_TASKS and ": " in line]


def _per_task(lines: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in lines:
        found.setdefault(line.split(":", 1)[0], []).append(line)
    return found


@pytest.mark.longest
def test_make_demo_in_a_terminal_tells_the_story_a_pipe_shows_for_the_same_seed(tmp_path):
    """`make demo` as a new user runs it, then again into a pipe: both finish, the terminal shows the live
    table and the final table, and the same seed gives the same event lines and counts."""
    make = shutil.which("make")
    assert make, "make is not installed"

    def demo(name: str) -> list[str]:
        output = f"DEMO_OUTPUT=--workdir {tmp_path / name} --summary-json {tmp_path / name}.json"
        return [make, "-s", "--no-print-directory", "demo", output]

    pid, fd = _spawn(demo("tty"), ROOT)
    text, code = _read_until_exit(pid, fd, timeout=300)
    assert code == 0, "no exit within 300 s; the terminal showed:\n" + text[-3000:]
    assert "running task" in text and "starting the local AWS emulator" in text  # the live display
    assert "SUCCEEDED  workflow molecular-dynamics-simulation-" in text and "planned saving" in text
    tty_summary = json.loads((tmp_path / "tty.json").read_text())
    story = tty_summary["story"]
    assert _event_lines(text) == story  # every event line, in the terminal, in the order it happened

    # The story the Makefile promises for its seed: a reclaim, a resume from a checkpoint, a multi-node
    # task On-Demand and why; and a critical path with its own measured time, a planned-vs-measured saving.
    joined = "\n".join(story)
    assert "production-replica: attempt 1 started on On-Demand: multi-node parallel jobs cannot run on Spot" in joined
    assert re.search(r"^([a-z-]+): reclaimed after \d+ s on Spot \(attempt 1\)$", joined, re.M)
    assert re.search(r": resumed from checkpoint [1-9]", joined)
    assert re.search(r"critical path +data-preprocessing -> .*: planned [\d.]+ h, measured [\d.]+ h", text)
    assert tty_summary["estimated_cost"]["explanation"] in " ".join(text.split())

    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE") and k != "MFLAGS"}
    piped = subprocess.run(demo("pipe"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert piped.returncode == 0, piped.stdout[-3000:] + piped.stderr[-3000:]
    assert "running task" not in piped.stdout  # no live display in a pipe, the same event lines
    pipe_summary = json.loads((tmp_path / "pipe.json").read_text())

    def counts(s: dict) -> tuple:
        return s["attempts"], s["interruptions"], s["fallbacks_to_on_demand"], s["checkpoints"]

    assert counts(pipe_summary) == counts(tty_summary)
    # Tasks that run at the same time interleave as they happen; each task's own lines are the same.
    assert _per_task(_event_lines(piped.stdout)) == _per_task(story)
    assert sorted(pipe_summary["story"]) == sorted(story)
