#!/usr/bin/env python3
"""Stand-in for the recipe's /app/analyze.py: summarises $INPUT_PATH/trajectory.json into $OUTPUT_PATH."""

import json
import os
from pathlib import Path

trajectory = json.loads((Path(os.environ["INPUT_PATH"]) / "trajectory.json").read_text())
energy = trajectory["energy"]
out = Path(os.environ["OUTPUT_PATH"])
out.mkdir(parents=True, exist_ok=True)
summary = {"steps": trajectory["steps"], "final_energy": energy[-1], "mean_energy": round(sum(energy) / len(energy), 6)}
(out / "summary.json").write_text(json.dumps(summary))
print(f"analyze: {summary}")
