"""SNS adapter: publish an operator notice. Needs ``sns:Publish`` on the topic (and ``kms:GenerateDataKey``
plus ``kms:Decrypt`` on the topic's key when the topic is encrypted with a customer managed key)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from stepspot.aws.errors import translate_client_error as translate

SUBJECT_LIMIT = 100  # SNS rejects longer subjects
MESSAGE_LIMIT = 200_000  # below SNS's 256 KiB, leaving room for attributes


class Notifier:
    def __init__(self, client: Any, topic_arn: str) -> None:
        self._sns = client
        self.topic_arn = topic_arn

    def publish(self, subject: str, message: str, attributes: Mapping[str, str] | None = None) -> str:
        """Publish one notice; returns the SNS message id."""
        clean_subject = " ".join(subject.split())[:SUBJECT_LIMIT]  # one line, printable, bounded
        body = message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 20] + "\n[truncated]"
        message_attributes = {
            key: {"DataType": "String", "StringValue": value} for key, value in (attributes or {}).items() if value
        }
        try:
            response = self._sns.publish(
                TopicArn=self.topic_arn,
                Subject=clean_subject,
                Message=body,
                MessageAttributes=message_attributes,
            )
        except ClientError as exc:
            raise translate(exc, f"calling sns:Publish to {self.topic_arn}") from exc
        return str(response["MessageId"])
