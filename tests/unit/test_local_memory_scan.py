"""The memory watcher's scan of /proc (local Batch's cgroup memory limit): every process of a job's session
counts, no other; processes older than every job are not read, until the kernel's pids wrap around."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stepspot.local import batch
from stepspot.local.batch import _PidOrder, _rss_by_session

PAGE = os.sysconf("SC_PAGE_SIZE")


def _fake_proc(root: Path, processes: dict[int, tuple[int, int]], last_pid: int | None) -> None:
    """/proc with ``pid -> (session, resident pages)`` and the kernel's last allocated pid."""
    for pid, (session, pages) in processes.items():
        (root / str(pid)).mkdir()
        # after "pid (comm) ": state ppid pgrp session ... and the resident pages 18 fields later
        fields = ["S", "1", str(pid), str(session), *["0"] * 17, str(pages)]
        (root / str(pid) / "stat").write_text(f"{pid} (a (tricky) name) " + " ".join(fields))
    (root / "self").mkdir()
    if last_pid is not None:
        (root / "sys" / "kernel").mkdir(parents=True)
        (root / "sys" / "kernel" / "ns_last_pid").write_text(f"{last_pid}\n")


@pytest.fixture
def proc(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(batch, "_PROC", tmp_path)
    return tmp_path


def test_a_scan_counts_every_process_of_each_job_session_and_no_other(proc):
    _fake_proc(proc, {100: (100, 10), 150: (100, 5), 160: (160, 7), 170: (999, 100)}, last_pid=170)

    assert _rss_by_session({100, 160}) == {100: 15 * PAGE, 160: 7 * PAGE}


def test_processes_older_than_every_job_are_not_read(proc):
    # pid 50 claims session 100: impossible unless pids wrapped, so a scan from pid 100 on does not see it
    _fake_proc(proc, {50: (100, 1000), 100: (100, 10), 150: (100, 5)}, last_pid=150)
    order = _PidOrder()

    oldest = order.oldest_possible({100, 150})
    assert oldest == 100
    assert _rss_by_session({100}, oldest) == {100: 15 * PAGE}


def test_once_pids_wrap_around_every_process_is_read_for_the_rest_of_the_run(proc):
    _fake_proc(proc, {50: (100, 1000), 100: (100, 10)}, last_pid=4_000_000)
    order = _PidOrder()
    assert order.oldest_possible({100}) == 100

    (proc / "sys" / "kernel" / "ns_last_pid").write_text("60\n")  # the kernel started again from low pids
    assert order.oldest_possible({100}) == 0
    assert _rss_by_session({100}, 0) == {100: 1010 * PAGE}
    (proc / "sys" / "kernel" / "ns_last_pid").write_text("5000\n")
    assert order.oldest_possible({100}) == 0  # a wrap is remembered: low pids stay possible


def test_without_the_kernel_s_last_pid_every_process_is_read(proc):
    _fake_proc(proc, {50: (100, 1000), 100: (100, 10)}, last_pid=None)

    assert _PidOrder().oldest_possible({100}) == 0
