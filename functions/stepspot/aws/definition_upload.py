"""Upload of a submitted workflow definition to `s3://<bucket>/workflows/<id>/definition.json`."""

from __future__ import annotations

import json
from typing import Any

from stepspot.aws.cli_errors import aws_call


def definition_key(workflow_id: str) -> str:
    return f"workflows/{workflow_id}/definition.json"


class DefinitionUploader:
    """Puts definitions where the workflow parser Lambda reads them (docs/contracts.md, S3 layout)."""

    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def upload(self, workflow_id: str, document: dict[str, Any]) -> str:
        key = definition_key(workflow_id)
        with aws_call("upload the workflow definition"):
            self._client.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=json.dumps(document, indent=2).encode(),
                ContentType="application/json",
            )
        return f"s3://{self._bucket}/{key}"
