#!/usr/bin/env python3
"""Refresh the bundled On-Demand price table (functions/stepspot/data/instance_prices.json) from the
AWS Price List API: ``pricing:GetProducts`` on ``AmazonEC2`` for each instance type of the table (or the
ones given), Linux, shared tenancy, no pre-installed software, in one region. The file then names this
source and today's date. Needs AWS credentials allowed ``pricing:GetProducts``.

    python scripts/refresh_prices.py                       # the types already in the table, its region
    python scripts/refresh_prices.py --region eu-west-1 --types c7i.large m7i.xlarge --output prices.json

Exit codes: 0 written; 1 the API answered no price for a type (nothing written); 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "functions" / "stepspot" / "data" / "instance_prices.json"
# The Price List API is served from a few regions only; us-east-1 answers for every region's prices.
PRICING_API_REGION = "us-east-1"
FILTERS = {
    "operatingSystem": "Linux",
    "tenancy": "Shared",
    "preInstalledSw": "NA",
    "capacitystatus": "Used",
    "licenseModel": "No License required",
}


class PriceListError(Exception):
    """Indicates that the Price List API gave no usable On-Demand price for an instance type."""


def product_filters(instance_type: str, region: str) -> list[dict[str, str]]:
    terms = {"instanceType": instance_type, "regionCode": region, **FILTERS}
    return [{"Type": "TERM_MATCH", "Field": field, "Value": value} for field, value in terms.items()]


def parse_product(document: str | dict[str, Any]) -> dict[str, Any]:
    """One ``PriceList`` entry -> {"on_demand_hourly": USD per hour}. vCPUs, memory and GPUs are not kept:
    the instance table (``instance_types.json``, scripts/refresh_instance_types.py) owns them."""
    product = json.loads(document) if isinstance(document, str) else document
    attributes = product["product"]["attributes"]
    prices = [
        float(dimension["pricePerUnit"]["USD"])
        for term in product.get("terms", {}).get("OnDemand", {}).values()
        for dimension in term.get("priceDimensions", {}).values()
        if dimension.get("unit") == "Hrs" and "USD" in dimension.get("pricePerUnit", {})
    ]
    if not prices:
        raise PriceListError(f"{attributes.get('instanceType')}: no hourly On-Demand USD price in the product")
    return {"on_demand_hourly": max(prices)}


def fetch(pricing: Any, instance_types: Iterable[str], region: str) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    paginator = pricing.get_paginator("get_products")
    for instance_type in sorted(set(instance_types)):
        found: list[dict[str, Any]] = []
        for page in paginator.paginate(ServiceCode="AmazonEC2", Filters=product_filters(instance_type, region)):
            found.extend(parse_product(item) for item in page.get("PriceList", []))
        if not found:
            raise PriceListError(f"the Price List API has no Linux On-Demand price of {instance_type} in {region}")
        table[instance_type] = max(found, key=lambda e: e["on_demand_hourly"])  # one product is expected
    return table


def document(instances: dict[str, dict[str, Any]], region: str, today: str) -> dict[str, Any]:
    return {
        "source": f"AWS Price List API (pricing:GetProducts, AmazonEC2, {region}, Linux, shared tenancy, "
        "no pre-installed software, On-Demand hourly), written by scripts/refresh_prices.py",
        "retrieved": today,
        "region": region,
        "currency": "USD",
        "notes": "Hourly On-Demand prices only: vCPUs, memory and GPUs of each type come from instance_types.json "
        "(stepspot.capacity). Spot prices are not in this file: they change hourly per availability zone and are "
        "read from DescribeSpotPriceHistory for the zone and time of each attempt.",
        "instance_types": dict(sorted(instances.items())),
    }


def main(argv: list[str] | None = None, pricing: Any = None, today: str | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--region", help="region whose prices to fetch (default: the table's)")
    parser.add_argument("--types", nargs="+", metavar="TYPE", help="instance types (default: the table's)")
    parser.add_argument("--output", type=Path, default=TABLE, help=f"file to write (default {TABLE})")
    args = parser.parse_args(argv)
    current = json.loads(TABLE.read_text(encoding="utf-8"))
    region = args.region or current["region"]
    types = args.types or list(current["instance_types"])
    if pricing is None:
        import boto3

        pricing = boto3.client("pricing", region_name=PRICING_API_REGION)
    try:
        instances = fetch(pricing, types, region)
    except PriceListError as exc:
        print(f"refresh_prices: {exc}; nothing written", file=sys.stderr)
        return 1
    stamp = today or datetime.now(UTC).strftime("%Y-%m-%d")
    text = json.dumps(document(instances, region, stamp), indent=1) + "\n"
    temporary = args.output.with_name(args.output.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(args.output)
    print(f"refresh_prices: {len(instances)} instance types of {region} written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
