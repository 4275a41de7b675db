"""Checkpoint benchmarks: upload time by directory size, incremental saves, lost work per interruption.

1. Upload: full save, incremental save after one small file changed, and restore, for 10 MB, 100 MB and
   1 GB directories, against a moto server on localhost (so it measures the agent's own cost: hashing,
   request handling, multipart; real S3 adds network bandwidth). ``--quick`` (or STEPSPOT_BENCH_QUICK=1)
   skips 1 GB.
2. Lost work: the example program runs under the real agent (subprocess) with a fake IMDS; the
   interruption comes at a random point. With a notice the agent has the program write and uploads at
   once, so a restart loses no computed steps and the cost is the restart itself; without a notice (hard
   kill) the work since the last periodic checkpoint is lost.

    python -m bench checkpoints                      (STEPSPOT_BENCH_QUICK=1 skips 1 GB; --smoke: tiny sizes)
    python -m bench.bench_checkpoints [--quick]
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import boto3

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

from checkpoint_support import EXAMPLE_PROGRAM, FakeImds, create_table  # noqa: E402

from bench import results_file, smoke  # noqa: E402
from stepspot.checkpointing.aws.objects import CheckpointObjects  # noqa: E402
from stepspot.checkpointing.aws.table import CheckpointTable  # noqa: E402
from stepspot.checkpointing.files import DirectoryScanner  # noqa: E402
from stepspot.checkpointing.model import young_daly_interval  # noqa: E402
from stepspot.checkpointing.store import CheckpointStore  # noqa: E402

MB = 1024 * 1024
# (label, number of files, size of each): a few large arrays plus the small file that changes.
SIZES = [("10 MB", 10, 1 * MB), ("100 MB", 10, 10 * MB), ("1 GB", 16, 64 * MB)]
SMOKE_SIZES = [("64 KB", 2, 32 * 1024)]
STEP_DELAY = 0.01  # seconds of "work" per simulation step in the lost-work runs
TRIALS = 3
INTERRUPT_AFTER = (3.0, 5.0)  # seconds into the run, uniformly: past the first periodic checkpoint (2 s)
SMOKE_TRIALS, SMOKE_INTERRUPT_AFTER = 1, (0.5, 0.5)
AGENT = Path(sys.executable).with_name("stepspot-agent")


def _server() -> tuple[Any, str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per request otherwise

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def _store(endpoint: str, name: str) -> tuple[CheckpointStore, str, str]:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    ddb = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=name)
    create_table(ddb, name)
    return CheckpointStore(CheckpointObjects(s3, name), CheckpointTable(ddb, name)), name, name


def bench_upload(endpoint: str, quick: bool, sizes: list[tuple[str, int, int]] = SIZES) -> list[dict[str, Any]]:
    rows = []
    for label, count, size in sizes:
        if quick and count * size > 200 * MB:
            print(f"  {label}: skipped (--quick)")
            continue
        store, _, _ = _store(endpoint, f"bench-upload-{count * size // 1024}k")
        with tempfile.TemporaryDirectory(prefix="stepspot-bench-") as scratch:
            directory = Path(scratch) / "ckpt"
            directory.mkdir()
            for index in range(count):
                (directory / f"field-{index:02d}.bin").write_bytes(os.urandom(size))
            (directory / "state.json").write_text(json.dumps({"step": 0}))
            scanner = DirectoryScanner(directory)
            started = time.perf_counter()
            full = store.save("bench", "upload", scanner.scan(), directory)
            full_seconds = time.perf_counter() - started
            (directory / "state.json").write_text(json.dumps({"step": 1}))
            started = time.perf_counter()
            incremental = store.save("bench", "upload", scanner.scan(), directory, previous=full.manifest)
            incremental_seconds = time.perf_counter() - started
            target = Path(scratch) / "restore"
            started = time.perf_counter()
            restored = store.restore("bench", "upload", target)
            restore_seconds = time.perf_counter() - started
            assert restored.found is not None and restored.found.record.sequence == 2
        total = count * size + len(json.dumps({"step": 0}))
        row = {
            "size": label,
            "bytes": total,
            "full_seconds": round(full_seconds, 2),
            "full_mb_per_s": round(total / MB / full_seconds, 1),
            "incremental_seconds": round(incremental_seconds, 3),
            "incremental_bytes_sent": incremental.uploaded_bytes,
            "incremental_files_reused": incremental.reused_files,
            "restore_seconds": round(restore_seconds, 2),
            "auto_interval_s_for_mtbi_6h": round(young_daly_interval(full_seconds, 6 * 3600), 1),
        }
        rows.append(row)
        print(
            f"  {label:>6}: full {row['full_seconds']:7.2f} s ({row['full_mb_per_s']:6.1f} MB/s) | "
            f"incremental {row['incremental_seconds']:6.3f} s, {row['incremental_bytes_sent']} bytes sent, "
            f"{row['incremental_files_reused']} files reused | restore {row['restore_seconds']:6.2f} s | "
            f"auto interval (M=6 h) {row['auto_interval_s_for_mtbi_6h']} s",
            flush=True,
        )
    return rows


class _Run:
    """One agent subprocess whose output lines are watched for the program's step numbers."""

    def __init__(self, env: dict[str, str], args: list[str]) -> None:
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [str(AGENT), "run", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[tuple[float, str]] = []
        self.child_pid: int | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append((time.monotonic(), line.rstrip()))
            match = re.search(r"\(pid (\d+)\)", line)
            if match:
                self.child_pid = int(match.group(1))

    def wait_for(self, pattern: str, timeout: float = 60) -> tuple[float, re.Match[str]]:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for stamp, line in self.lines[seen:]:
                seen += 1
                match = re.search(pattern, line)
                if match:
                    return stamp, match
            time.sleep(0.01)
        raise RuntimeError(f"{pattern!r} not seen:\n" + "\n".join(line for _, line in self.lines[-20:]))


def _program(steps: int) -> list[str]:
    # The program writes its own state rarely (every 10,000 steps): only the agent's notice handling or
    # its periodic checkpoint of what the program last wrote can save progress.
    return [
        "--",
        sys.executable,
        str(EXAMPLE_PROGRAM),
        "--steps",
        str(steps),
        "--cells",
        "50",
        "--checkpoint-every",
        "50",
        "--step-delay",
        str(STEP_DELAY),
    ]


def bench_lost_work(
    endpoint: str, trials: int = TRIALS, interrupt_after: tuple[float, float] = INTERRUPT_AFTER
) -> list[dict[str, Any]]:
    rows = []
    rng = random.Random(7)
    for trial in range(trials):
        for with_notice in (True, False):
            _, bucket, table = _store(endpoint, f"bench-lost-{trial}-{int(with_notice)}")
            imds = FakeImds()
            scratch = Path(tempfile.mkdtemp(prefix="stepspot-bench-"))
            env = dict(
                os.environ,
                AWS_ENDPOINT_URL=endpoint,
                STEPSPOT_BUCKET=bucket,
                STEPSPOT_CHECKPOINT_TABLE=table,
                STEPSPOT_WORKFLOW_ID="bench",
                STEPSPOT_TASK_ID="lost",
                STEPSPOT_CHECKPOINT_DIR=str(scratch / "one"),
                STEPSPOT_IMDS_ENDPOINT=imds.endpoint,
            )
            interval = "2"  # periodic checkpoints every 2 s (~200 steps): what a hard kill falls back to
            run = _Run(env, ["--interval", interval, "--imds-poll", "0.2", *_program(3000)])
            run.wait_for(r"starting at step 0")
            time.sleep(rng.uniform(*interrupt_after))  # interrupt somewhere in that window
            if with_notice:
                notice_at = time.monotonic()
                imds.post_notice()
                _, stopped = run.wait_for(r"stopping at step (\d+)")
                handled_at, _ = run.wait_for(r"notice handled in")
                reached = int(stopped.group(1))
                # The runner outlives the program until the host goes (supervisor._await_reclaim): ECS
                # drains the reclaimed instance with SIGTERM, which ends it at once.
                run.process.send_signal(signal.SIGTERM)
                run.process.wait(timeout=30)
                handling = handled_at - notice_at
            else:
                # Lower bound of the progress lost: the last step the program reported before the kill.
                last = [int(m) for _, line in run.lines for m in re.findall(r"step (\d+) written", line)]
                reached = max(last) if last else 0
                if run.child_pid:
                    os.killpg(run.child_pid, signal.SIGKILL)
                run.process.kill()
                run.process.wait(timeout=30)
                handling = 0.0
            imds.close()
            env["STEPSPOT_CHECKPOINT_DIR"] = str(scratch / "two")
            env["STEPSPOT_IMDS_ENDPOINT"] = "off"
            restart = _Run(env, ["--interval", "60", *_program(3000)])
            resumed_at, resumed = restart.wait_for(r"starting at step (\d+)")
            restart_cost = resumed_at - restart.started
            if restart.child_pid:
                os.killpg(restart.child_pid, signal.SIGKILL)
            restart.process.kill()
            restart.process.wait(timeout=30)
            shutil.rmtree(scratch, ignore_errors=True)
            lost_steps = max(0, reached - int(resumed.group(1)))
            row = {
                "trial": trial + 1,
                "notice": with_notice,
                "progress_reached_steps": reached,
                "resumed_at_step": int(resumed.group(1)),
                "lost_steps": lost_steps,
                "lost_seconds": round(lost_steps * STEP_DELAY, 2),
                "restart_cost_seconds": round(restart_cost, 2),
                "notice_handling_seconds": round(handling, 2),
            }
            rows.append(row)
            print(
                f"  trial {row['trial']} {'notice   ' if with_notice else 'hard kill'}: reached step {reached:5d}, "
                f"resumed at {row['resumed_at_step']:5d}, lost {row['lost_seconds']:5.2f} s of work, "
                f"restart cost {row['restart_cost_seconds']:.2f} s"
                + (f", notice handled in {row['notice_handling_seconds']:.2f} s" if with_notice else ""),
                flush=True,
            )
    for with_notice in (True, False):
        subset = [r for r in rows if r["notice"] is with_notice]
        lost = sum(r["lost_seconds"] for r in subset) / len(subset)
        restart = sum(r["restart_cost_seconds"] for r in subset) / len(subset)
        print(
            f"  mean {'with notice' if with_notice else 'hard kill  '}: lost work {lost:.2f} s + restart "
            f"{restart:.2f} s = {lost + restart:.2f} s per interruption"
        )
    return rows


def main(argv: list[str]) -> int:
    quick = "--quick" in argv or os.environ.get("STEPSPOT_BENCH_QUICK", "") not in ("", "0")
    tiny = smoke(argv)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server, endpoint = _server()
    try:
        print("checkpoint upload (moto server on localhost):", flush=True)
        upload = bench_upload(endpoint, quick, SMOKE_SIZES if tiny else SIZES)
        print("lost work per interruption (agent + example program, fake IMDS):", flush=True)
        trials = (SMOKE_TRIALS, SMOKE_INTERRUPT_AFTER) if tiny else (TRIALS, INTERRUPT_AFTER)
        lost = bench_lost_work(endpoint, *trials)
    finally:
        server.stop()
    out = results_file("checkpoints.json")
    out.write_text(json.dumps({"upload": upload, "lost_work": lost}, indent=1))
    print(f"  results: {out}")
    notice_rows = [r for r in lost if r["notice"]]
    return 0 if all(r["lost_steps"] == 0 for r in notice_rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
