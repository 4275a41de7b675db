"""Shared fixtures. AWS credentials are fake and the region fixed so no test can reach real AWS."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# The IAM evaluation of every AWS call made by the integration and end-to-end tests (tests/iam).
sys.path.insert(0, str(Path(__file__).resolve().parent / "iam"))
pytest_plugins = ("iam_plugin",)

# Powertools reads these when a handler module is imported (at collection, before any fixture runs).
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Stepspot")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "stepspot-test")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(autouse=True)
def _fake_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Stepspot")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "stepspot-test")
    monkeypatch.setenv("POWERTOOLS_DEV", os.environ.get("POWERTOOLS_DEV", "false"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first, then the other slow ones: pytest-xdist (`make test`) hands tests out in
    this order, so a long test never starts last and keeps one worker busy while the other is idle."""

    def rank(item: pytest.Item) -> int:
        return 0 if item.get_closest_marker("longest") else 1 if item.get_closest_marker("slow") else 2

    items.sort(key=rank)  # stable: the order within each rank is the collection order
