#!/usr/bin/env python3
"""Stand-in for the recipe's /app/preprocess.py: builds a small particle system from $INPUT_PATH.

Reads ``$INPUT_PATH/raw.json`` when it exists (else generates 27 particles on a lattice, deterministically)
and writes ``$OUTPUT_PATH/system.json``. Both paths are on the shared file system (/mnt/efs).
"""

import json
import os
from pathlib import Path

source = Path(os.environ["INPUT_PATH"]) / "raw.json"
if source.is_file():
    particles = json.loads(source.read_text())["particles"]
else:
    particles = [[x, y, z] for x in range(3) for y in range(3) for z in range(3)]
out = Path(os.environ["OUTPUT_PATH"])
out.mkdir(parents=True, exist_ok=True)
(out / "system.json").write_text(json.dumps({"particles": particles, "step": 0}))
print(f"preprocess: {len(particles)} particles -> {out / 'system.json'}")
