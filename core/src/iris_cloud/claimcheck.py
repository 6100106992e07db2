"""The claim check: bodies over a broker's limit travel through an object store.

The pointer is the payload-offloading format of the AWS extended client
libraries (Java ``amazon-sqs-java-extended-client-lib``, Python
``amazon-sqs-python-extended-client-lib``): the body becomes
``["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": ..., "s3Key": ...}]``
and the ``ExtendedPayloadSize`` property carries the original size. One format
on every provider means a message offloaded by an extended client on SQS is
read here, and ours is read there.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING

from iris_cloud.errors import ConfigurationError, FieldError, ValidationError

if TYPE_CHECKING:
    from iris_cloud.ports import Message, ObjectStore

__all__ = ["POINTER_CLASS", "SIZE_PROPERTY", "is_claim_checked", "offload", "restore"]

POINTER_CLASS = "software.amazon.payloadoffloading.PayloadS3Pointer"
# The Java extended client 1.x wrote this class name; its pointers are still in flight.
LEGACY_POINTER_CLASS = "com.amazon.sqs.javamessaging.MessageS3Pointer"
SIZE_PROPERTY = "ExtendedPayloadSize"
# Older extended clients (before payload-offloading was split out) used this name.
LEGACY_SIZE_PROPERTY = "SQSLargePayloadSize"


def offload(message: Message, store: ObjectStore) -> Message:
    """Write ``message.body`` to ``store`` and return the message carrying the pointer."""
    key = str(uuid.uuid4())
    store.put(key, message.body, content_type=message.content_type or "application/octet-stream")
    pointer = json.dumps([POINTER_CLASS, {"s3BucketName": store.container, "s3Key": key}])
    properties = dict(message.properties)
    properties[SIZE_PROPERTY] = len(message.body)
    return replace(message, body=pointer.encode("utf-8"), properties=properties)


def is_claim_checked(message: Message) -> bool:
    """Whether ``message`` carries a claim-check pointer instead of its body."""
    return SIZE_PROPERTY in message.properties or LEGACY_SIZE_PROPERTY in message.properties


def restore(message: Message, store: ObjectStore) -> Message:
    """Fetch a claim-checked body back from ``store``; other messages pass unchanged."""
    if not is_claim_checked(message):
        return message
    try:
        kind, pointer = json.loads(message.body)
        bucket, key = pointer["s3BucketName"], pointer["s3Key"]
    except (ValueError, TypeError, KeyError) as exc:
        raise ValidationError(
            "claim-check pointer",
            [FieldError("body", "claim_check", f"not a {POINTER_CLASS} pointer")],
        ) from exc
    if kind not in (POINTER_CLASS, LEGACY_POINTER_CLASS):
        raise ValidationError(
            "claim-check pointer", [FieldError("body[0]", "claim_check", "unknown pointer class")]
        )
    if bucket != store.container:
        raise ConfigurationError(
            f"claim-check pointer names bucket {bucket!r} but the configured claim_check store "
            f"is {store.container!r}"
        )
    properties = {
        k: v
        for k, v in message.properties.items()
        if k not in (SIZE_PROPERTY, LEGACY_SIZE_PROPERTY)
    }
    return replace(message, body=store.get(key), properties=properties)
