"""scripts/refresh_prices.py against a stubbed Price List API (the request shape is botocore's)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from stepspot.cost import instance_prices_from

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "refresh_prices.py"
spec = importlib.util.spec_from_file_location("refresh_prices", SCRIPT)
assert spec and spec.loader
refresh = importlib.util.module_from_spec(spec)
spec.loader.exec_module(refresh)


def product(instance_type: str, vcpus: int, memory: str, usd: str, gpu: str | None = None) -> str:
    attributes = {"instanceType": instance_type, "vcpu": str(vcpus), "memory": memory, "regionCode": "eu-west-1"}
    if gpu:
        attributes["gpu"] = gpu
    return json.dumps(
        {
            "product": {"attributes": attributes},
            "terms": {
                "OnDemand": {
                    "T1": {"priceDimensions": {"D1": {"unit": "Hrs", "pricePerUnit": {"USD": usd}}}},
                }
            },
        }
    )


def _pricing() -> tuple[object, Stubber]:
    client = boto3.client("pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    return client, Stubber(client)


def test_the_table_is_rewritten_from_the_price_list_naming_its_source_and_date(tmp_path: Path, capsys):
    client, stub = _pricing()
    stub.add_response(
        "get_products",
        {"PriceList": [product("c7i.large", 2, "4 GiB", "0.0941000000")], "FormatVersion": "aws_v1"},
        {"ServiceCode": "AmazonEC2", "Filters": refresh.product_filters("c7i.large", "eu-west-1")},
    )
    stub.add_response(
        "get_products",
        {"PriceList": [product("g5.xlarge", 4, "16 GiB", "1.1230000000", gpu="1")], "FormatVersion": "aws_v1"},
        {"ServiceCode": "AmazonEC2", "Filters": refresh.product_filters("g5.xlarge", "eu-west-1")},
    )
    out = tmp_path / "prices.json"
    with stub:
        code = refresh.main(
            ["--region", "eu-west-1", "--types", "g5.xlarge", "c7i.large", "--output", str(out)],
            pricing=client,
            today="2026-11-29",
        )
    assert code == 0
    written = json.loads(out.read_text())
    assert written["retrieved"] == "2026-11-29" and "pricing:GetProducts" in written["source"]
    table = instance_prices_from(written)  # the ledger reads what the script writes
    assert table.region == "eu-west-1"
    assert table.instance("c7i.large").on_demand_hourly == 0.0941
    # vCPUs, memory and GPUs come from the instance table, not from the price list
    assert (table.instance("g5.xlarge").memory_mib, table.instance("g5.xlarge").gpus) == (16384, 1)
    assert set(written["instance_types"]["c7i.large"]) == {"on_demand_hourly"}
    assert "2 instance types of eu-west-1" in capsys.readouterr().out


def test_a_type_without_a_price_writes_nothing(tmp_path: Path, capsys):
    client, stub = _pricing()
    stub.add_response("get_products", {"PriceList": []}, None)
    out = tmp_path / "prices.json"
    with stub:
        code = refresh.main(["--types", "x9.huge", "--output", str(out)], pricing=client)
    assert code == 1
    assert not out.exists()
    assert "no Linux On-Demand price of x9.huge in us-east-1; nothing written" in capsys.readouterr().err


def test_a_product_without_an_hourly_usd_price_is_refused():
    document = json.loads(product("x.large", 2, "4 GiB", "0.1"))
    document["terms"]["OnDemand"]["T1"]["priceDimensions"]["D1"]["unit"] = "Quantity"
    with pytest.raises(refresh.PriceListError, match="no hourly On-Demand USD price"):
        refresh.parse_product(document)
