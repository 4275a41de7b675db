"""Asynchronous invocation of the scheduler Lambda (``lambda:InvokeFunction``, InvocationType=Event).

Two callers: the workflow monitor reports a lost task execution, and the scheduler hands the rest of a
wide fan-out to itself (``stepspot.scheduler.Continuations``). Lambda queues the event, retries a failed
invocation twice and then sends it to the function's on-failure destination (the alerts topic,
terraform/main.tf); every scheduler event is idempotent, so a duplicate delivery is harmless.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from stepspot.aws.errors import translate_client_error


@dataclass(frozen=True)
class SchedulerInvoker:
    client: Any
    function_arn: str
    doing: str = "invoking the scheduler"  # the clause of an error message (what failed)

    def send(self, event: Mapping[str, Any]) -> None:
        try:
            self.client.invoke(FunctionName=self.function_arn, InvocationType="Event", Payload=json.dumps(event))
        except ClientError as exc:
            raise translate_client_error(exc, self.doing) from exc
