"""Interruption notices and the agent's one explicit state.

Notices come from two places that must not touch the supervisor's data directly: a signal handler
(SIGTERM/SIGINT, on the main thread between any two bytecodes) and the IMDS polling thread. Both only
*post* an event (``queue.SimpleQueue.put`` is safe to call from a signal handler) and wake the
supervisor; the supervisor applies the events to ``Lifecycle`` in its loop, where every transition is
checked against ``_ALLOWED`` under a lock. So the state is one value with one writer at a time, and a
transition that makes no sense (a notice after the program stopped) is ignored rather than half-applied.

    RUNNING --notice/SIGTERM--> NOTICE_RECEIVED --checkpoint written--> NOTICE_HANDLED
    NOTICE_RECEIVED/NOTICE_HANDLED --SIGTERM (stop wanted)--> STOPPING
    any running state --program exited after a Spot notice--> RECLAIMED (waiting for the host to go)
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

IMDS_TOKEN_TTL_SECONDS = 21600

log = logging.getLogger("stepspot.agent")


class AgentState(enum.Enum):
    RUNNING = "running"
    NOTICE_RECEIVED = "notice received"  # a checkpoint must be taken now
    NOTICE_HANDLED = "notice handled"  # the notice's checkpoint is written; the program may keep going
    STOPPING = "stopping"  # SIGTERM: the program is being stopped
    RECLAIMED = "reclaimed"  # the program ended after a Spot notice: waiting for the host to go


_ALLOWED: dict[AgentState, frozenset[AgentState]] = {
    AgentState.RUNNING: frozenset({AgentState.NOTICE_RECEIVED, AgentState.RECLAIMED}),
    AgentState.NOTICE_RECEIVED: frozenset({AgentState.NOTICE_HANDLED, AgentState.STOPPING, AgentState.RECLAIMED}),
    AgentState.NOTICE_HANDLED: frozenset({AgentState.STOPPING, AgentState.RECLAIMED}),
    AgentState.STOPPING: frozenset({AgentState.RECLAIMED}),
    AgentState.RECLAIMED: frozenset(),
}


@dataclass(frozen=True)
class Notice:
    reason: str
    stop: bool = False  # SIGTERM/SIGINT: the program must stop after the checkpoint
    spot_document: str | None = None  # an IMDS spot/instance-action document
    request: bool = False  # SIGUSR1: the program asks for a checkpoint now (no state change)


class Lifecycle:
    """The agent's state (``AgentState``) plus what the notices told it, guarded by one lock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._pending: queue.SimpleQueue[Notice] = queue.SimpleQueue()
        self._clock = clock
        self.wake = threading.Event()
        self._state = AgentState.RUNNING
        self.notice_reason: str | None = None
        self.stop_requested = False
        self.spot_notice_at: float | None = None  # clock time the IMDS notice was seen
        self.spot_action = "terminate"
        self.checkpoint_requested = False  # the program asked for a checkpoint; not answered yet
        self.program_decides = False  # it has asked at least once: no periodic checkpoints any more

    # -- producers: signal handler and IMDS thread (never take the lock) --

    def post(self, notice: Notice) -> None:
        """From a thread (the IMDS watcher)."""
        self._pending.put(notice)
        self.wake.set()

    def post_from_handler(self, notice: Notice) -> None:
        """From a signal handler. It runs on the main thread, maybe while that thread holds the event's
        internal lock inside ``wake.wait()``: setting the event here could deadlock, so a helper thread
        sets it once the lock is free."""
        self._pending.put(notice)
        threading.Thread(target=self.wake.set, name="wake", daemon=True).start()

    # -- the supervisor --

    @property
    def state(self) -> AgentState:
        with self._lock:
            return self._state

    def _move(self, target: AgentState) -> bool:
        if target is self._state:
            return True
        if target not in _ALLOWED[self._state]:
            return False
        log.debug("state %s -> %s", self._state.value, target.value)
        self._state = target
        return True

    def apply_pending(self) -> AgentState:
        """Fold the posted notices into the state; return it."""
        with self._lock:
            while True:
                try:
                    notice = self._pending.get_nowait()
                except queue.Empty:
                    return self._state
                if notice.request:
                    self.checkpoint_requested = self.program_decides = True
                    continue
                if notice.spot_document is not None:
                    with contextlib.suppress(ValueError, AttributeError):
                        self.spot_action = str(json.loads(notice.spot_document).get("action") or self.spot_action)
                    if self.spot_notice_at is None:
                        self.spot_notice_at = self._clock()
                if notice.stop:
                    self.stop_requested = True
                if self._state is AgentState.RUNNING:
                    self.notice_reason = notice.reason
                    self._move(AgentState.NOTICE_RECEIVED)
                elif self._state is AgentState.NOTICE_HANDLED and self.stop_requested:
                    self._move(AgentState.STOPPING)

    def request_answered(self) -> None:
        with self._lock:
            self.checkpoint_requested = False

    def notice_handled(self) -> AgentState:
        with self._lock:
            self._move(AgentState.STOPPING if self.stop_requested else AgentState.NOTICE_HANDLED)
            return self._state

    def program_ended_after_notice(self) -> None:
        with self._lock:
            self._move(AgentState.RECLAIMED)


class ImdsNoticeWatcher(threading.Thread):
    """Polls ``latest/meta-data/spot/instance-action`` with an IMDSv2 token; calls ``on_notice`` once."""

    def __init__(self, endpoint: str, poll_seconds: float, on_notice: Callable[[str], None]) -> None:
        super().__init__(name="imds-notice-watcher", daemon=True)
        self._endpoint = endpoint
        self._poll = poll_seconds
        self._on_notice = on_notice
        self._stop_event = threading.Event()
        self._token: str | None = None
        self._token_expires = 0.0
        self._warned = False

    def stop(self) -> None:
        self._stop_event.set()

    def _fetch_token(self) -> str:
        request = urllib.request.Request(
            f"{self._endpoint}/latest/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": str(IMDS_TOKEN_TTL_SECONDS)},
        )
        with urllib.request.urlopen(request, timeout=1.0) as response:
            token = str(response.read().decode().strip())
        self._token, self._token_expires = token, time.monotonic() + IMDS_TOKEN_TTL_SECONDS - 60
        return token

    def check_once(self) -> str | None:
        """The instance-action document when a notice is posted, None otherwise."""
        token = self._token if self._token and time.monotonic() < self._token_expires else self._fetch_token()
        request = urllib.request.Request(
            f"{self._endpoint}/latest/meta-data/spot/instance-action",
            headers={"X-aws-ec2-metadata-token": token},
        )
        try:
            with urllib.request.urlopen(request, timeout=1.0) as response:
                return str(response.read().decode())
        except urllib.error.HTTPError as exc:
            if exc.code == 401:  # token expired or revoked: fetch a new one next time
                self._token = None
            if exc.code in (401, 404):
                return None
            raise

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                document = self.check_once()
            except (OSError, urllib.error.URLError) as exc:
                if not self._warned:
                    log.info(
                        "IMDS at %s is not reachable (%s); SIGTERM still triggers a checkpoint", self._endpoint, exc
                    )
                    self._warned = True
                document = None
            if document:
                self._on_notice(document.strip())
                return
            self._stop_event.wait(self._poll)
