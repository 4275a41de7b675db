"""`stepspot status` shows the cost ledger's sums; `stepspot report` writes the run report (moto)."""

from __future__ import annotations

import json

import boto3
import pytest
import test_cli_remote
from test_cli_remote import REGION, WORKFLOW, Env

from stepspot.aws.cost_store import CostStore
from stepspot.cli import main
from stepspot.cost import ON_DEMAND, SPOT, AttemptRecord, Placement, build_ledger, default_instance_prices
from stepspot.plan import build_plan, plan_to_json
from stepspot.workflow import Workflow

T0 = 1_800_000_000.0
env = test_cli_remote.env  # the moto deployment of the remote command tests


def seed_costed_run(env: Env, workflow_id: str = "md-1") -> None:
    env.start(workflow_id, definition_uri="s3://x")
    plan = build_plan(Workflow.model_validate(WORKFLOW), workflow_id)
    env.s3.put_object(Bucket=env.bucket, Key=f"plans/{workflow_id}.json", Body=plan_to_json(plan))
    table = boto3.resource("dynamodb", region_name=REGION).Table("stepspot-dev-state")
    table.put_item(
        Item={
            "pk": f"WF#{workflow_id}",
            "sk": "META",
            "name": "Tiny MD",
            "plan_uri": f"s3://{env.bucket}/plans/{workflow_id}.json",
        }
    )
    env.put_task(workflow_id, "prep", state="SUCCEEDED", attempts=1, queue="spot")
    env.put_task(workflow_id, "run", state="RUNNING", attempts=2, queue="ondemand", last_failure_class="spot_reclaim")
    env.put_task(workflow_id, "analyse", state="PENDING", attempts=0)
    records = [
        # prep: one hour of c7i.xlarge on Spot at 0.07/h
        AttemptRecord("prep", 1, "j1", SPOT, "SUCCEEDED", T0, T0 + 60, T0 + 3660, 4, 8192),
        # run: reclaimed after 30 min (no checkpoint), then 30 min On-Demand (fallback)
        AttemptRecord(
            "run",
            1,
            "j2",
            SPOT,
            "FAILED",
            T0 + 3700,
            T0 + 3760,
            T0 + 5560,
            4,
            8192,
            reclaimed=True,
            failure_class="spot_reclaim",
        ),
        AttemptRecord("run", 2, "j3", ON_DEMAND, "SUCCEEDED", T0 + 5600, T0 + 5660, T0 + 7460, 4, 8192, fallback=True),
    ]
    ledger = build_ledger(
        records, lambda r: Placement("c7i.xlarge", "us-east-1a"), default_instance_prices(), lambda *_: 0.07
    )
    store = CostStore(table)
    for entry in ledger:
        assert store.record(workflow_id, entry)


def test_status_shows_the_cost_so_far_per_task_and_in_total(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    seed_costed_run(env)
    assert main(["status", "md-1", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    by_id = {task["id"]: task for task in document["tasks"]}
    # c7i.xlarge On-Demand 0.1785/h: prep 0.07 (Spot), run 0.035 (lost) + 0.08925 (On-Demand)
    assert by_id["prep"]["cost"]["total_usd"] == pytest.approx(0.07)
    assert by_id["run"]["cost"]["lost_usd"] == pytest.approx(0.035)
    assert by_id["run"]["cost"]["fallback_usd"] == pytest.approx(0.08925)
    assert document["cost"]["total_usd"] == pytest.approx(0.07 + 0.035 + 0.08925)
    # all On-Demand: prep's hour and run's kept half hour at 0.1785/h
    assert document["cost"]["all_on_demand_usd"] == pytest.approx(0.1785 + 0.08925)
    assert document["cost"]["savings_usd"] == pytest.approx(0.1785 + 0.08925 - 0.19425)
    assert main(["status", "md-1"]) == 0
    out = capsys.readouterr().out
    assert "cost so far: $0.194" in out and "saved $0.0735 (27.5%)" in out


def test_report_writes_one_self_contained_page(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    seed_costed_run(env)
    target = env.tmp_path / "out" / "report.html"
    assert main(["report", "md-1", "-o", str(target)]) == 0
    assert "report written to" in capsys.readouterr().out
    page = target.read_text()
    assert "echarts" in page and "<script src" not in page
    data = json.loads(page.split("var D = ", 1)[1].split(";\n", 1)[0])
    assert data["tasks"] == ["analyse", "prep", "run"]
    assert len(data["attempts"]) == 3
    assert sorted(data["edges"]) == sorted([[1, 2], [2, 0]])  # prep -> run -> analyse
    assert data["lost"][0][:2] == ["run", 1]


def test_report_of_an_unknown_workflow_exits_2(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "nope", "-o", str(env.tmp_path / "r.html")]) == 2
    assert "stepspot status" in capsys.readouterr().err
    assert not (env.tmp_path / "r.html").exists()


def test_report_to_a_directory_is_refused_before_reading_anything(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "md-1", "-o", str(env.tmp_path)]) == 2
    assert "is a directory; give the report a file name" in capsys.readouterr().err
