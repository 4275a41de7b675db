"""Exit codes of the checkpoint agent that other parts read back. Standard library only.

The agent (inside the job container) and the failure classifier (attempt manager Lambda) both import this,
so the classifier recognises what the agent meant without importing the agent.
"""

from __future__ import annotations

# The runner cannot run in this image or deployment (no usable python3, no bundle on the host, a runner of
# another build): retrying cannot fix it, the failure classifier makes it ``misconfiguration`` (EX_CONFIG).
EXIT_MISCONFIGURATION = 78

# The shell's codes, which the runner also uses when the task's command is not in the image or not
# executable; from a job the runner ran, the classifier makes them ``misconfiguration`` too.
EXIT_NOT_EXECUTABLE = 126
EXIT_COMMAND_NOT_FOUND = 127

# The agent stopped because of an EC2 Spot interruption notice (IMDS ``spot/instance-action``) and the
# host was not reclaimed within the wait (a ``stop``/``hibernate`` action, a reclaim that did not come,
# or ECS draining the instance with SIGTERM). Just past the sysexits range (64-78) and below the shell's
# 126-127 and 128+N, so neither the agent's other codes nor a signal death can collide with it.
EXIT_SPOT_NOTICE = 79

# Data staging by the agent (docs/data.md). A declared input that is missing or corrupt is not the
# program's fault (the producer's publication is the contract): infra_transient, retried. A declared
# output the program did not produce is: app_error. The job log has the sentence naming the file.
EXIT_INPUT_UNAVAILABLE = 74  # sysexits EX_IOERR
EXIT_OUTPUT_MISSING = 73  # sysexits EX_CANTCREAT

# The agent was denied an S3 or DynamoDB request (a `uri` input in a bucket outside input_bucket_arns,
# a job role without the checkpoint statements): retrying cannot fix it, ``misconfiguration``.
EXIT_ACCESS_DENIED = 77  # sysexits EX_NOPERM

# The agent could not reach S3 or DynamoDB (throttled or unreachable after its retries) while staging or
# checkpointing: not the program's fault, ``infra_transient``, retried (sysexits EX_TEMPFAIL).
EXIT_STORE_UNAVAILABLE = 75
