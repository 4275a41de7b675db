"""The second Ctrl-C quits at once even when the main thread cannot run the Python signal handler: it waits
without a timeout and the kernel delivered the signal to another thread (stepspot.cli.local._interruptible
watches the signal wakeup fd from a thread of its own)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

BLOCKED_MAIN = """
import signal, threading, time
from stepspot.cli.local import _interruptible

class Engine:
    def interrupt(self): print("interrupt", flush=True)
    def kill_jobs_now(self): print("killed jobs", flush=True)

with _interruptible(Engine()):
    threading.Thread(target=lambda: time.sleep(3600), daemon=True).start()  # SIGINT can be delivered here
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # ... and never to the main thread
    print("ready", flush=True)
    threading.Event().wait()  # no timeout: the Python handler would never run
"""


def test_a_second_ctrl_c_quits_while_the_main_thread_waits_without_a_timeout(tmp_path: Path) -> None:
    script = tmp_path / "blocked_main.py"
    script.write_text(BLOCKED_MAIN)
    child = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGINT)
        time.sleep(0.3)  # two presses, not one merged signal
        child.send_signal(signal.SIGINT)
        code = child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    out, err = child.communicate()
    assert code == 130
    assert "killed jobs" in out
    assert "stepspot: interrupted" in err
