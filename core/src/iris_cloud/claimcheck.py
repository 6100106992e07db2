"""The claim check: bodies over a broker's limit travel through an object store.

The pointer is the payload-offloading format of the AWS extended client
libraries (Java ``amazon-sqs-java-extended-client-lib``, Python
``amazon-sqs-python-extended-client-lib``): the body becomes
``["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": ..., "s3Key": ...}]``
and the ``ExtendedPayloadSize`` property carries the original size. One format
on every provider means a message offloaded by an extended client on SQS is
read here, and ours is read there. ``s3Key`` is the object's full key in the
bucket: a store with a prefix (``s3://bucket/claims``) writes
``claims/<uuid>`` into the pointer, as the extended clients do.

A received pointer is the sender's, so it is validated before anything is
fetched (:func:`restore`): the bucket must be the claim-check store's (or one
of the ``sources`` explicitly allowed), the key a safe object name under the
store's prefix, the declared size within the cap; the payload is then
streamed and refused as soon as it passes the cap.

Both directions are written once as steps (:mod:`iris_cloud.steps`):
:func:`offload` / :func:`restore` run them on an
:class:`~iris_cloud.ports.ObjectStore`, :mod:`iris_cloud.aio` awaits the same
steps on an :class:`~iris_cloud.aio.AsyncObjectStore`.
"""

from __future__ import annotations

import json
import unicodedata
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol

from iris_cloud.errors import ConfigurationError, FieldError, ValidationError
from iris_cloud.messages import Message
from iris_cloud.objects import check_object_name
from iris_cloud.steps import Call, Steps, drive

__all__ = [
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "MAX_POINTER_BYTES",
    "POINTER_CLASS",
    "SIZE_PROPERTY",
    "PayloadStore",
    "is_claim_checked",
    "offload",
    "offload_steps",
    "restore",
    "restore_steps",
]


class PayloadStore(Protocol):
    """What the claim check uses of an :class:`iris_cloud.ports.ObjectStore` or
    :class:`iris_cloud.aio.AsyncObjectStore`.

    Structural, because the ports call the claim check: this module imports
    what both share (:mod:`iris_cloud.messages`, :mod:`iris_cloud.objects`),
    not the ports. The calls return what the store's kind returns (a stream
    or an awaitable of one); the steps hand them to the driver.
    """

    prefix: str

    @property
    def container(self) -> str: ...

    def put(self, name: str, data: bytes, *, content_type: str | None = None) -> object: ...

    def open_read(self, name: str) -> object: ...


POINTER_CLASS = "software.amazon.payloadoffloading.PayloadS3Pointer"
# The Java extended client 1.x wrote this class name; its pointers are still in flight.
LEGACY_POINTER_CLASS = "com.amazon.sqs.javamessaging.MessageS3Pointer"
SIZE_PROPERTY = "ExtendedPayloadSize"
# Older extended clients (before payload-offloading was split out) used this name.
LEGACY_SIZE_PROPERTY = "SQSLargePayloadSize"

DEFAULT_MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
"""Largest claim-checked payload fetched by default. IRIS's largest bodies are
results carrying base64 PDF reports, a few MiB at most; this leaves room
above them while a pointer to a huge object cannot exhaust a consumer."""
MAX_POINTER_BYTES = 4096
"""A pointer body longer than this is refused unparsed (ours are ~150 bytes)."""
MAX_KEY_BYTES = 1024
"""S3's (and GCS's) longest object key."""
_READ_CHUNK = 1024 * 1024
_RESERVED_SEGMENT = ".iris-cloud"


def _invalid(path: str, code: str, message: str) -> ValidationError:
    return ValidationError("claim-check pointer", [FieldError(path, code, message)])


def offload(message: Message, store: PayloadStore) -> Message:
    """Write ``message.body`` to ``store`` and return the message carrying the pointer."""
    return drive(offload_steps(message, store))


def offload_steps(message: Message, store: PayloadStore) -> Steps[Message]:
    """:func:`offload` as steps, for a sync or an async store."""
    name = str(uuid.uuid4())
    content_type = message.content_type or "application/octet-stream"
    yield Call(store.put, (name, message.body), {"content_type": content_type})
    pointer = json.dumps(
        [POINTER_CLASS, {"s3BucketName": store.container, "s3Key": store.prefix + name}]
    )
    properties = dict(message.properties)
    properties[SIZE_PROPERTY] = len(message.body)
    return replace(message, body=pointer.encode("utf-8"), properties=properties)


def is_claim_checked(message: Message) -> bool:
    """Whether ``message`` carries a claim-check pointer instead of its body."""
    return SIZE_PROPERTY in message.properties or LEGACY_SIZE_PROPERTY in message.properties


