"""stepspot-agent: the in-container task runner (standard library and boto3 only).

``stepspot-agent run -- CMD ARGS...`` downloads the task's declared inputs into ``$STEPSPOT_WORK_DIR``
(each file checked against its producer's manifest), restores the task's latest valid checkpoint into
``$STEPSPOT_CHECKPOINT_DIR``, runs the program, checkpoints the directory every interval (only changed
files are sent), and on a Spot interruption notice (IMDS ``spot/instance-action``, polled every 5 s
with an IMDSv2 token) or SIGTERM tells the program (a configurable signal), waits a bounded time for it
to write, and uploads at once. A program that knows its own save points (after an epoch, every N
steps) asks for a checkpoint instead: SIGUSR1 to ``$STEPSPOT_AGENT_PID``, then it waits for SIGUSR2
(saved; or the notice signal, if a Spot notice came meanwhile); from its first request on the timer is
off, so what is saved depends on the program's progress, not on the clock. It exits with the program's
exit code, except after an IMDS notice: then
a failed program's exit is held until the host is reclaimed (so AWS Batch reports ``Host EC2 (instance
i-...) terminated.``, a Spot reclaim, not an application error), at most ``--reclaim-wait`` seconds
from the notice, after which the agent exits with 79. After a 0 exit it publishes the declared outputs
(``runs/<workflow>/<task>/outputs/``, committed by one conditional write). See docs/checkpoints.md and
docs/data.md.

Modules: ``settings`` (flags and environment), ``notices`` (IMDS watcher and the explicit state),
``checkpoints`` (store wiring, restore, save), ``staging`` (inputs and outputs), ``supervisor`` (the
program's life), ``cli`` (the command line).

A checkpoint save that fails also prints one JSON line on stderr,
``{"stepspot_event": "checkpoint_failed", "environment": ..., "workflow_id": ..., "task_id": ...,
"trigger": ..., "reason": ...}`` (``environment`` from ``STEPSPOT_ENVIRONMENT``): the agent has no
Powertools, so a CloudWatch Logs metric filter on the job log group turns these lines into the
``CheckpointsFailed`` metric that the "checkpoints-failing" alarm reads.

Exit codes of the agent itself (the program's own code is forwarded otherwise):

  64  usage: a required id, bucket, table or the command is missing, or a flag is malformed
  65  unknown workflow (only checked when a state table is given)
  66  the checkpoint or working directory cannot be created, read or written
  69  the checkpoint bucket or table does not exist
  70  internal error (a bug: traceback printed)
  73  a declared output was not produced (the program exited 0): app_error, the log names the path
  74  a declared input is missing or corrupt: infra_transient (retried), the log names the file
  75  the checkpoint store cannot be reached right now (network, throttling); retrying may work
  77  access to the bucket, an input bucket or the table was denied, or no AWS credentials
  78  misconfiguration: this runner is not the build of the deployment's Lambdas (STEPSPOT_VERSION); the
      bundle's own __main__ and the container command's shell check also use 78 (python3 missing or < 3.9)
  79  stopped on a Spot interruption notice: the program ended after an IMDS notice and the host was not
      reclaimed within --reclaim-wait (a stop/hibernate action), or SIGTERM came after the notice (ECS
      draining); the failure classifier counts it as a Spot reclaim
  126 the command is not executable (misconfiguration: not retried)
  127 the command was not found (misconfiguration: not retried)
"""

from __future__ import annotations

from stepspot.agent.checkpoints import (
    AUTO_FIRST_CHECKPOINT_SECONDS,
    Checkpointer,
    build_store,
    exit_code_for,
    report_checkpoint_failure,
)
from stepspot.agent.cli import build_parser, main
from stepspot.agent.notices import AgentState, ImdsNoticeWatcher, Lifecycle, Notice
from stepspot.agent.settings import (
    EXIT_ACCESS_DENIED,
    EXIT_BAD_DIRECTORY,
    EXIT_COMMAND_NOT_FOUND,
    EXIT_INTERNAL,
    EXIT_NOT_EXECUTABLE,
    EXIT_SPOT_NOTICE,
    EXIT_STORE_MISSING,
    EXIT_STORE_UNAVAILABLE,
    EXIT_UNKNOWN_WORKFLOW,
    EXIT_USAGE,
    AgentExit,
    AgentSettings,
    settings_from,
)
from stepspot.agent.staging import Stager
from stepspot.agent.supervisor import Agent, _exit_status
from stepspot.agent_exit_codes import EXIT_INPUT_UNAVAILABLE, EXIT_MISCONFIGURATION, EXIT_OUTPUT_MISSING
from stepspot.errors import CheckpointStoreUnavailable

__all__ = [
    "AUTO_FIRST_CHECKPOINT_SECONDS",
    "EXIT_ACCESS_DENIED",
    "EXIT_BAD_DIRECTORY",
    "EXIT_COMMAND_NOT_FOUND",
    "EXIT_INPUT_UNAVAILABLE",
    "EXIT_INTERNAL",
    "EXIT_MISCONFIGURATION",
    "EXIT_NOT_EXECUTABLE",
    "EXIT_OUTPUT_MISSING",
    "EXIT_SPOT_NOTICE",
    "EXIT_STORE_MISSING",
    "EXIT_STORE_UNAVAILABLE",
    "EXIT_UNKNOWN_WORKFLOW",
    "EXIT_USAGE",
    "Agent",
    "AgentExit",
    "AgentSettings",
    "AgentState",
    "CheckpointStoreUnavailable",
    "Checkpointer",
    "ImdsNoticeWatcher",
    "Lifecycle",
    "Notice",
    "Stager",
    "_exit_status",
    "build_parser",
    "build_store",
    "exit_code_for",
    "main",
    "report_checkpoint_failure",
    "settings_from",
]
