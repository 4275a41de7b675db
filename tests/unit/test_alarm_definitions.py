"""templates/alarms.json (the stepspot-metric alarms Terraform creates with for_each) names real metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

from stepspot.metrics import DIMENSION_ENVIRONMENT, METRICS

ALARMS = Path(__file__).resolve().parents[2] / "templates" / "alarms.json"


def test_alarms_refer_to_emitted_metrics_with_the_environment_dimension():
    alarms = json.loads(ALARMS.read_text())
    emitted = {m.name.value: m for m in METRICS}
    assert alarms
    for key, alarm in alarms.items():
        assert re.fullmatch(r"[a-z0-9-]+", key), key
        assert set(alarm) == {"metric", "statistic", "period", "threshold", "description"}, key
        spec = emitted[alarm["metric"]]
        assert (DIMENSION_ENVIRONMENT,) in spec.dimension_sets, key
        assert alarm["period"] % 60 == 0 and alarm["threshold"] > 0, key
        assert alarm["description"].endswith("."), key
