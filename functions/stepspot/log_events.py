"""The task runner's structured stderr lines that CloudWatch Logs metric filters count. Standard library only.

Kept apart from ``stepspot.metrics`` (which the Lambdas use and which needs Python 3.11) because the task
runner bundle imports it and runs on the image's python3, down to 3.9.
"""

from __future__ import annotations

UNKNOWN_DIMENSION_VALUE = "unknown"

# The agent's structured stderr line for a failed checkpoint save; the metric filter matches
# ``{ $.stepspot_event = "checkpoint_failed" }`` and reads ``$.environment``.
EVENT_FIELD = "stepspot_event"
CHECKPOINT_FAILED_EVENT = "checkpoint_failed"

# The agent's line for a checkpointed task whose directory stayed empty for two intervals
# (stepspot.run_health); the metric filter ``{ $.stepspot_event = "checkpoint_empty" }`` counts CheckpointsEmpty.
CHECKPOINT_EMPTY_EVENT = "checkpoint_empty"
