"""The supervisor: stage inputs, restore, run the program, checkpoint on schedule and on notice, publish.

One loop on the main thread owns the child process and the ``Lifecycle`` state; notices reach it as
posted events (see ``notices.py``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
from collections.abc import Sequence
from types import FrameType

from stepspot.agent.checkpoints import Checkpointer
from stepspot.agent.health import RunReporter, read_placement
from stepspot.agent.notices import AgentState, ImdsNoticeWatcher, Lifecycle, Notice
from stepspot.agent.settings import (
    EXIT_COMMAND_NOT_FOUND,
    EXIT_NOT_EXECUTABLE,
    EXIT_SPOT_NOTICE,
    AgentExit,
    AgentSettings,
)
from stepspot.agent.staging import Stager
from stepspot.checkpointing.store import CheckpointStore, SaveResult
from stepspot.run_health import checkpoint_empty_due

SPOT_NOTICE_SECONDS = 120.0
IDLE_WAKE_SECONDS = 0.5

log = logging.getLogger("stepspot.agent")


def _die_with_parent() -> None:
    """In the child before exec (Linux): get SIGKILL if the agent dies, so no program outlives it."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def _exit_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


class Agent:
    """Runs one program with its inputs staged in, its checkpoints kept and its outputs published."""

    def __init__(self, settings: AgentSettings, store: CheckpointStore | None, stager: Stager | None = None) -> None:
        self.settings = settings
        self.checkpoints = Checkpointer(settings, store) if store is not None else None
        self.reporter: RunReporter | None = None
        self.program_exited_at: float | None = None
        self.stager = stager
        self.lifecycle = Lifecycle()
        self._child: subprocess.Popen[bytes] | None = None

    # -- checkpoints (delegated; None when checkpointing is off) --

    def checkpoint(self, why: str) -> SaveResult | None:
        if self.checkpoints is None:
            return None
        result = self.checkpoints.save(why)
        if result is not None and result.record is not None and self.reporter is not None:
            self.reporter.update(last_saved_epoch=self.checkpoints.last_saved_epoch)
        return result

    def _start_reporting(self, store: CheckpointStore) -> None:
        """The run record and the observed MTBI (checkpointed tasks only; best effort)."""
        assert self.checkpoints is not None
        placement = read_placement(self.settings.imds_endpoint)
        self.reporter = RunReporter(self.settings, store.table, self.settings.job_id, placement)
        if self.settings.interval is None:
            c = self.checkpoints
            c.mtbi, c.mtbi_source = self.reporter.mtbi()
            log.info("mean time between interruptions for 'auto': %.0f s (%s)", c.mtbi, c.mtbi_source)

    def _check_empty(self, program_started: float, interval: float) -> None:
        """Flag a checkpointed task whose directory is still empty after two intervals (once)."""
        c, reporter = self.checkpoints, self.reporter
        if c is None or reporter is None or reporter.empty_flagged or c.has_content:
            return
        now = time.time()
        if not checkpoint_empty_due(program_started, now, interval, saved_anything=False):
            return
        try:
            empty = not c.scanner.fingerprint()
        except OSError:
            return
        if empty:
            reporter.flag_empty(now - program_started)

    def next_interval(self) -> float:
        return self.checkpoints.next_interval() if self.checkpoints else float("inf")

    # -- notices: the signal handler and the IMDS thread only post --

    def notify_spot(self, document: str) -> None:
        """An IMDS ``spot/instance-action`` document: the host goes in ~2 minutes (or stops/hibernates)."""
        self.lifecycle.post(Notice(f"spot interruption notice {document}", spot_document=document))

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.lifecycle.post_from_handler(Notice(f"received {signal.Signals(signum).name}", stop=True))

    def _on_request(self, _signum: int, _frame: FrameType | None) -> None:
        self.lifecycle.post_from_handler(Notice("checkpoint requested by the program", request=True))

    def _answer_request(self, watcher: ImdsNoticeWatcher | None) -> AgentState:
        """A program that knows its save points asked (SIGUSR1): checkpoint, then answer with SIGUSR2 —
        unless a Spot notice is there (looked for now, so it cannot race the next request): then the
        notice is handled next and its signal answers the program, which waits for either."""
        self.lifecycle.request_answered()
        self.checkpoint("requested by the program")
        if watcher is not None and self.lifecycle.notice_reason is None:
            with contextlib.suppress(OSError, urllib.error.URLError):
                document = watcher.check_once()
                if document:
                    self.notify_spot(document.strip())
        state = self.lifecycle.apply_pending()
        if state is AgentState.RUNNING:
            self._signal_child(signal.SIGUSR2)
        return state

    def _periodic_due(self) -> bool:
        """The timer's checkpoint, unless the program decides its save points or has written nothing yet."""
        if self.checkpoints is None or self.lifecycle.program_decides:
            return False
        return self.checkpoints.manifest is not None or bool(self.checkpoints.scanner.scan())

    # -- the child --

    def _reap(self, child: subprocess.Popen[bytes]) -> None:
        child.wait()
        self.program_exited_at = time.time()  # the end of the compute, measured here: the loop may be busy
        self.lifecycle.wake.set()

    def _signal_child(self, signum: int) -> None:
        child = self._child
        if child is None or child.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signum)

    def _wait_for_write(self, deadline: float) -> str:
        """After the notice signal: wait until the program exits, its writes settle, or the deadline."""
        assert self._child is not None and self.checkpoints is not None
        scanner = self.checkpoints.scanner
        last, changed_at = scanner.fingerprint(), None
        while time.monotonic() < deadline:
            if self._child.poll() is not None:
                return "program exited"
            time.sleep(0.05)
            try:
                current = scanner.fingerprint()
            except OSError:
                continue
            if current != last:
                last, changed_at = current, time.monotonic()
            elif changed_at is not None and time.monotonic() - changed_at >= self.settings.settle:
                return "program finished writing"
        return "grace period over"

    def handle_notice(self) -> AgentState:
        reason = self.lifecycle.notice_reason or "notice"
        if self.checkpoints is not None:
            started = time.monotonic()
            log.warning("%s: asking the program to checkpoint with %s", reason, self.settings.notice_signal.name)
            self._signal_child(self.settings.notice_signal)
            outcome = self._wait_for_write(started + self.settings.notice_grace)
            self.checkpoint(f"{reason}; {outcome}")
            elapsed = time.monotonic() - started
            log.warning("notice handled in %.2f s (Spot gives %d s)", elapsed, SPOT_NOTICE_SECONDS)
        else:
            log.warning("%s (no checkpoints for this task)", reason)
        return self.lifecycle.notice_handled()

    def _stop_child(self) -> None:
        """After a SIGTERM: give the program ``stop_timeout`` to exit, then end it."""
        assert self._child is not None
        deadline = time.monotonic() + self.settings.stop_timeout
        if self.checkpoints is None or self.settings.notice_signal != signal.SIGTERM:
            self._signal_child(signal.SIGTERM)
        while self._child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._child.poll() is None:
            log.warning("program did not exit %.0f s after SIGTERM: killing it", self.settings.stop_timeout)
            self._signal_child(signal.SIGKILL)

    def _await_reclaim(self, code: int, exited_at: float) -> int:
        """After an IMDS notice and a failed program: outlive the program until the host goes.

        Exiting now would end the container before the instance, and Batch would report an ordinary
        non-zero exit (an application error, spending the task's retries on Spot). Waiting lets Batch
        report ``Host EC2 (instance i-...) terminated.``; if the host is still here after the wait, or
        ECS drains it with SIGTERM, EXIT_SPOT_NOTICE tells the classifier the same thing.
        """
        life = self.lifecycle
        assert life.spot_notice_at is not None
        deadline = life.spot_notice_at + self.settings.reclaim_wait
        life.apply_pending()
        if exited_at >= deadline and not life.stop_requested:
            # The host outlived the notice and the program kept running: this exit is its own.
            return code
        life.program_ended_after_notice()
        if not life.stop_requested:
            log.warning(
                "program exited with %d after the Spot interruption notice; waiting up to %.0f s for the host "
                "to be reclaimed so Batch reports the interruption",
                code,
                max(0.0, deadline - time.monotonic()),
            )
        while not life.stop_requested and time.monotonic() < deadline:
            life.wake.wait(timeout=max(0.0, deadline - time.monotonic()))
            life.wake.clear()
            life.apply_pending()
        if life.stop_requested:
            why = "SIGTERM after the Spot interruption notice (the instance is being drained or shut down)"
        else:
            why = f"host not reclaimed {self.settings.reclaim_wait:.0f} s after the {life.spot_action} notice"
        log.warning("%s: exiting with %d (stopped on a Spot interruption notice)", why, EXIT_SPOT_NOTICE)
        return EXIT_SPOT_NOTICE

    def _start(self, command: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        cwd = self.settings.work_dir
        try:
            # Own session: the notice signal reaches the whole process group (shell wrappers included).
            return subprocess.Popen(
                list(command), env=env, cwd=cwd, start_new_session=True, preexec_fn=_die_with_parent
            )
        except FileNotFoundError:
            raise AgentExit(
                EXIT_COMMAND_NOT_FOUND,
                f"Command {command[0]!r} was not found: check the task's command and the image's PATH.",
            ) from None
        except PermissionError:
            raise AgentExit(
                EXIT_NOT_EXECUTABLE,
                f"Command {command[0]!r} is not executable: chmod +x it or run it through its interpreter.",
            ) from None

    def run(self, command: Sequence[str]) -> int:
        s = self.settings
        if self.stager is not None:
            self.stager.stage_inputs()
        restored = self.checkpoints.restore() if self.checkpoints else None
        if self.checkpoints is not None:
            self._start_reporting(self.checkpoints.store)
        env = dict(os.environ)
        if self.checkpoints:
            env["STEPSPOT_CHECKPOINT_DIR"] = str(s.directory)
            env["STEPSPOT_RESTORED_SEQUENCE"] = "" if restored is None else str(restored)
            env["STEPSPOT_AGENT_PID"] = str(os.getpid())  # SIGUSR1 here asks for a checkpoint
        if s.work_dir is not None:
            env["STEPSPOT_WORK_DIR"] = str(s.work_dir)
        life = self.lifecycle
        previous_handlers = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        previous_handlers[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, self._on_request)
        watcher = ImdsNoticeWatcher(s.imds_endpoint, s.imds_poll, self.notify_spot) if s.imds_endpoint else None
        try:
            self._child = child = self._start(command, env)
            program_started = time.time()
            if self.reporter is not None and self.checkpoints is not None:
                c = self.checkpoints
                self.reporter.program_started(program_started, c.restore_seconds, restored)
            log.info("started %s (pid %d) in %s", command[0], child.pid, s.work_dir or os.getcwd())
            if watcher:
                watcher.start()
            threading.Thread(target=self._reap, args=(child,), daemon=True).start()
            interval = self.next_interval()
            next_due = time.monotonic() + interval
            while child.poll() is None:
                state = life.apply_pending()
                if life.checkpoint_requested and state is AgentState.RUNNING:
                    state = self._answer_request(watcher)
                if state is AgentState.NOTICE_RECEIVED:
                    if self.reporter is not None and life.spot_notice_at is not None:
                        self.reporter.add_exposure(time.time(), notice=True)
                    state = self.handle_notice()
                if state is AgentState.STOPPING:
                    self._stop_child()
                    break
                if time.monotonic() >= next_due and child.poll() is None:
                    if self._periodic_due():
                        self.checkpoint("periodic")
                    if self.reporter is not None:
                        self.reporter.add_exposure(time.time())
                    self._check_empty(program_started, interval)  # right after a save: has_content is fresh
                    interval = self.next_interval()
                    next_due = time.monotonic() + interval
                life.wake.wait(timeout=max(0.0, min(IDLE_WAKE_SECONDS, next_due - time.monotonic())))
                life.wake.clear()
            code = _exit_status(child.wait())
            exited_at = time.monotonic()
            if self.reporter is not None:
                self.reporter.add_exposure(time.time(), final=True)
                # The compute ended here, not when the host went (the runner may wait for the reclaim).
                self.reporter.update(program_exited_epoch=self.program_exited_at or time.time())
            if code != 0 or s.save_on_success:
                # A retry after a crash resumes from whatever the program last wrote.
                self.checkpoint(f"program exited with {code}")
            log.info("program exited with %d", code)
            life.apply_pending()
            if code != 0 and life.spot_notice_at is not None:
                return self._await_reclaim(code, exited_at)
            if code == 0 and self.stager is not None:
                self.stager.publish_outputs()
            return code
        finally:
            if watcher:
                watcher.stop()
            for sig, handler in previous_handlers.items():
                signal.signal(sig, handler)