def _declared_size(message: Message, max_bytes: int) -> None:
    for name in (SIZE_PROPERTY, LEGACY_SIZE_PROPERTY):
        if name not in message.properties:
            continue
        value: Any = message.properties[name]
        if isinstance(value, str) and value.isascii() and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _invalid(f"properties.{name}", "size", "not a byte count")
        if value > max_bytes:
            raise _invalid(f"properties.{name}", "too_large", "over the claim-check size cap")


def _pointer(body: bytes) -> tuple[str, str]:
    """``(bucket, key)`` of a pointer body, or ValidationError (never the values)."""
    if len(body) > MAX_POINTER_BYTES:
        raise _invalid("body", "claim_check", "too long for a claim-check pointer")
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise _invalid("body", "claim_check", f"not a {POINTER_CLASS} pointer") from exc
    if not isinstance(parsed, list) or len(parsed) != 2 or not isinstance(parsed[1], dict):
        raise _invalid("body", "claim_check", f"not a {POINTER_CLASS} pointer")
    kind, fields = parsed
    if kind not in (POINTER_CLASS, LEGACY_POINTER_CLASS):
        raise _invalid("body[0]", "claim_check", "unknown pointer class")
    bucket, key = fields.get("s3BucketName"), fields.get("s3Key")
    if not isinstance(bucket, str) or not bucket:
        raise _invalid("body[1].s3BucketName", "claim_check", "not a bucket name")
    if not isinstance(key, str) or not key:
        raise _invalid("body[1].s3Key", "claim_check", "not an object key")
    return bucket, key


def _source(bucket: str, key: str, stores: Sequence[PayloadStore]) -> tuple[PayloadStore, str]:
    """The allowed store that holds ``bucket``/``key``, and the key's name inside it."""
    in_bucket = [s for s in stores if s.container == bucket]
    if not in_bucket:
        raise _invalid("body[1].s3BucketName", "not_allowed", "not the claim-check store")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise _invalid("body[1].s3Key", "claim_check", "longer than an object key can be")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in key):
        raise _invalid("body[1].s3Key", "claim_check", "control characters in the key")
    for store in in_bucket:
        if not key.startswith(store.prefix):
            continue
        name = key[len(store.prefix) :]
        try:
            check_object_name(name)
        except ConfigurationError as exc:
            raise _invalid("body[1].s3Key", "claim_check", "not a safe object name") from exc
        if _RESERVED_SEGMENT in name.split("/"):
            raise _invalid("body[1].s3Key", "claim_check", "a reserved name")
        return store, name
    raise _invalid("body[1].s3Key", "not_allowed", "outside the claim-check store's prefix")


def _read_capped(store: PayloadStore, name: str, max_bytes: int) -> Steps[bytes]:
    chunks: list[bytes] = []
    total = 0
    fh = yield Call(store.open_read, (name,))
    try:
        while True:
            chunk = yield Call(fh.read, (min(_READ_CHUNK, max_bytes + 1 - total),))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise _invalid("body[1].s3Key", "too_large", "payload over the claim-check cap")
    finally:
        yield Call(fh.close)
    return b"".join(chunks)


def restore(
    message: Message,
    store: PayloadStore,
    *,
    max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    sources: Sequence[PayloadStore] = (),
) -> Message:
    """Fetch a claim-checked body back from ``store``; other messages pass unchanged.

    The pointer is checked before anything is fetched; a bad one raises
    :class:`ValidationError` naming the field (``body[1].s3Key``, ...), never
    its value. ``sources`` are further stores a pointer may name (another
    sender's bucket you trust); ``max_bytes`` caps the payload, which is read
    in chunks and refused as soon as it passes the cap. Errors of the store
    itself (:class:`~iris_cloud.errors.NotFound`, ...) propagate.
    """
    return drive(restore_steps(message, store, max_bytes=max_bytes, sources=sources))


def restore_steps(
    message: Message,
    store: PayloadStore,
    *,
    max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    sources: Sequence[PayloadStore] = (),
) -> Steps[Message]:
    """:func:`restore` as steps, for sync or async stores."""
    if not is_claim_checked(message):
        return message
    _declared_size(message, max_bytes)
    bucket, key = _pointer(message.body)
    source, name = _source(bucket, key, [store, *sources])
    body = yield from _read_capped(source, name, max_bytes)
    properties = {
        k: v
        for k, v in message.properties.items()
        if k not in (SIZE_PROPERTY, LEGACY_SIZE_PROPERTY)
    }
    # Only a payload in our own store is ours to delete later; a source's is not.
    owned = name if source is store else None
    return replace(
        message,
        body=body,
        properties=properties,
        claim_check_name=owned,
        claim_check_fetched=True,
    )
