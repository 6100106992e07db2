"""What the sync and the async SQS brokers share: all of it but the client and the waits.

:class:`SqsCommon` holds the options, the wire format (body encoding,
headers and properties as message attributes, the attribute limit, FIFO
ids), the batching by wire size, the receive loop, the lock bookkeeping and
the dead-letter copy. Each call to SQS is a step (:mod:`iris_cloud.steps`)
on ``self._sqs``: a boto3 client driven by
:class:`~iris_cloud_aws.broker.SqsBroker`, an aiobotocore client awaited by
:class:`~iris_cloud_aws.aio.broker.AsyncSqsBroker`; both clients take the
same operations and arguments.
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self

from iris_cloud import portlogic
from iris_cloud.claimcheck import SIZE_PROPERTY, is_claim_checked, offload_steps
from iris_cloud.deadletters import REPLAY_PROPERTY
from iris_cloud.decoding import decode_each
from iris_cloud.errors import (
    ConfigurationError,
    CredentialsRejected,
    FieldError,
    IrisCloudError,
    LockLost,
    MessageTooLarge,
    PermissionDenied,
    Unavailable,
    ValidationError,
)
from iris_cloud.logs import get_logger
from iris_cloud.ports import Capabilities, Message
from iris_cloud.steps import Call, Steps
from iris_cloud.tracing import TRACE_PROPERTIES

from iris_cloud_aws._session import AwsSession, as_int, parse_endpoint
from iris_cloud_aws.errors import aws_errors, batch_entry_error
from iris_cloud_aws.options import BROKER_OPTIONS

__all__ = ["ATTRIBUTE_LIMIT", "SqsCommon", "queue_location"]

log = get_logger("iris_cloud_aws.broker")

ATTRIBUTE_LIMIT = 10
"""Message attributes SQS accepts per message."""
MAX_BATCH = 10
"""Entries per SendMessageBatch / ReceiveMessage call."""
MAX_WAIT = 20
"""Longest long poll SQS allows, in seconds."""
MAX_VISIBILITY = 43200
"""Longest visibility timeout SQS allows (12 hours)."""
MAX_DELAY = 900
"""Longest DelaySeconds SQS allows (15 minutes)."""
FALLBACK_MAX_MESSAGE_BYTES = 256 * 1024
"""Message size assumed when the credentials may not read the queue's attributes:
the smallest ``MaximumMessageSize`` default AWS has shipped, safe everywhere."""

# Our headers. They are attributes like any other and count against the limit.
ATTR_MESSAGE_ID = "iris_message_id"
ATTR_CORRELATION_ID = "iris_correlation_id"
ATTR_SUBJECT = "iris_subject"
ATTR_CONTENT_TYPE = "iris_content_type"
ATTR_BODY_ENCODING = "iris_body_encoding"
ATTR_OVERFLOW = "iris_overflow"
HEADER_ATTRIBUTES = frozenset(
    {
        ATTR_MESSAGE_ID,
        ATTR_CORRELATION_ID,
        ATTR_SUBJECT,
        ATTR_CONTENT_TYPE,
        ATTR_BODY_ENCODING,
        ATTR_OVERFLOW,
    }
)
_ATTRIBUTE_FIELDS = ("DataType", "StringValue", "BinaryValue")
# Dead-letter reason attributes, named as Service Bus names its properties.
ATTR_DL_REASON = "DeadLetterReason"
ATTR_DL_DESCRIPTION = "DeadLetterErrorDescription"
DESCRIPTION_LIMIT = 4096

# Properties that name the order a message belongs to (FIFO message group).
GROUP_PROPERTIES = ("OrderLocalId", "LocalId")
# Property whose value deduplicates a FIFO message (else our message id).
DEDUP_PROPERTY = "TransactionId"

# Characters an SQS body may contain; anything else goes base64-encoded.
# The boto3 / aiobotocore method of each settlement operation.
_SNAKE = {
    "DeleteMessage": "delete_message",
    "DeleteMessageBatch": "delete_message_batch",
    "ChangeMessageVisibility": "change_message_visibility",
    "ChangeMessageVisibilityBatch": "change_message_visibility_batch",
}

_SQS_INVALID = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_FIFO_ID_INVALID = re.compile(r"[^A-Za-z0-9!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~]")


@dataclass(frozen=True)
class _Handle:
    """What a received message needs for settlement: its queue and receipt handle."""

    queue_url: str
    receipt_handle: str
    message: dict[str, Any]


def _queue_of(handle: _Handle) -> str:
    return handle.queue_url


def _encode_property(value: Any) -> dict[str, str]:
    # bool before int: bool is an int subclass. Custom type labels
    # (``String.bool``, ``Number.float``) let us give back the Python type;
    # other SQS clients see a plain String / Number.
    if isinstance(value, bool):
        return {"DataType": "String.bool", "StringValue": "true" if value else "false"}
    if isinstance(value, int):
        return {"DataType": "Number", "StringValue": str(value)}
    if isinstance(value, float):
        if not math.isfinite(value):
            return {"DataType": "String.float", "StringValue": repr(value)}
        return {"DataType": "Number.float", "StringValue": repr(value)}
    return {"DataType": "String", "StringValue": str(value)}


def _decode_property(attr: Mapping[str, Any]) -> str | int | float | bool:
    kind = str(attr.get("DataType", "String"))
    if kind.startswith("Binary"):
        return base64.b64encode(attr.get("BinaryValue", b"")).decode("ascii")
    text = str(attr.get("StringValue", ""))
    if kind == "String.bool":
        return text == "true"
    if kind == "String.float":
        return float(text)
    if kind.startswith("Number"):
        if kind == "Number.float":
            return float(text)
        try:
            return int(text)
        except ValueError:
            return float(text)
    return text


def _spilled(attr: Mapping[str, Any]) -> str | int | float | bool:
    # A dead-lettered message may be one whose attributes did not decode:
    # what does not decode travels on as its text.
    try:
        return _decode_property(attr)
    except (ValueError, TypeError):
        return str(attr.get("StringValue", ""))


def _attributes_size(attrs: Mapping[str, Mapping[str, Any]]) -> int:
    # SQS counts attribute name, data type and value towards the message size.
    total = 0
    for name, attr in attrs.items():
        value = attr.get("StringValue")
        raw = value.encode("utf-8") if value is not None else attr.get("BinaryValue", b"")
        total += len(name.encode("utf-8")) + len(str(attr["DataType"])) + len(raw)
    return total


def queue_location(
    host: str, path: str, endpoint_url: str | None = None
) -> tuple[str | None, str | None, str | None]:
    """``(queue_url, queue_name, region)`` named by an ``awssqs://`` URL's host and path.

    Host and path form a queue URL (gocloud.dev style; ``http`` only when the
    ``endpoint_url`` is ``http``), with the region read from an AWS host; a
    bare host is a queue name.
    """
    path = path.strip("/")
    if not host:
        raise ConfigurationError("awssqs URL names no queue (awssqs://QUEUE_URL_OR_NAME)")
    if not path:
        return None, host, None
    scheme = "http" if str(endpoint_url or "").startswith("http://") else "https"
    match = re.fullmatch(r"sqs\.([a-z0-9-]+)\.amazonaws\.com(?::\d+)?", host)
    return f"{scheme}://{host}/{path}", None, match.group(1) if match else None


def _fifo_id(value: str) -> str:
    # Group and deduplication ids: at most 128 printable ASCII characters.
    return _FIFO_ID_INVALID.sub("_", value)[:128] or "_"


class SqsCommon(ABC):
    """The shared half of ``SqsBroker`` and ``AsyncSqsBroker``: one SQS queue.

    Standard or FIFO, with peek-lock via the visibility timeout.

    Options (URL query or keyword; credentials keyword only):
    ``region``, ``endpoint_url``, ``aws_access_key_id``, ``aws_secret_access_key``,
    ``aws_session_token``, ``profile_name``, ``session`` (a boto3 Session),
    ``lock_seconds`` (visibility timeout set on receive and by ``renew_lock``;
    default: the queue's), ``dead_letter_queue`` (URL or name; default: the
    redrive policy's target), ``queue_owner`` (account id for name lookup),
    ``max_message_bytes`` (only when the credentials may not read the queue's
    attributes), ``send_retries`` (retries of transiently failed batch entries,
    default 3), ``group_property`` (FIFO group id property; default
    ``OrderLocalId`` then ``LocalId``), ``claim_check`` (an object store).

    A subclass sets ``self._sqs`` before it drives a step and names the store
    class a ``claim_check`` must be in :attr:`store_class`.
    """

    store_class: ClassVar[type[Any]]
    """``ObjectStore`` or ``AsyncObjectStore``: what ``claim_check`` must be."""

    scheme: ClassVar[str] = "awssqs"
    messaging_system: ClassVar[str] = "aws_sqs"
    capabilities: Capabilities = Capabilities(
        max_message_bytes=FALLBACK_MAX_MESSAGE_BYTES,
        max_batch=MAX_BATCH,
        max_batch_bytes=FALLBACK_MAX_MESSAGE_BYTES,
        delayed_retry=True,
        lock_renewal=True,
        delivery_count_exact=False,
        completes_for_all=True,
        batch_settle=True,
    )

    def __init__(
        self,
        session: AwsSession,
        *,
        queue_url: str | None = None,
        queue_name: str | None = None,
        queue_owner: str | None = None,
        lock_seconds: int | None = None,
        dead_letter_queue: str | None = None,
        max_message_bytes: int | None = None,
        send_retries: int = 3,
        group_property: str | None = None,
        claim_check: Any = None,
    ) -> None:
        """Open a queue given by URL or by name (one of ``queue_url`` / ``queue_name``).

        Nothing is asked of SQS yet: :meth:`_setup_steps` does that.
        """
        super().__init__(claim_check=claim_check)  # type: ignore[call-arg]
        if lock_seconds is not None and not 0 <= lock_seconds <= MAX_VISIBILITY:
            raise ConfigurationError(f"lock_seconds must be between 0 and {MAX_VISIBILITY}")
        if not (queue_url or queue_name):
            raise ConfigurationError("SqsBroker needs a queue_url or a queue_name")
        self._aws = session
        self._sqs: Any = None
        # A long poll must end before the read timeout does, or every idle
        # receive would be taken for a dead connection.
        self._max_wait = max(0, min(MAX_WAIT, math.floor(session.read_timeout) - 2))
        self._lock_seconds = lock_seconds
        self._send_retries = max(0, send_retries)
        self._group_properties = (group_property,) if group_property else GROUP_PROPERTIES
        self._name = (queue_url or queue_name or "").rstrip("/").rsplit("/", 1)[-1]
        self.queue_url = queue_url or ""
        self._queue_name = queue_name
        self._queue_owner = queue_owner
        self.fifo = self._name.endswith(".fifo")
        self._dlq_option = dead_letter_queue
        self._dlq_url: str | None = None
        self._max_message_bytes = max_message_bytes
        self._visibility = 30
        self._redrive_target: str | None = None
        self._limit = max_message_bytes or FALLBACK_MAX_MESSAGE_BYTES

    def _setup_steps(self) -> Steps[None]:
        """Resolve the queue's URL and read its limits, visibility and redrive policy."""
        if not self.queue_url:
            self.queue_url = yield from self._resolve_steps(
                self._queue_name or "", self._queue_owner
            )
        attrs = yield from self._queue_attributes_steps()
        self._visibility = int(attrs.get("VisibilityTimeout", 30))
        redrive = json.loads(attrs["RedrivePolicy"]) if attrs.get("RedrivePolicy") else None
        self._redrive_target = redrive.get("deadLetterTargetArn") if redrive else None
        limit = self._max_message_bytes or int(attrs.get("MaximumMessageSize", 0)) or None
        if limit is None:
            limit = FALLBACK_MAX_MESSAGE_BYTES
        self._limit = limit
        self.capabilities = replace(
            type(self).capabilities,
            max_message_bytes=limit,
            max_batch_bytes=limit,
            native_dead_letter=bool(self._redrive_target or self._dlq_option),
            max_delivery_count=int(redrive["maxReceiveCount"]) if redrive else None,
        )

    # -- construction ----------------------------------------------------------
    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Open ``awssqs://QUEUE_URL_OR_NAME?region=...&endpoint_url=...`` (see module doc)."""
        parts, opts = parse_endpoint(url, cls.scheme, BROKER_OPTIONS, options)
        queue_url, queue_name, region = queue_location(
            parts.netloc, parts.path, opts.get("endpoint_url")
        )
        lock = opts.get("lock_seconds")
        try:
            lock_seconds = None if lock in (None, "") else math.ceil(float(lock))
        except (TypeError, ValueError):
            raise ConfigurationError("option lock_seconds must be a number of seconds") from None
        claim_check = opts.get("claim_check")
        if claim_check is not None and not isinstance(claim_check, cls.store_class):
            raise ConfigurationError(f"option claim_check must be an {cls.store_class.__name__}")
        return cls(
            cls.session_class.from_options(opts, region=region),
            queue_url=queue_url,
            queue_name=queue_name,
            queue_owner=opts.get("queue_owner") or None,
            lock_seconds=lock_seconds,
            dead_letter_queue=opts.get("dead_letter_queue") or None,
            max_message_bytes=as_int(opts, "max_message_bytes", None),
            send_retries=as_int(opts, "send_retries", 3) or 0,
            group_property=opts.get("group_property") or None,
            claim_check=claim_check,
        )

    session_class: ClassVar[type[AwsSession]] = AwsSession
    """The session type :meth:`from_url` builds from the options."""

    def _resolve_steps(self, name: str, owner: str | None) -> Steps[str]:
        if not name:
            raise ConfigurationError("SqsBroker needs a queue_url or a queue_name")
        if name.startswith(("https://", "http://")):
            return name
        kwargs: dict[str, str] = {"QueueName": name}
        if owner:
            kwargs["QueueOwnerAWSAccountId"] = owner
        try:
            with aws_errors("GetQueueUrl", f"queue {name}"):
                resp = yield Call(self._sqs.get_queue_url, (), kwargs)
                return str(resp["QueueUrl"])
        except CredentialsRejected:
            raise  # no URL form helps keys the service does not accept
        except PermissionDenied as exc:
            raise PermissionDenied(
                f"{exc} - with send-only or receive-only credentials, give the full queue URL "
                "(awssqs://sqs.REGION.amazonaws.com/ACCOUNT/NAME) instead of the queue name",
                right=exc.right,
            ) from exc.__cause__

    def _queue_attributes_steps(self) -> Steps[dict[str, str]]:
        # Capabilities come from the queue itself. Send-only credentials may
        # not read them: then the safe fallback limit applies (or the
        # max_message_bytes option) and a redrive policy stays unknown.
        try:
            with aws_errors("GetQueueAttributes", self._target):
                resp = yield Call(
                    self._sqs.get_queue_attributes,
                    (),
                    {
                        "QueueUrl": self.queue_url,
                        "AttributeNames": [
                            "MaximumMessageSize",
                            "VisibilityTimeout",
                            "RedrivePolicy",
                        ],
                    },
                )
        except CredentialsRejected:
            raise  # bad keys are reported at once, not taken for a missing right
        except PermissionDenied:
            log.info("no right to read the attributes of %s; assuming defaults", self._target)
            return {}
        return dict(resp.get("Attributes", {}))

    @property
    def destination(self) -> str:
        """The queue's name."""
        return self._name

    @property
    def _target(self) -> str:
        return f"queue {self._name}"

    def __repr__(self) -> str:
        where = self.queue_url or self._name
        return f"{type(self).__name__}(queue_url={where!r}, session={self._aws!r})"

    # -- rights ------------------------------------------------------------------
    def _verify_steps(self, right: str) -> Steps[bool]:
        """Ask SQS with a request it refuses only after checking the credentials and the right.

        Send: SendMessage with an empty body and DelaySeconds 901 (a body of at
        least one character and delays of 0-900 s are required); receive:
        ReceiveMessage for 0 messages (1-10 are allowed). SQS answers a
        refused right with AccessDenied and bad keys with InvalidClientTokenId
        or SignatureDoesNotMatch; a parameter error means both passed. Nothing
        is sent or taken. See :meth:`MessageBroker.verify`.
        """
        portlogic.check_right(right)
        try:
            if right == "send":
                with aws_errors("SendMessage", self._target):
                    yield Call(
                        self._sqs.send_message,
                        (),
                        {
                            "QueueUrl": self.queue_url,
                            "MessageBody": "",
                            "DelaySeconds": MAX_DELAY + 1,
                        },
                    )
            else:
                with aws_errors("ReceiveMessage", self._target):
                    yield Call(
                        self._sqs.receive_message,
                        (),
                        {"QueueUrl": self.queue_url, "MaxNumberOfMessages": 0},
                    )
        except ValidationError:
            return True
        # The service accepted a request it documents as invalid: it cannot be trusted here.
        log.warning("SQS accepted an invalid %s request on %s", right, self._target)
        return False

    # -- sending -----------------------------------------------------------------
    def _prepare_steps(self, msg: Message) -> Steps[Message]:
        # The core checks body + properties against max_message_bytes; SQS
        # also counts our header attributes and base64 inflates binary bodies,
        # so the exact wire size decides here. The attribute limit is checked
        # before anything is offloaded, so a refused message leaves no object.
        if not msg.message_id:
            msg = replace(msg, message_id=uuid.uuid4().hex)
        body, encoding = self._encode_body(msg.body)
        attrs = self._attributes(msg, encoding)
        wire = len(body.encode("utf-8")) + _attributes_size(attrs)
        if wire <= self._limit and msg.size <= self.capabilities.max_message_bytes:
            return msg
        if self.claim_check is None:
            raise MessageTooLarge(
                f"message {msg.message_id} is {wire} bytes on the wire (body and attributes), "
                f"over {self._target}'s limit of {self._limit}; configure a claim_check store"
            )
        needed = len(self._attributes(msg, encoding, reserve=1)) + 1
        if needed > ATTRIBUTE_LIMIT:
            raise ConfigurationError(
                f"message {msg.message_id} goes through the claim check, whose {SIZE_PROPERTY} "
                f"attribute makes {needed}; SQS allows {ATTRIBUTE_LIMIT} message "
                "attributes"
            )
        msg = yield from portlogic.prepare_steps(self, msg)  # type: ignore[arg-type]
        if is_claim_checked(msg):
            return msg
        return (yield from offload_steps(msg, self.claim_check))

    @staticmethod
    def _encode_body(body: bytes) -> tuple[str, str | None]:
        """The SQS body text for ``body`` and how it is encoded (None: as UTF-8 text).

        SQS bodies are Unicode text of at least one character from a limited
        set: other bytes travel base64-encoded, an empty body as a marker.
        """
        if not body:
            return "-", "empty"
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(body).decode("ascii"), "base64"
        if _SQS_INVALID.search(text):
            return base64.b64encode(body).decode("ascii"), "base64"
        return text, None

    @staticmethod
    def _decode_body(text: str, encoding: str | None) -> bytes:
        if encoding == "empty":
            return b""
        if encoding == "base64":
            # Strict: a body that is not base64 is refused, not silently mangled.
            return base64.b64decode(text, validate=True)
        if encoding is not None:
            raise ValueError("unknown iris_body_encoding")
        return text.encode("utf-8")

    def _attributes(
        self, msg: Message, encoding: str | None, reserve: int = 0
    ) -> dict[str, dict[str, str]]:
        """The SQS attributes of ``msg``, leaving ``reserve`` of the 10 free.

        The trace context is the one thing left out to make room (tracestate
        first): a message is never refused for its trace.
        """
        attrs: dict[str, dict[str, str]] = {
            ATTR_MESSAGE_ID: {"DataType": "String", "StringValue": msg.message_id}
        }
        headers = {
            ATTR_CORRELATION_ID: msg.correlation_id,
            ATTR_SUBJECT: msg.subject,
            ATTR_CONTENT_TYPE: msg.content_type,
            ATTR_BODY_ENCODING: encoding,
        }
        for name, header in headers.items():
            if header is not None:
                attrs[name] = {"DataType": "String", "StringValue": header}
        for key, value in msg.properties.items():
            if key in HEADER_ATTRIBUTES:
                raise ConfigurationError(f"property name {key!r} is reserved by the SQS provider")
            attrs[key] = _encode_property(value)
        for key in reversed(TRACE_PROPERTIES):
            if len(attrs) + reserve > ATTRIBUTE_LIMIT and attrs.pop(key, None) is not None:
                log.debug("message %s sent without its %s: no room", msg.message_id, key)
        if len(attrs) > ATTRIBUTE_LIMIT:
            raise ConfigurationError(
                f"message {msg.message_id} needs {len(attrs)} SQS message attributes; SQS allows "
                f"{ATTRIBUTE_LIMIT} (its {len(msg.properties)} properties plus "
                f"{len(attrs) - len(msg.properties)} for message id and headers; a claim-checked "
                f"message also carries {SIZE_PROPERTY})"
            )
        return attrs

    def _entry(self, index: int, msg: Message) -> dict[str, Any]:
        body, encoding = self._encode_body(msg.body)
        entry: dict[str, Any] = {
            "Id": str(index),
            "MessageBody": body,
            "MessageAttributes": self._attributes(msg, encoding),
        }
        if self.fifo:
            group = next(
                (str(msg.properties[p]) for p in self._group_properties if p in msg.properties),
                msg.correlation_id or "iris",
            )
            dedup = str(msg.properties.get(DEDUP_PROPERTY) or msg.message_id)
            if REPLAY_PROPERTY in msg.properties:
                # A dead letter sent back: SQS would drop it as a duplicate of
                # the original for five minutes, and the dead letter be lost.
                # The replay id first: the id is cut at 128 characters.
                dedup = f"{msg.properties[REPLAY_PROPERTY]}:{dedup}"
            entry["MessageGroupId"] = _fifo_id(group)
            entry["MessageDeduplicationId"] = _fifo_id(dedup)
        return entry

    def _send_batch_steps(self, batch: list[Message]) -> Steps[None]:
        entries = {str(i): self._entry(i, m) for i, m in enumerate(batch)}
        by_id = {str(i): m for i, m in enumerate(batch)}
        # The core batches by its size estimate; our headers add bytes, so a
        # batch the core filled to the limit may need one more split.
        for chunk in self._split(list(entries.values())):
            yield from self._send_entries_steps(chunk, by_id)

    def _split(self, entries: list[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
        chunk: list[dict[str, Any]] = []
        used = 0
        for entry in entries:
            size = len(entry["MessageBody"].encode("utf-8")) + _attributes_size(
                entry["MessageAttributes"]
            )
            if chunk and used + size > self._limit:
                yield chunk
                chunk, used = [], 0
            chunk.append(entry)
            used += size
        if chunk:
            yield chunk

    def _send_entries_steps(
        self, entries: list[dict[str, Any]], by_id: dict[str, Message]
    ) -> Steps[None]:
        # Entries that fail on the service's side are retried; entries the
        # service refuses (SenderFault) are reported. Nothing is dropped: if
        # any entry did not go out, an error naming it is raised after the
        # others were sent.
        if len(entries) == 1:
            # One message: SendMessage. Same effect and cost; and it is what
            # an IAM policy names (moto checks batches as sqs:SendMessageBatch,
            # an action AWS does not have). Failures raise; botocore retries
            # the transient ones.
            entry = {k: v for k, v in entries[0].items() if k != "Id"}
            with aws_errors("SendMessage", self._target):
                yield Call(self._sqs.send_message, (), {"QueueUrl": self.queue_url, **entry})
            return
        rejected: list[FieldError] = []
        pending = entries
        for attempt in range(self._send_retries + 1):
            if attempt:
                yield Call(self._sleep, (min(0.2 * 2**attempt, 2.0),))
            with aws_errors("SendMessageBatch", self._target):
                resp = yield Call(
                    self._sqs.send_message_batch,
                    (),
                    {"QueueUrl": self.queue_url, "Entries": pending},
                )
            failed = resp.get("Failed", [])
            retry_ids = set()
            for f in failed:
                msg_id = by_id[f["Id"]].message_id
                if f.get("SenderFault"):
                    rejected.append(FieldError(msg_id, str(f.get("Code")), "refused by SQS"))
                else:
                    retry_ids.add(f["Id"])
            pending = [e for e in pending if e["Id"] in retry_ids]
            if not pending:
                break
        if rejected:
            raise ValidationError(
                f"SQS refused {len(rejected)} message(s) sent to {self._target}; the rest of "
                "their batch was sent, later batches were not",
                rejected,
            )
        if pending:
            ids = ", ".join(by_id[e["Id"]].message_id for e in pending)
            raise Unavailable(
                f"SQS failed {len(pending)} message(s) to {self._target} after "
                f"{self._send_retries} retries: {ids}; the rest of their batch was sent, later "
                "batches were not"
            )

    # -- receiving -------------------------------------------------------------
    @staticmethod
    @abstractmethod
    def _sleep(seconds: float) -> object:
        """Wait ``seconds`` between retries (``time.sleep`` or ``asyncio.sleep``)."""

    def _receive_steps(self, max_messages: int, wait: float) -> Steps[list[Message]]:
        return (yield from self._receive_from_steps(self.queue_url, max_messages, wait))

    def _receive_from_steps(
        self, queue_url: str, max_messages: int, wait: float
    ) -> Steps[list[Message]]:
        if max_messages < 1:
            return []
        deadline = time.monotonic() + max(0.0, wait)
        out: list[Message] = []
        while len(out) < max_messages:
            remaining = deadline - time.monotonic()
            # Long poll only while nothing has arrived: once we hold messages,
            # top up without waiting. WaitTimeSeconds is whole seconds.
            wait_s = 0 if out or remaining <= 0 else min(self._max_wait, math.ceil(remaining))
            asked = min(MAX_BATCH, max_messages - len(out))
            kwargs: dict[str, Any] = {
                "QueueUrl": queue_url,
                "MaxNumberOfMessages": asked,
                "WaitTimeSeconds": wait_s,
                "MessageSystemAttributeNames": [
                    "ApproximateReceiveCount",
                    "SentTimestamp",
                    "MessageGroupId",
                ],
                "MessageAttributeNames": ["All"],
            }
            if self._lock_seconds is not None:
                kwargs["VisibilityTimeout"] = self._lock_seconds
            with aws_errors("ReceiveMessage", self._target):
                resp = yield Call(self._sqs.receive_message, (), kwargs)
            now = datetime.now(UTC)
            got = resp.get("Messages", [])
            out.extend(
                decode_each(
                    got,
                    lambda m, at=now: self._decode(queue_url, m, at),
                    lambda m, at=now: self._shell(queue_url, m, at),
                )
            )
            if not got:
                if out or time.monotonic() >= deadline:
                    break
            elif len(got) < asked:
                break
        return out

    def _decode(self, queue_url: str, raw: dict[str, Any], now: datetime) -> Message:
        attrs: dict[str, Any] = dict(raw.get("MessageAttributes") or {})
        system = raw.get("Attributes") or {}

        def header(name: str) -> str | None:
            attr = attrs.pop(name, None)
            return None if attr is None else str(attr.get("StringValue", ""))

        message_id = header(ATTR_MESSAGE_ID) or str(raw.get("MessageId", ""))
        correlation_id = header(ATTR_CORRELATION_ID)
        subject = header(ATTR_SUBJECT)
        content_type = header(ATTR_CONTENT_TYPE)
        encoding = header(ATTR_BODY_ENCODING)
        overflow = header(ATTR_OVERFLOW)
        reason = header(ATTR_DL_REASON)
        description = header(ATTR_DL_DESCRIPTION)
        body_text = str(raw.get("Body", ""))
        body = self._decode_body(body_text, encoding)
        properties = {name: _decode_property(a) for name, a in attrs.items()}
        if overflow:
            properties.update(json.loads(overflow))
        sent = system.get("SentTimestamp")
        lock = self._lock()
        return Message(
            body=body,
            message_id=message_id,
            correlation_id=correlation_id,
            content_type=content_type,
            subject=subject,
            properties=properties,
            delivery_count=int(system.get("ApproximateReceiveCount", 1)),
            enqueued_at=datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None,
            lock_token=str(raw["ReceiptHandle"]),
            locked_until=now + timedelta(seconds=lock),
            dead_letter_reason=reason,
            dead_letter_description=description,
            raw=_Handle(queue_url, str(raw["ReceiptHandle"]), raw),
        )

    def _held(self, message: Message, action: str) -> _Handle:
        """The message's handle, if its lock has not run out as far as we know.

        SQS accepts a receipt handle after its visibility timeout ran out (and
        moto accepts one the message's next receive made stale), so a delete
        with it can remove the copy another consumer now holds. The lock's end
        is known here (set at receive, moved by each renewal): past it, raise
        :class:`LockLost` without calling SQS.
        """
        handle = self._handle(message)
        until = message.locked_until
        if until is not None and isinstance(message.raw, _Handle) and until <= datetime.now(UTC):
            raise LockLost(
                f"cannot {action} message {message.message_id}: its visibility timeout ran "
                "out, so its receipt handle may be stale; it will be delivered again"
            )
        return handle

    def _shell(self, queue_url: str, raw: dict[str, Any], now: datetime) -> Message:
        # What settles (and, in the dead-letter queue, explains) a message
        # that did not decode: SQS's own fields and our reason attributes.
        attrs = raw.get("MessageAttributes") or {}

        def text(name: str) -> str | None:
            value = (attrs.get(name) or {}).get("StringValue")
            return value if isinstance(value, str) else None

        receipt = str(raw["ReceiptHandle"])
        return Message(
            body=b"",
            message_id=str(raw.get("MessageId", "")),
            lock_token=receipt,
            # As for a decoded message: settling past it would use a stale handle.
            locked_until=now + timedelta(seconds=self._lock()),
            dead_letter_reason=text(ATTR_DL_REASON),
            dead_letter_description=text(ATTR_DL_DESCRIPTION),
            raw=_Handle(queue_url, receipt, raw),
        )

    def _lock(self) -> int:
        """Seconds a received message stays locked: ``lock_seconds``, else the queue's."""
        return self._lock_seconds if self._lock_seconds is not None else self._visibility

    def _handle(self, message: Message) -> _Handle:
        if isinstance(message.raw, _Handle):
            return message.raw
        if message.lock_token:
            return _Handle(self.queue_url, message.lock_token, {})
        raise ConfigurationError("message was not received from SQS (no receipt handle)")

    # -- settlement ----------------------------------------------------------------
    def _complete_steps(self, message: Message) -> Steps[None]:
        """Delete ``message`` from its queue (DeleteMessage); LockLost once its lock ran out."""
        portlogic.raise_outcome((yield from self._complete_many_steps([message])))

    def _complete_many_steps(self, messages: list[Message]) -> Steps[list[IrisCloudError | None]]:
        """Delete several messages, 10 per DeleteMessageBatch; one outcome each (see the port)."""
        outcomes = yield from self._settle_many_steps(messages, "complete", "DeleteMessage", {})
        return (yield from portlogic.completed_many_steps(self, messages, outcomes))  # type: ignore[arg-type]

    def _abandon_steps(self, message: Message, delay: float | None) -> Steps[None]:
        """Make ``message`` visible again now, or after ``delay`` seconds (whole, <= 12 h)."""
        portlogic.raise_outcome((yield from self._abandon_many_steps([message], delay)))

    def _abandon_many_steps(
        self, messages: list[Message], delay: float | None
    ) -> Steps[list[IrisCloudError | None]]:
        """Make several messages visible again, 10 per ChangeMessageVisibilityBatch call."""
        seconds = min(MAX_VISIBILITY, max(0, math.ceil(delay or 0)))
        params = {"VisibilityTimeout": seconds}
        return (
            yield from self._settle_many_steps(
                messages, "abandon", "ChangeMessageVisibility", params
            )
        )

    def _renew_steps(self, message: Message) -> Steps[datetime]:
        """Extend the visibility timeout by ``lock_seconds`` (or the queue's) from now."""
        seconds = self._lock()
        params = {"VisibilityTimeout": seconds}
        portlogic.raise_outcome(
            (
                yield from self._settle_many_steps(
                    [message], "renew the lock of", "ChangeMessageVisibility", params
                )
            )
        )
        until = datetime.now(UTC) + timedelta(seconds=seconds)
        message.locked_until = until
        return until

    def _settle_many_steps(
        self, messages: list[Message], action: str, operation: str, params: dict[str, Any]
    ) -> Steps[list[IrisCloudError | None]]:
        """``operation`` on each message, batched by queue in tens; one outcome each.

        A message whose lock ran out fails here without a call (see :meth:`_held`);
        a call that fails as a whole fails its entries; the entries SQS refuses
        fail alone, mapped as a single call's error would be.
        """
        outcomes, by_queue = portlogic.held_by(messages, lambda m: self._held(m, action), _queue_of)
        for queue_url, held in by_queue.items():
            for start in range(0, len(held), MAX_BATCH):
                chunk = held[start : start + MAX_BATCH]
                try:
                    failed = yield from self._settle_chunk_steps(
                        queue_url, chunk, operation, params
                    )
                except IrisCloudError as exc:
                    for index, _ in chunk:
                        outcomes[index] = exc
                    continue
                for index, error in failed.items():
                    outcomes[index] = error
        return outcomes

    def _settle_chunk_steps(
        self,
        queue_url: str,
        chunk: list[tuple[int, _Handle]],
        operation: str,
        params: dict[str, Any],
    ) -> Steps[dict[int, IrisCloudError]]:
        """One call for up to 10 held messages; the errors of the entries that failed."""
        if len(chunk) == 1:
            # The single call: same effect, and what an IAM policy names.
            kwargs = {"QueueUrl": queue_url, "ReceiptHandle": chunk[0][1].receipt_handle, **params}
            with aws_errors(operation, self._target):
                yield Call(getattr(self._sqs, _SNAKE[operation]), (), kwargs)
            return {}
        batch_operation = f"{operation}Batch"
        entries = [
            {"Id": str(index), "ReceiptHandle": handle.receipt_handle, **params}
            for index, handle in chunk
        ]
        call = getattr(self._sqs, _SNAKE[batch_operation])
        with aws_errors(batch_operation, self._target):
            resp = yield Call(call, (), {"QueueUrl": queue_url, "Entries": entries})
        return {
            int(f["Id"]): batch_entry_error(f, batch_operation, self._target)
            for f in resp.get("Failed", [])
        }

    # -- dead letters --------------------------------------------------------------
    def _dead_letter_url_steps(self) -> Steps[str]:
        if self._dlq_url is None:
            if self._dlq_option:
                self._dlq_url = yield from self._resolve_steps(self._dlq_option, None)
            elif self._redrive_target:
                # arn:aws:sqs:REGION:ACCOUNT:NAME -> the queue's URL.
                _, _, _, _, account, name = self._redrive_target.split(":", 5)
                self._dlq_url = yield from self._resolve_steps(name, account)
            else:
                raise ConfigurationError(
                    f"{self._target} has no redrive policy and no dead_letter_queue option: "
                    "there is nowhere to dead-letter to"
                )
        return self._dlq_url

    def _dead_letter_steps(self, message: Message, reason: str, description: str) -> Steps[None]:
        """Send ``message`` as received to the dead-letter queue with the reason, then delete it.

        The copy keeps the body and attributes as they were on the wire (a
        claim-checked message keeps its pointer) and adds ``DeadLetterReason``
        and ``DeadLetterErrorDescription``. Where that would pass SQS's 10
        attributes, the properties that do not fit travel as JSON in
        ``iris_overflow`` and are restored on receipt.
        """
        handle = self._held(message, "dead-letter")
        raw = handle.message
        if raw:
            body = str(raw.get("Body", ""))
            attrs: dict[str, dict[str, Any]] = {
                k: {kk: vv for kk, vv in v.items() if kk in _ATTRIBUTE_FIELDS}
                for k, v in (raw.get("MessageAttributes") or {}).items()
                if k not in (ATTR_DL_REASON, ATTR_DL_DESCRIPTION)
            }
        else:
            body, encoding = self._encode_body(message.body)
            attrs = self._attributes(message, encoding)
        extra = {ATTR_DL_REASON: {"DataType": "String", "StringValue": reason or "unspecified"}}
        if description:
            extra[ATTR_DL_DESCRIPTION] = {
                "DataType": "String",
                "StringValue": description[:DESCRIPTION_LIMIT],
            }
        room = ATTRIBUTE_LIMIT - len(extra)
        if len(attrs) > room:
            # Headers first, then properties in order, then the rest as JSON.
            ordered = sorted(attrs, key=lambda k: (k not in HEADER_ATTRIBUTES, k))
            keep, spill = ordered[: room - 1], ordered[room - 1 :]
            overflow = {k: _spilled(attrs[k]) for k in spill}
            attrs = {k: attrs[k] for k in keep}
            attrs[ATTR_OVERFLOW] = {"DataType": "String", "StringValue": json.dumps(overflow)}
        attrs.update(extra)
        dlq = yield from self._dead_letter_url_steps()
        kwargs: dict[str, Any] = {"QueueUrl": dlq, "MessageBody": body, "MessageAttributes": attrs}
        if dlq.endswith(".fifo"):
            system = raw.get("Attributes") or {} if raw else {}
            kwargs["MessageGroupId"] = system.get("MessageGroupId") or _fifo_id(
                message.correlation_id or "iris"
            )
            kwargs["MessageDeduplicationId"] = _fifo_id(
                f"dl-{raw.get('MessageId') if raw else message.message_id}"
            )
        with aws_errors("SendMessage", f"dead-letter queue {dlq.rsplit('/', 1)[-1]}"):
            yield Call(self._sqs.send_message, (), kwargs)
        yield from self._complete_steps(message)

    def _dead_letters_steps(self, max_messages: int, wait: float) -> Steps[list[Message]]:
        url = yield from self._dead_letter_url_steps()
        return (yield from self._receive_from_steps(url, max_messages, wait))
