"""The state table as the attempt manager's cache of derived job definition ARNs (across cold starts).

A cold attempt manager would otherwise describe the base definition and list the derived one on Batch's
account-wide API budget for every image; with this cache it makes one DynamoDB read. Keys are base
revision ARNs (immutable content), so an entry never goes stale. Throttling only costs the Batch calls
the cache saves: it is not an error here.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from stepspot.aws.errors import ErrorKind, error_kind, translate_client_error
from stepspot.aws.state_table import now_iso
from stepspot.state_keys import derived_definition_key


class DerivedDefinitionTable:
    """Implements ``stepspot.aws.batch.DerivedDefinitionCache``."""

    def __init__(self, dynamodb_resource: Any, table_name: str) -> None:
        self._table = dynamodb_resource.Table(table_name)

    def get(self, base_arn: str, image: str) -> str | None:
        try:
            item = self._table.get_item(Key=derived_definition_key(base_arn, image)).get("Item")
        except ClientError as exc:
            if error_kind(exc) is ErrorKind.THROTTLED:
                return None
            raise translate_client_error(exc, "reading the derived job definition cache") from exc
        return str(item["arn"]) if item and item.get("arn") else None

    def put(self, base_arn: str, image: str, arn: str) -> None:
        try:
            self._table.put_item(Item={**derived_definition_key(base_arn, image), "arn": arn, "at": now_iso()})
        except ClientError as exc:
            if error_kind(exc) is not ErrorKind.THROTTLED:
                raise translate_client_error(exc, "writing the derived job definition cache") from exc
