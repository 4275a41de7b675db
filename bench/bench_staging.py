"""Data staging benchmarks (issue 11): throughput against plain boto3, small-file overhead, wide outputs.

All against a moto server on localhost, so they measure the agent's own cost (hashing, manifests,
requests, parallelism); real S3 adds network bandwidth to both sides alike.

1. 1 GB in 8 files: publish (hash + parallel multipart upload + manifest + conditional commit) and stage
   (parallel download + sha256 check) versus plain boto3 ``upload_file`` / ``download_file`` of the same
   files one after the other with boto3's defaults. Target: staging throughput >= 0.8x plain.
2. 10 small inputs + 10 small outputs per task: staging overhead. Target: <= 100 ms.
3. An output directory of 10,000 small files: publish time. Target: <= 10 s.

    python -m bench staging            (STEPSPOT_BENCH_QUICK=1: 256 MB instead of 1 GB; --smoke: a few KB)
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "integration"))

from checkpoint_support import staging_settings  # noqa: E402

from bench import smoke  # noqa: E402
from stepspot.agent import AgentSettings, Stager  # noqa: E402

MB = 1024 * 1024
SMOKE_TOTAL, SMOKE_WIDE = 512 * 1024, 20  # --smoke: bytes of the throughput run, files of the wide output


def _server() -> tuple[Any, str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def _settings(endpoint: str, bucket: str, work: Path, task_id: str, outputs=(), inputs=()) -> AgentSettings:
    return staging_settings(endpoint, bucket, work, task_id, outputs, inputs, workflow_id="bench")


def _client(endpoint: str) -> Any:
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", config=Config(max_pool_connections=32))


def _fill(root: Path, count: int, size: int, prefix: str = "data") -> None:
    root.mkdir(parents=True, exist_ok=True)
    block = os.urandom(min(size, MB))
    for i in range(count):
        with (root / f"{prefix}-{i:05d}.bin").open("wb") as out:
            written = 0
            while written < size:
                chunk = block[: min(len(block), size - written)]
                out.write(chunk[:1] + i.to_bytes(4, "big") + chunk[5:] if written == 0 else chunk)
                written += len(chunk)


def bench_throughput(endpoint: str, total: int) -> dict[str, float]:
    s3 = _client(endpoint)
    s3.create_bucket(Bucket="bench-plain")
    s3.create_bucket(Bucket="bench-staged")
    with tempfile.TemporaryDirectory(prefix="stepspot-bench-") as scratch:
        source = Path(scratch) / "out"
        _fill(source / "frames", 8, total // 8)
        files = sorted((source / "frames").iterdir())
        started = time.perf_counter()
        for path in files:
            s3.upload_file(str(path), "bench-plain", f"plain/{path.name}")
        plain_up = time.perf_counter() - started
        started = time.perf_counter()
        for path in files:
            s3.download_file("bench-plain", f"plain/{path.name}", str(Path(scratch) / f"plain-{path.name}"))
        plain_down = time.perf_counter() - started
        for path in files:
            (Path(scratch) / f"plain-{path.name}").unlink()
            s3.delete_object(Bucket="bench-plain", Key=f"plain/{path.name}")

        producer = Stager(_settings(endpoint, "bench-staged", source, "produce", outputs=["frames/"]), s3)
        started = time.perf_counter()
        producer.publish_outputs()
        staged_up = time.perf_counter() - started
        consumer_dir = Path(scratch) / "in"
        consumer = Stager(
            _settings(
                endpoint, "bench-staged", consumer_dir, "consume", inputs=[{"from": "produce", "path": "frames/"}]
            ),
            s3,
        )
        started = time.perf_counter()
        consumer.stage_inputs()
        staged_down = time.perf_counter() - started
    return {
        "plain_upload_s": plain_up,
        "plain_download_s": plain_down,
        "staged_upload_s": staged_up,
        "staged_download_s": staged_down,
        "upload_ratio": plain_up / staged_up,
        "download_ratio": plain_down / staged_down,
        "round_trip_ratio": (plain_up + plain_down) / (staged_up + staged_down),
    }


def bench_small(endpoint: str, trials: int = 5) -> float:
    s3 = _client(endpoint)
    s3.create_bucket(Bucket="bench-small")
    with tempfile.TemporaryDirectory(prefix="stepspot-bench-") as scratch:
        upstream = Path(scratch) / "up"
        _fill(upstream / "in", 10, 4096)
        Stager(_settings(endpoint, "bench-small", upstream, "up", outputs=["in/"]), s3).publish_outputs()
        best = float("inf")
        for trial in range(trials):
            work = Path(scratch) / f"task-{trial}"
            settings = _settings(
                endpoint,
                "bench-small",
                work,
                f"task-{trial}",
                outputs=["out/"],
                inputs=[{"from": "up", "path": f"in/data-{i:05d}.bin"} for i in range(10)],
            )
            stager = Stager(settings, s3)
            started = time.perf_counter()
            stager.stage_inputs()
            staging_in = time.perf_counter() - started
            _fill(work / "out", 10, 4096, prefix=f"result-{trial}")  # the program's work: not timed
            started = time.perf_counter()
            stager.publish_outputs()
            best = min(best, staging_in + time.perf_counter() - started)
        return best


def bench_wide(endpoint: str, count: int = 10_000) -> float:
    s3 = _client(endpoint)
    s3.create_bucket(Bucket="bench-wide")
    with tempfile.TemporaryDirectory(prefix="stepspot-bench-") as scratch:
        work = Path(scratch) / "w"
        _fill(work / "frames", count, 512)
        stager = Stager(_settings(endpoint, "bench-wide", work, "wide", outputs=["frames/"]), s3)
        started = time.perf_counter()
        stager.publish_outputs()
        return time.perf_counter() - started


def main(argv: list[str]) -> int:
    quick = "--quick" in argv or os.environ.get("STEPSPOT_BENCH_QUICK") == "1"
    total = SMOKE_TOTAL if smoke(argv) else 256 * MB if quick else 1024 * MB
    wide_files = SMOKE_WIDE if smoke(argv) else 10_000
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server, endpoint = _server()
    failed = 0
    try:
        t = bench_throughput(endpoint, total)
        print(
            f"  {total / MB:g} MB in 8 files: plain boto3 up {t['plain_upload_s']:.2f} s / down "
            f"{t['plain_download_s']:.2f} s; staged (hash+publish) {t['staged_upload_s']:.2f} s / (stage+verify) "
            f"{t['staged_download_s']:.2f} s; throughput ratio up {t['upload_ratio']:.2f}x, down "
            f"{t['download_ratio']:.2f}x, round trip {t['round_trip_ratio']:.2f}x (target >= 0.8x)"
        )
        failed += t["round_trip_ratio"] < 0.8
        small = bench_small(endpoint, trials=1 if smoke(argv) else 5)
        print(f"  10 small inputs + 10 small outputs: {small * 1000:.0f} ms staging overhead (target <= 100 ms)")
        failed += small > 0.1
        wide = bench_wide(endpoint, wide_files)
        print(f"  {wide_files:,}-file output directory: published in {wide:.2f} s (target <= 10 s)")
        failed += wide > 10
    finally:
        server.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
