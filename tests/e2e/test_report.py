"""The cost ledger of a local run with a reclaim, and its HTML report opened in a real browser."""

from __future__ import annotations

import time

import pytest
from browser import chromium_page
from local_helpers import MD_EXAMPLE, ROOT

from stepspot.cost import default_instance_prices, local_placement
from stepspot.local.engine import LocalEngine, LocalOptions
from stepspot.local.faults import Faults
from stepspot.local.lambdas import REGION
from stepspot.report.html import write_report
from stepspot.workflow import load_workflow_file

SEED = 4
SCREENSHOT_DIR = ROOT / "build" / "test-output" / "report"


@pytest.fixture(scope="module")
def reclaimed_run(tmp_path_factory):
    pytest.importorskip("stepspot.agent", reason="the checkpoint agent is needed for a resumed task")
    workdir = tmp_path_factory.mktemp("report")
    options = LocalOptions(
        faults=Faults(reclaim_tasks=frozenset({"equilibration"}), seed=SEED),
        time_scale=1800,
        workdir=workdir / ".stepspot",
        timeout_seconds=240,
    )
    summary = LocalEngine(options).run(load_workflow_file(MD_EXAMPLE), MD_EXAMPLE)
    assert summary.status == "SUCCEEDED", summary.cause
    return summary


def test_the_ledger_total_is_the_sum_of_its_attempts(reclaimed_run):
    summary = reclaimed_run
    ledger = summary.ledger
    assert len(ledger) == summary.attempts  # one entry per attempt
    cost = summary.cost
    assert cost["total_usd"] == pytest.approx(sum(e["cost_usd"] for e in ledger), abs=1e-5)
    assert cost["spot_usd"] == pytest.approx(sum(e["cost_usd"] for e in ledger if e["capacity"] == "SPOT"), abs=1e-5)
    assert cost["lost_usd"] == pytest.approx(sum(e["lost_usd"] for e in ledger), abs=1e-5)
    assert sum(row["cost_usd"] for row in summary.per_task) == pytest.approx(cost["total_usd"], abs=1e-4)
    reclaimed = [e for e in ledger if e["reclaimed"]]
    assert reclaimed and all(e["lost"] and e["task_id"] == "equilibration" for e in reclaimed)
    assert cost["lost_usd"] > 0 and cost["fallback_usd"] > 0  # equilibration ended On-Demand
    # every attempt was placed from the seed: the same seed gives the same instance and zone
    prices = default_instance_prices()
    for entry in ledger:
        vcpus, memory = _needs(entry["task_id"])
        placement = local_placement(
            SEED,
            entry["task_id"],
            entry["attempt"],
            vcpus,
            memory,
            prices,
            REGION,
            capacity=entry["capacity"],
            nodes=entry["nodes"],
        )
        assert (entry["instance_type"], entry["availability_zone"]) == (
            placement.instance_type,
            placement.availability_zone,
        )


def _needs(task_id: str) -> tuple[int, int]:
    task = next(t for t in load_workflow_file(MD_EXAMPLE).workflow.tasks if t.id == task_id)
    return task.vcpus, task.memory


def test_the_report_shows_every_attempt_in_a_real_browser(reclaimed_run, tmp_path):
    summary = reclaimed_run
    path = tmp_path / "report.html"
    size = write_report(summary.run_record, path)
    assert size < 2_000_000
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    with chromium_page() as page:
        errors: list[str] = []
        requests: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("request", lambda request: requests.append(request.url))
        started = time.monotonic()
        page.goto(path.as_uri())
        page.wait_for_selector("body[data-ready='1']", state="attached", timeout=10_000)
        elapsed = time.monotonic() - started
        drawn = page.evaluate("Object.keys(window.stepspotReport.drawn).sort()")
        page.screenshot(path=str(SCREENSHOT_DIR / "report.png"), full_page=True)
        lost_rows = page.locator("#lost tr").count() - 1
        savings = page.locator("#savings").inner_text()
    assert not errors, errors
    assert requests == [path.as_uri()]  # self-contained: nothing but the file itself is loaded
    tasks = [t.task_id for t in summary.run_record.tasks]
    expected = sorted(f"{tasks.index(e['task_id'])}/{e['attempt']}" for e in summary.ledger)
    assert drawn == expected  # every attempt was drawn on the timeline
    assert lost_rows == sum(1 for e in summary.ledger if e["reclaimed"])
    assert f"${summary.cost['savings_usd']:.4f}" in savings
    assert elapsed < 5.0
    assert (SCREENSHOT_DIR / "report.png").stat().st_size > 10_000
