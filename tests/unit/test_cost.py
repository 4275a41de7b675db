"""The cost ledger: prices, shares, lost work and totals, checked against hand computations."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from stepspot.cost import (
    ON_DEMAND,
    SPOT,
    AttemptRecord,
    LedgerEntry,
    Placement,
    PriceTableError,
    build_ledger,
    default_instance_prices,
    local_placement,
    local_spot_price,
    totals,
    totals_per_task,
)

MD_WORKFLOW = Path(__file__).parents[2] / "examples" / "molecular-dynamics" / "workflow.json"
T0 = 1_800_000_000.0


def _md_tasks() -> dict[str, dict]:
    return {t["id"]: t for t in json.loads(MD_WORKFLOW.read_text())["tasks"]}


def _record(task: dict, attempt: int, capacity: str, start: float, seconds: float, **extra) -> AttemptRecord:
    return AttemptRecord(
        task_id=task["id"],
        attempt=attempt,
        job_id=f"{task['id']}-{attempt}",
        capacity=capacity,
        status=extra.pop("status", "SUCCEEDED"),
        created_at=start - 60,
        started_at=start,
        stopped_at=start + seconds,
        vcpus=task["vcpus"],
        memory_mib=task["memory"],
        nodes=task.get("nodes", 1),
        **extra,
    )


def _priced(record: AttemptRecord, instance_type: str, spot_hourly: float = 0.0) -> LedgerEntry:
    """One attempt priced on ``instance_type`` (On-Demand from the bundled table, Spot at ``spot_hourly``)."""
    [entry] = build_ledger(
        [record], lambda r: Placement(instance_type, "us-east-1a"), default_instance_prices(), lambda *_: spot_hourly
    )
    return entry


def test_the_molecular_dynamics_savings_match_a_hand_computation():
    """The MD example with one reclaim and one On-Demand fallback, priced by hand below.

    us-east-1 On-Demand (bundled table): c7i.large 0.08925, c7i.2xlarge 0.357, c7i.4xlarge 0.714,
    m7i.2xlarge 0.4032, m7i.8xlarge 1.6128, r7i.xlarge 0.2646 USD/h. Spot prices are given per attempt.
    """
    t = _md_tasks()
    records = [
        # 2 vCPU/4 GiB on c7i.large (2/4): share 1; Spot 0.035 x 600 s = 0.0058333
        _record(t["data-preprocessing"], 1, SPOT, T0, 600),
        # 8 vCPU/16 GiB on m7i.2xlarge (8/32): share 1; Spot 0.16 x 3600 s = 0.16, reclaimed 1200 s
        # after its last checkpoint: lost 0.16 x 1200/3600 = 0.0533333; kept 2400 s On-Demand 0.2688
        _record(
            t["equilibration"],
            1,
            SPOT,
            T0 + 700,
            3600,
            reclaimed=True,
            status="FAILED",
            last_checkpoint_at=T0 + 700 + 2400,
            failure_class="spot_reclaim",
        ),
        # resumed On-Demand (fallback) on c7i.2xlarge (8/16): 0.357 x 1800 s = 0.1785
        _record(t["equilibration"], 2, ON_DEMAND, T0 + 4400, 1800, fallback=True),
        # 16 vCPU/32 GiB on m7i.8xlarge (32/128): share max(0.5, 0.25) = 0.5; Spot 0.60 x 0.5 x 1.5 h = 0.45;
        # On-Demand 1.6128 x 0.5 x 1.5 = 1.2096
        _record(t["production-run"], 1, SPOT, T0 + 6300, 5400),
        # 2 nodes of c7i.4xlarge (16/32): 0.714 x 2 x 1 h = 1.428
        _record(t["production-replica"], 1, ON_DEMAND, T0 + 6300, 3600),
        # 4 vCPU/8 GiB on r7i.xlarge (4/32): share 1; Spot 0.09 x 600 s = 0.015; On-Demand 0.0441
        _record(t["analysis"], 1, SPOT, T0 + 11800, 600),
    ]
    placements = {
        "data-preprocessing-1": ("c7i.large", 0.035),
        "equilibration-1": ("m7i.2xlarge", 0.16),
        "equilibration-2": ("c7i.2xlarge", None),
        "production-run-1": ("m7i.8xlarge", 0.60),
        "production-replica-1": ("c7i.4xlarge", None),
        "analysis-1": ("r7i.xlarge", 0.09),
    }
    spot_by_type = {itype: price for itype, price in placements.values() if price is not None}
    ledger = build_ledger(
        records,
        lambda r: Placement(placements[r.job_id][0], "us-east-1b"),
        default_instance_prices(),
        lambda itype, zone, at: spot_by_type[itype],
    )
    total = totals(ledger)
    assert total.spot_usd == pytest.approx(0.0058333 + 0.16 + 0.45 + 0.015, abs=1e-6)  # 0.6308333
    assert total.on_demand_usd == pytest.approx(0.1785 + 1.428)  # 1.6065
    assert total.fallback_usd == pytest.approx(0.1785)
    assert total.lost_usd == pytest.approx(0.0533333, abs=1e-6)
    assert total.total_usd == pytest.approx(2.2373333, abs=1e-6)
    # all On-Demand: 0.014875 + 0.2688 (kept part of the reclaimed attempt) + 0.1785 + 1.2096 + 1.428 + 0.0441
    assert total.all_on_demand_usd == pytest.approx(3.143875, abs=1e-6)
    assert total.savings_usd == pytest.approx(3.143875 - 2.2373333, abs=1e-6)  # 0.9065417
    assert total.savings_percent == pytest.approx(28.835, abs=0.001)
    per_task = totals_per_task(ledger)
    assert per_task["equilibration"].total_usd == pytest.approx(0.16 + 0.1785)
    assert per_task["equilibration"].attempts == 2


def test_a_reclaim_without_checkpoint_loses_the_whole_attempt_and_a_stale_checkpoint_does_not_count():
    task = {"id": "t", "vcpus": 2, "memory": 4096}
    # A checkpoint from an earlier attempt (before this one started) saves nothing of this attempt.
    record = _record(task, 2, SPOT, T0, 1800, reclaimed=True, status="FAILED", last_checkpoint_at=T0 - 10)
    entry = _priced(record, "c7i.large", 0.04)
    assert entry.lost and entry.lost_seconds == 1800
    assert entry.lost_usd == pytest.approx(entry.cost_usd) == pytest.approx(0.02)
    assert totals([entry]).all_on_demand_usd == 0.0


def test_the_share_is_the_scarcer_resource_and_never_above_one():
    task = {"id": "t", "vcpus": 2, "memory": 30 * 1024}  # memory-bound on m7i.xlarge (4 vCPU, 16 GiB)
    entry = _priced(_record(task, 1, ON_DEMAND, T0, 3600), "m7i.xlarge")
    assert entry.share == 1.0
    task = {"id": "t", "vcpus": 1, "memory": 2048}
    entry = _priced(_record(task, 1, ON_DEMAND, T0, 3600), "m7i.xlarge")
    assert entry.share == 0.25 and entry.cost_usd == pytest.approx(0.2016 / 4)


def test_an_unknown_instance_type_names_the_fix():
    with pytest.raises(PriceTableError, match=r"refresh_prices\.py"):
        default_instance_prices().instance("x9z.mega")


def test_local_placement_and_spot_price_repeat_for_a_seed_and_fit_the_task():
    prices = default_instance_prices()
    first = local_placement(4, "equilibration", 2, 8, 16384, prices, "us-east-1")
    assert first == local_placement(4, "equilibration", 2, 8, 16384, prices, "us-east-1")
    instance = prices.instance(first.instance_type)
    assert instance.vcpus >= 8 and instance.memory_mib >= 16384
    assert first.availability_zone.startswith("us-east-1")
    seen = {local_placement(seed, "equilibration", 2, 8, 16384, prices, "us-east-1") for seed in range(30)}
    assert len(seen) > 3  # the seed moves it
    spot = local_spot_price(4, instance, first.availability_zone)
    assert 0.25 * instance.on_demand_hourly <= spot <= 0.45 * instance.on_demand_hourly
    with pytest.raises(PriceTableError, match="holds it"):
        local_placement(0, "huge", 1, 10_000, 1024, prices, "us-east-1")


def test_a_ledger_entry_survives_a_round_trip_through_its_stored_form():
    entry = _priced(_record({"id": "t", "vcpus": 2, "memory": 4096}, 1, SPOT, T0, 100), "c7i.large", 0.03)
    stored = {k: (str(v) if isinstance(v, float) else v) for k, v in entry.to_dict().items()}  # as DynamoDB Decimals
    assert LedgerEntry.from_dict(stored) == entry


def test_a_gpu_task_is_placed_on_a_gpu_instance_locally():
    prices = default_instance_prices()
    placement = local_placement(1, "train", 1, 4, 16384, prices, "us-east-1", gpus=1)
    assert prices.instance(placement.instance_type).gpus >= 1


def _report_notes(region: str = "us-east-1", tasks: list[dict] | None = None) -> list[str]:
    from stepspot.report.from_state import run_record_from_state

    return run_record_from_state(
        workflow_id="w",
        status="SUCCEEDED",
        environment="prod",
        region=region,
        meta={},
        tasks=tasks or [],
        depends_on={},
        checkpoint_items={},
    ).notes


def test_a_report_in_another_region_says_whose_on_demand_prices_it_used():
    table = default_instance_prices().region  # us-east-1, the bundled table's
    assert _report_notes(table) == []
    [note] = _report_notes("eu-west-1")
    assert note == (
        f"On-Demand prices are the bundled table's for {table}, not eu-west-1's: run "
        "`python scripts/refresh_prices.py --region eu-west-1` and redeploy to price this region"
    )


def test_a_report_names_the_instance_types_priced_from_the_fitted_rates():
    # The monitor prices a type the price table lacks from per-vCPU/per-GiB rates (aws/cost_sources.py)
    listed = _priced(_record({"id": "t", "vcpus": 8, "memory": 16384}, 1, SPOT, T0, 3600), "c7i.2xlarge", 0.1)
    estimated = replace(listed, job_id="j2", attempt=2, instance_type="c3.2xlarge")  # in neither table
    ledger = {e.job_id: e.to_dict() for e in (listed, estimated)}
    item = {"pk": "WF#w", "sk": "TASK#t", "task_id": "t", "state": "SUCCEEDED", "cost_ledger": ledger}
    assert _report_notes(tasks=[item]) == [
        "On-Demand prices of c3.2xlarge are estimates from per-vCPU and per-GiB rates (data/prices.json): "
        "the bundled price table lacks these types"
    ]
