"""Names of the environment variables stepspot sets on every Batch job. Standard library only.

``fleet`` sets them on each job it builds, the task runner (inside the job container) and the local
engine read them, and the job-status events are traced back to their task by them (``job_events``).
"""

from __future__ import annotations

WORKFLOW_ID_VARIABLE = "STEPSPOT_WORKFLOW_ID"
TASK_ID_VARIABLE = "STEPSPOT_TASK_ID"
CHECKPOINT_ENABLED_VARIABLE = "STEPSPOT_CHECKPOINT_ENABLED"  # "true"/"false", set on every job
