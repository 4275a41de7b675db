#!/usr/bin/env python3
"""Refresh functions/stepspot/data/instance_types.json from the EC2 API (DescribeInstanceTypes).

The fit check (stepspot.capacity) reads vCPUs, memory, GPUs and EFA support of every instance type a
compute environment may use from that file. This script rewrites its ``instance_types`` with what EC2
reports for the families below, plus every type the default lists name, keeps the ``defaults`` (the
contract's default instance type lists, which terraform/variables.tf mirrors), and stamps the source,
region and date. x86_64 types only: the compute environments run x86_64 ECS images.

    AWS_PROFILE=... python scripts/refresh_instance_types.py --region eu-west-1
    python scripts/refresh_instance_types.py --check     # exit 1 if the file differs from what EC2 says

Needs ec2:DescribeInstanceTypes (read-only, no resource-level permissions).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "functions" / "stepspot" / "data" / "instance_types.json"
# Families of current generation the compute environments use (CONTRACTS.md), GPU families, HPC families,
# and the previous defaults' families (so older tfvars are still checked).
FAMILIES = (
    "c7i",
    "m7i",
    "r7i",
    "g5",
    "g6",
    "p4d",
    "hpc6a",
    "hpc6id",
    "hpc7a",
    "c5",
    "c5a",
    "c5n",
    "c6i",
    "m5",
    "m6i",
    "r5",
)
SOURCE = "Amazon EC2 DescribeInstanceTypes (scripts/refresh_instance_types.py), x86_64 types only"


def describe(ec2: Any, names: list[str], families: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """{instance type: its row} for the families and the named types."""
    found: dict[str, dict[str, Any]] = {}
    paginator = ec2.get_paginator("describe_instance_types")
    # A filter, not InstanceTypes=[...]: an unknown name is then missing from the answer (reported by the
    # caller with the list of them) instead of failing the whole call with InvalidInstanceType.
    values = [f"{family}.*" for family in families] + sorted(set(names))
    queries: list[dict[str, Any]] = [{"Filters": [{"Name": "instance-type", "Values": values}]}]
    for query in queries:
        for page in paginator.paginate(**query):
            for info in page["InstanceTypes"]:
                if "x86_64" in info["ProcessorInfo"]["SupportedArchitectures"]:
                    found[info["InstanceType"]] = row(info)
    return found


def row(info: dict[str, Any]) -> dict[str, Any]:
    gpu = info.get("GpuInfo") or {}
    return {
        "vcpus": int(info["VCpuInfo"]["DefaultVCpus"]),
        "memory_mib": int(info["MemoryInfo"]["SizeInMiB"]),
        "gpus": sum(int(g.get("Count", 0)) for g in gpu.get("Gpus", [])),
        "gpu_memory_mib": int(gpu.get("TotalGpuMemoryInMiB", 0)),
        "efa": bool(info.get("NetworkInfo", {}).get("EfaSupported", False)),
        "architecture": "x86_64",
    }


def render(document: dict[str, Any]) -> str:
    """Readable JSON: one line per instance type."""
    head = {key: value for key, value in document.items() if key != "instance_types"}
    text = json.dumps(head, indent=2)[:-2]
    lines = [f"    {json.dumps(name)}: {json.dumps(spec)}" for name, spec in sorted(document["instance_types"].items())]
    return text + ',\n  "instance_types": {\n' + ",\n".join(lines) + "\n  }\n}\n"


def refreshed(current: dict[str, Any], ec2: Any, region: str, today: str) -> dict[str, Any]:
    defaults = current.get("defaults", {})
    named = [str(n) for value in defaults.values() if isinstance(value, list) for n in value]
    types = describe(ec2, named, FAMILIES)
    missing = sorted(set(named) - set(types))
    if missing:
        raise SystemExit(f"EC2 in {region} does not know the default instance types {missing}: fix the defaults")
    return {"source": SOURCE, "retrieved": today, "region": region, "defaults": defaults, "instance_types": types}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", default="eu-west-1", help="region to ask (default eu-west-1)")
    parser.add_argument("--output", type=Path, default=TABLE, help=f"file to write (default {TABLE.relative_to(ROOT)})")
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if the figures differ")
    args = parser.parse_args(argv)
    current = json.loads(args.output.read_text(encoding="utf-8")) if args.output.is_file() else {"defaults": {}}
    ec2 = boto3.client("ec2", region_name=args.region)
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    document = refreshed(current, ec2, args.region, today)
    if args.check:
        differ = document["instance_types"] != current.get("instance_types")
        print(f"{args.output}: {'differs from' if differ else 'matches'} EC2 in {args.region}")
        return 1 if differ else 0
    args.output.write_text(render(document), encoding="utf-8")
    print(f"wrote {len(document['instance_types'])} instance types of {args.region} to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
