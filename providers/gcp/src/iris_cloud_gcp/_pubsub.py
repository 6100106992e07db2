"""What the sync and the async Pub/Sub brokers share: all of it but the clients.

:class:`PubSubCommon` holds the URL and options, the wire mapping (ids,
headers and typed properties as attributes), the subscription's ack
deadline and dead-letter policy, the pull loop, delivery counting, the
settlements, the dead-letter copy, and how failed publishes are reported.
Each call to Pub/Sub is a step (:mod:`iris_cloud.steps`): the sync broker
drives them with ``google.cloud.pubsub_v1``'s clients, the async one awaits
the generated ``PublisherAsyncClient`` / ``SubscriberAsyncClient``, whose
methods take the same arguments. Publishing is the one call the two do
differently (the sync library batches behind futures), each in its class.
"""

from __future__ import annotations

import json
import math
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Self
from urllib.parse import urlsplit

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import pubsub_v1
from iris_cloud import portlogic
from iris_cloud.decoding import decode_each
from iris_cloud.errors import ConfigurationError, IrisCloudError, LockLost, NotFound
from iris_cloud.ports import Capabilities, Message
from iris_cloud.steps import Call, Steps

from iris_cloud_gcp._clients import (
    KEEPALIVE_SECONDS,
    GoogleAuth,
    merge_query,
    pubsub_emulator_host,
    resolve_auth,
)
from iris_cloud_gcp.errors import IAM_PERMISSIONS, gcp_errors
from iris_cloud_gcp.options import BROKER_OPTIONS

__all__ = [
    "MAX_MESSAGE_BYTES",
    "SERVER_REQUEST_LIMIT",
    "PubSubCommon",
    "decode_message",
    "encode_attributes",
    "raise_publish_failures",
]

SERVER_REQUEST_LIMIT = 10_000_000
"""Pub/Sub's limit on one publish request (data, attributes and framing)."""
HEADER_RESERVE = 16 * 1024
"""Room kept for our header attributes (ids, subject, types) and protobuf framing."""
MAX_MESSAGE_BYTES = SERVER_REQUEST_LIMIT - HEADER_RESERVE
"""Largest body plus properties sent as a plain message; larger ones need the claim check."""
MAX_ACK_DEADLINE = 600
"""Pub/Sub's longest ack deadline, in seconds."""
ATTRIBUTE_VALUE_LIMIT = 1024
"""Pub/Sub's limit on one attribute value, in bytes."""

A_ID = "iris-message-id"
A_CORRELATION = "iris-correlation-id"
A_SUBJECT = "iris-subject"
A_CONTENT_TYPE = "iris-content-type"
A_TYPES = "iris-types"
A_REASON = "iris-dead-letter-reason"
A_DESCRIPTION = "iris-dead-letter-description"
A_ESCAPE = "iris-attr-"
# Attributes Pub/Sub adds when its dead-letter policy forwards a message.
A_SOURCE_COUNT = "CloudPubSubDeadLetterSourceDeliveryCount"
A_SOURCE_SUBSCRIPTION = "CloudPubSubDeadLetterSourceSubscription"
# Keyword names of PublisherClient.publish that an attribute cannot take.
_PUBLISH_KWARGS = frozenset({"topic", "data", "ordering_key", "retry", "timeout"})
_HEADERS = frozenset({A_ID, A_CORRELATION, A_SUBJECT, A_CONTENT_TYPE, A_TYPES})

ACK_IDS_PER_CALL = 1000
"""Ack ids per acknowledge / modify_ack_deadline call: what Google's own subscriber
client sends in one request (``_ACK_IDS_BATCH_SIZE``)."""
DEFAULT_LOCK_SECONDS = 10
"""Pub/Sub's default ack deadline, assumed when the subscription cannot be read."""
MIN_PULL_SECONDS = 0.5
"""Shortest pull deadline: ``receive(wait=0)`` still lets the service answer."""
_SEEN_LIMIT = 10_000


@dataclass(frozen=True)
class _Receipt:
    """What settling a received message needs (``Message.raw``)."""

    subscription: str
    ack_id: str
    data: bytes
    attributes: Mapping[str, str]
    pubsub_message_id: str


def _subscription_of(receipt: _Receipt) -> str:
    return receipt.subscription


def _path(kind: str, value: str, project: str) -> str:
    if value.startswith("projects/"):
        parts = value.split("/")
        if len(parts) != 4 or parts[2] != kind or not parts[1] or not parts[3]:
            raise ConfigurationError(f"expected projects/P/{kind}/NAME, got {value!r}")
        return value
    if not value or "/" in value:
        raise ConfigurationError(f"expected a {kind[:-1]} name or projects/P/{kind}/NAME")
    return f"projects/{project}/{kind}/{value}"


def _attribute_name(key: str) -> str:
    if key in _PUBLISH_KWARGS or key.startswith(("goog", "iris-")):
        return A_ESCAPE + key
    return key


def _encode_value(value: str | int | float | bool) -> tuple[str, str | None]:
    if isinstance(value, bool):
        return ("true" if value else "false"), "bool"
    if isinstance(value, int):
        return str(value), "int"
    if isinstance(value, float):
        return repr(value), "float"
    return str(value), None


def _decode_value(text: str, kind: str | None) -> str | int | float | bool:
    if kind == "bool":
        return text == "true"
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    return text


def encode_attributes(message: Message) -> dict[str, str]:
    """The Pub/Sub attributes that carry ``message``'s headers and properties."""
    attributes: dict[str, str] = {A_ID: message.message_id}
    if message.correlation_id is not None:
        attributes[A_CORRELATION] = message.correlation_id
    if message.subject is not None:
        attributes[A_SUBJECT] = message.subject
    if message.content_type is not None:
        attributes[A_CONTENT_TYPE] = message.content_type
    types: dict[str, str] = {}
    for key, value in message.properties.items():
        text, kind = _encode_value(value)
        attributes[_attribute_name(key)] = text
        if kind is not None:
            types[key] = kind
    if types:
        attributes[A_TYPES] = json.dumps(types, separators=(",", ":"), ensure_ascii=False)
    for key, text in attributes.items():
        # Up to 4 UTF-8 bytes a character: only long values can be over the limit.
        if len(text) * 4 > ATTRIBUTE_VALUE_LIMIT and len(text.encode()) > ATTRIBUTE_VALUE_LIMIT:
            raise ConfigurationError(
                f"message {message.message_id}: attribute {key!r} is over Pub/Sub's "
                f"{ATTRIBUTE_VALUE_LIMIT}-byte limit for one attribute value"
            )
    return attributes


def decode_message(
    data: bytes,
    attributes: Mapping[str, str],
    pubsub_message_id: str,
    publish_time: datetime | None,
) -> Message:
    """A :class:`Message` from a Pub/Sub message (ours or any other publisher's)."""
    attrs = dict(attributes)
    try:
        types: dict[str, str] = json.loads(attrs.pop(A_TYPES, "{}"))
    except ValueError:
        types = {}
    message = Message(
        body=data,
        message_id=attrs.pop(A_ID, pubsub_message_id),
        correlation_id=attrs.pop(A_CORRELATION, None),
        content_type=attrs.pop(A_CONTENT_TYPE, None),
        subject=attrs.pop(A_SUBJECT, None),
        enqueued_at=publish_time,
        dead_letter_reason=attrs.pop(A_REASON, None),
        dead_letter_description=attrs.pop(A_DESCRIPTION, None),
    )
    if message.dead_letter_reason is None and A_SOURCE_COUNT in attrs:
        # Forwarded by the subscription's dead-letter policy, not by dead_letter().
        message.dead_letter_reason = "MaxDeliveryCountExceeded"
        message.dead_letter_description = (
            f"delivered {attrs[A_SOURCE_COUNT]} times on {attrs.get(A_SOURCE_SUBSCRIPTION, '?')}"
        )
    for key, text in attrs.items():
        name = key[len(A_ESCAPE) :] if key.startswith(A_ESCAPE) else key
        try:
            message.properties[name] = _decode_value(text, types.get(name))
        except ValueError:
            message.properties[name] = text
    return message


class PubSubCommon(ABC):
    """The shared half of ``PubSubBroker`` and ``AsyncPubSubBroker``.

    A Pub/Sub topic (send) and/or subscription (receive) endpoint. A subclass
    gives ``_get_publisher`` / ``_get_subscriber`` (its clients, made on first
    use), ``_publish`` and ``_sleep``.
    """

    scheme = "gcppubsub"
    messaging_system = "gcp_pubsub"
    capabilities = Capabilities(
        max_message_bytes=MAX_MESSAGE_BYTES,
        max_batch=1000,
        max_batch_bytes=None,
        native_dead_letter=False,
        delayed_retry=True,
        lock_renewal=True,
        delivery_count_exact=False,
        batch_settle=True,
    )

    def __init__(
        self,
        *,
        topic: str | None,
        subscription: str | None,
        auth: GoogleAuth,
        emulator_host: str | None = None,
        claim_check: Any = None,
        ordering_key: str | None = None,
        lock_seconds: int | None = None,
        dead_letter_topic: str | None = None,
        dead_letter_subscription: str | None = None,
        batch_latency: float = 0.01,
        timeout: float = 60.0,
        keepalive: float = KEEPALIVE_SECONDS,
    ) -> None:
        super().__init__(claim_check=claim_check)  # type: ignore[call-arg]
        if topic is None and subscription is None:
            raise ConfigurationError("a gcppubsub:// broker needs a topic or a subscription")
        self.topic = topic
        self.subscription = subscription
        self._auth = auth
        self._emulator_host = emulator_host
        self._ordering_key = ordering_key or ""
        self._batch_settings = pubsub_v1.types.BatchSettings(
            max_bytes=SERVER_REQUEST_LIMIT, max_latency=batch_latency, max_messages=1000
        )
        self._timeout = timeout
        self._keepalive = keepalive
        self._retry = Retry(timeout=timeout)
        self._publisher: Any = None
        self._subscriber: Any = None
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._closed = False
        self._lock_seconds = lock_seconds
        self._dead_letter_topic = dead_letter_topic
        self._dead_letter_subscription = dead_letter_subscription
        if subscription is not None and self._dead_letter_subscription is None:
            self._dead_letter_subscription = subscription + "-dlq"

    def _setup_steps(self) -> Steps[None]:
        """Read the subscription's ack deadline and dead-letter policy, where there is one."""
        max_attempts: int | None = None
        if self.subscription is not None:
            max_attempts = yield from self._read_subscription_steps(self.subscription)
        self.capabilities = replace(
            type(self).capabilities,
            native_dead_letter=max_attempts is not None,
            max_delivery_count=max_attempts,
            # delivery_attempt is only filled in under a dead-letter policy.
            delivery_count_exact=max_attempts is not None,
        )

    @property
    def destination(self) -> str:
        """The topic's name (the subscription's where this endpoint names no topic)."""
        path = self.topic or self.subscription or ""
        return path.rsplit("/", 1)[-1]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(topic={self.topic!r}, subscription={self.subscription!r}, "
            f"emulator_host={self._emulator_host!r}, credentials={self._auth.source})"
        )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Open a topic or subscription URL (see the module docstring for the options)."""
        parts = urlsplit(url)
        if parts.scheme != cls.scheme:
            raise ConfigurationError("broker URL must start with gcppubsub://")
        resource = f"{parts.netloc}{parts.path}".rstrip("/")
        pieces = resource.split("/")
        if (
            len(pieces) != 4
            or pieces[0] != "projects"
            or pieces[2] not in ("topics", "subscriptions")
            or not pieces[1]
            or not pieces[3]
        ):
            raise ConfigurationError(
                "broker URL must be gcppubsub://projects/P/topics/T (send) or "
                "gcppubsub://projects/P/subscriptions/S (receive)"
            )
        opts = merge_query(parts.query, options)
        unknown = sorted(set(opts) - BROKER_OPTIONS)
        if unknown:
            raise ConfigurationError(
                f"unknown gcppubsub:// option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(BROKER_OPTIONS))}"
            )
        project = pieces[1]
        topic = resource if pieces[2] == "topics" else None
        subscription = resource if pieces[2] == "subscriptions" else None
        if opts.get("topic"):
            if topic is not None:
                raise ConfigurationError("a topic URL takes ?subscription=, not ?topic=")
            topic = _path("topics", opts["topic"], project)
        if opts.get("subscription"):
            if subscription is not None:
                raise ConfigurationError("a subscription URL takes ?topic=, not ?subscription=")
            subscription = _path("subscriptions", opts["subscription"], project)
        emulator_host = pubsub_emulator_host(opts.get("emulator_host"))
        auth = resolve_auth(
            credentials=opts.get("credentials"),
            credentials_file=opts.get("credentials_file"),
            credentials_json=opts.get("credentials_json"),
            project=opts.get("project") or project,
            emulator=emulator_host is not None,
        )
        lock = opts.get("lock_seconds")
        dlq_topic = opts.get("dead_letter_topic")
        dlq_sub = opts.get("dead_letter_subscription")
        return cls(
            topic=topic,
            subscription=subscription,
            auth=auth,
            emulator_host=emulator_host,
            claim_check=opts.get("claim_check"),
            ordering_key=opts.get("ordering_key"),
            lock_seconds=None if lock is None else _seconds(lock, "lock_seconds"),
            dead_letter_topic=_path("topics", dlq_topic, project) if dlq_topic else None,
            dead_letter_subscription=(
                _path("subscriptions", dlq_sub, project) if dlq_sub else None
            ),
            batch_latency=_number(opts.get("batch_latency", 0.01), "batch_latency"),
            timeout=_number(opts.get("timeout", 60.0), "timeout"),
            keepalive=_number(opts.get("keepalive", KEEPALIVE_SECONDS), "keepalive"),
        )

    # -- clients ----------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ConfigurationError("this gcppubsub:// broker is closed")

    def _read_subscription_steps(self, path: str) -> Steps[int | None]:
        """Read ack deadline and dead-letter policy; returns max delivery attempts, if any.

        A consumer granted only ``roles/pubsub.subscriber`` may not read the
        subscription; the options (or Pub/Sub's defaults) stand in then.
        """
        try:
            with gcp_errors("receive", path):
                subscriber = yield Call(self._get_subscriber)
                sub = yield Call(
                    subscriber.get_subscription,
                    (),
                    {"subscription": path, "timeout": self._timeout},
                )
        except NotFound:
            raise
        except IrisCloudError as exc:
            if not isinstance(exc.__cause__, (gexc.PermissionDenied, gexc.MethodNotImplemented)):
                raise
            return None
        if self._lock_seconds is None and sub.ack_deadline_seconds:
            self._lock_seconds = sub.ack_deadline_seconds
        policy = sub.dead_letter_policy
        if policy and policy.dead_letter_topic:
            if self._dead_letter_topic is None:
                self._dead_letter_topic = policy.dead_letter_topic
            # 0 means "unset", which Pub/Sub treats as 5.
            return policy.max_delivery_attempts or 5
        return None

    def _need(self, what: str) -> str:
        value = self.topic if what == "topic" else self.subscription
        if value is None:
            other = "subscription" if what == "topic" else "topic"
            verb = "send" if what == "topic" else "receive"
            raise ConfigurationError(
                f"this broker was opened on a {other} and cannot {verb}: open "
                f"gcppubsub://projects/P/{what}s/NAME or add ?{what}=NAME to the URL"
            )
        return value

    # -- rights -----------------------------------------------------------------
    def _verify_steps(self, right: str) -> Steps[bool]:
        """Ask Pub/Sub's TestIamPermissions which permission the credentials hold.

        Send: ``pubsub.topics.publish`` on the topic; receive:
        ``pubsub.subscriptions.consume`` on the subscription. The call needs no
        permission of its own and changes nothing. An endpoint without IAM
        (the emulators) cannot tell: ``False``. See :meth:`MessageBroker.verify`.
        """
        portlogic.check_right(right)
        resource = self._need("topic" if right == "send" else "subscription")
        permission = IAM_PERMISSIONS[right]
        client = yield Call(self._get_publisher if right == "send" else self._get_subscriber)
        with gcp_errors(right, resource):
            try:
                granted = yield Call(
                    client.test_iam_permissions,
                    (),
                    {
                        "request": {"resource": resource, "permissions": [permission]},
                        "timeout": self._timeout,
                    },
                )
            except gexc.MethodNotImplemented:
                return False
            if permission not in granted.permissions:
                # Reported as the service reports a refused call.
                raise gexc.PermissionDenied(f"{permission} not granted")
        return True

    # -- sending ----------------------------------------------------------------
    def _send_batch_steps(self, batch: list[Message]) -> Steps[None]:
        topic = self._need("topic")
        items = [(m.body, encode_attributes(m), m) for m in batch]
        yield Call(self._publish, (topic, items, "send"))

    def _ordering_key_of(self, message: Message) -> str:
        return str(message.properties.get("ordering_key", self._ordering_key))

    @abstractmethod
    def _publish(
        self, topic: str, items: list[tuple[bytes, dict[str, str], Message]], right: str
    ) -> object:
        """Publish every item and raise once for all failures (:func:`raise_publish_failures`)."""

    @abstractmethod
    def _get_publisher(self) -> object:
        """The publisher client, made on first use; refused once closed."""

    @abstractmethod
    def _get_subscriber(self) -> object:
        """The subscriber client, made on first use; refused once closed."""

    @staticmethod
    @abstractmethod
    def _sleep(seconds: float) -> object:
        """Wait ``seconds`` before pulling again (``time.sleep`` or ``asyncio.sleep``)."""

    # -- receiving --------------------------------------------------------------
    def _receive_steps(self, max_messages: int, wait: float) -> Steps[list[Message]]:
        return (yield from self._pull_steps(self._need("subscription"), max_messages, wait))

    def _pull_steps(
        self, subscription: str, max_messages: int, wait: float
    ) -> Steps[list[Message]]:
        subscriber = yield Call(self._get_subscriber)
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            remaining = deadline - time.monotonic()
            started = time.monotonic()
            try:
                with gcp_errors("receive", subscription):
                    response = yield Call(
                        subscriber.pull,
                        (),
                        {
                            "subscription": subscription,
                            "max_messages": max(1, max_messages),
                            "timeout": max(remaining, MIN_PULL_SECONDS),
                            "retry": None,
                        },
                    )
                received = response._pb.received_messages
            except IrisCloudError as exc:
                if not isinstance(exc.__cause__, gexc.DeadlineExceeded):
                    raise
                received = []
            if received:
                return decode_each(
                    received,
                    lambda rm: self._to_message(subscription, rm),
                    lambda rm: self._shell(subscription, rm),
                )
            if time.monotonic() >= deadline:
                return []
            if time.monotonic() - started < 0.05:
                # A server that answers "nothing" at once must not make us spin.
                yield Call(self._sleep, (min(0.1, max(0.0, deadline - time.monotonic())),))

    def _to_message(self, subscription: str, received: Any) -> Message:
        pb = received.message
        publish_time = (
            pb.publish_time.ToDatetime(tzinfo=UTC) if pb.HasField("publish_time") else None
        )
        attributes = dict(pb.attributes)
        message = decode_message(pb.data, attributes, pb.message_id, publish_time)
        if pb.ordering_key:  # the key the message was published with, by any publisher
            message.properties["ordering_key"] = pb.ordering_key
        attempt = int(received.delivery_attempt)
        if attempt:
            message.delivery_count = attempt
        else:
            message.delivery_count = self._count_delivery(pb.message_id)
        message.lock_token = received.ack_id
        message.locked_until = datetime.now(UTC) + timedelta(
            seconds=self._lock_seconds or DEFAULT_LOCK_SECONDS
        )
        message.raw = _Receipt(subscription, received.ack_id, pb.data, attributes, pb.message_id)
        return message

    @staticmethod
    def _shell(subscription: str, received: Any) -> Message:
        # What settles (and, in the dead-letter subscription, explains) a
        # message that did not decode: Pub/Sub's own fields and our reason.
        pb = received.message
        attributes = dict(pb.attributes)
        return Message(
            body=pb.data,
            message_id=pb.message_id,
            delivery_count=int(received.delivery_attempt),
            lock_token=received.ack_id,
            dead_letter_reason=attributes.get(A_REASON),
            dead_letter_description=attributes.get(A_DESCRIPTION),
            raw=_Receipt(subscription, received.ack_id, pb.data, attributes, pb.message_id),
        )

    def _count_delivery(self, pubsub_message_id: str) -> int:
        """Deliveries of this message seen by this broker (no dead-letter policy: an estimate)."""
        with self._lock:
            count = self._seen.pop(pubsub_message_id, 0) + 1
            self._seen[pubsub_message_id] = count
            while len(self._seen) > _SEEN_LIMIT:
                self._seen.popitem(last=False)
            return count

    @staticmethod
    def _receipt(message: Message) -> _Receipt:
        if not isinstance(message.raw, _Receipt):
            raise ConfigurationError(
                f"message {message.message_id} was not received by a gcppubsub:// broker"
            )
        return message.raw

    def _settle_many_steps(
        self, messages: list[Message], method: str, extra: dict[str, Any]
    ) -> Steps[list[IrisCloudError | None]]:
        """The subscriber's ``method`` (acknowledge, modify_ack_deadline) on many ack ids.

        Up to :data:`ACK_IDS_PER_CALL` ack ids a call; one outcome per message.
        Pub/Sub answers a request with a bad ack id by failing it whole
        (INVALID_ARGUMENT / FAILED_PRECONDITION, :class:`LockLost`) without
        naming the id, so such a chunk is settled again one message at a time
        to tell which; an expired ack id of a subscription without exactly-once
        delivery is accepted silently, as the service does.
        """
        outcomes, by_subscription = portlogic.held_by(messages, self._receipt, _subscription_of)
        for subscription, held in by_subscription.items():
            for start in range(0, len(held), ACK_IDS_PER_CALL):
                chunk = held[start : start + ACK_IDS_PER_CALL]
                ack_ids = [receipt.ack_id for _, receipt in chunk]
                try:
                    yield from self._settle_call_steps(method, subscription, ack_ids, extra)
                except LockLost as exc:
                    if len(chunk) == 1:
                        outcomes[chunk[0][0]] = exc
                        continue
                    for index, receipt in chunk:
                        try:
                            one = [receipt.ack_id]
                            yield from self._settle_call_steps(method, subscription, one, extra)
                        except IrisCloudError as error:
                            outcomes[index] = error
                except IrisCloudError as exc:
                    for index, _ in chunk:
                        outcomes[index] = exc
        return outcomes

    def _settle_call_steps(
        self, method: str, subscription: str, ack_ids: list[str], extra: dict[str, Any]
    ) -> Steps[None]:
        with gcp_errors("receive", subscription, lock=True):
            subscriber = yield Call(self._get_subscriber)
            kwargs = {"subscription": subscription, "ack_ids": ack_ids, "timeout": self._timeout}
            yield Call(getattr(subscriber, method), (), {**kwargs, **extra})

    def _complete_steps(self, message: Message) -> Steps[None]:
        """Acknowledge ``message``: Pub/Sub will not deliver it again on this subscription."""
        portlogic.raise_outcome((yield from self._complete_many_steps([message])))

    def _complete_many_steps(self, messages: list[Message]) -> Steps[list[IrisCloudError | None]]:
        """Acknowledge several messages, up to 1,000 ack ids a call; one outcome each."""
        outcomes = yield from self._settle_many_steps(messages, "acknowledge", {})
        with self._lock:
            for message, outcome in zip(messages, outcomes, strict=True):
                if outcome is None and isinstance(message.raw, _Receipt):
                    self._seen.pop(message.raw.pubsub_message_id, None)
        # A no-op: a subscription cannot know whether another one still needs the payload.
        return (yield from portlogic.completed_many_steps(self, messages, outcomes))  # type: ignore[arg-type]

    def _abandon_steps(self, message: Message, delay: float | None) -> Steps[None]:
        """Let ``message`` be redelivered now, or after ``delay`` seconds (at most 600)."""
        portlogic.raise_outcome((yield from self._abandon_many_steps([message], delay)))

    def _abandon_many_steps(
        self, messages: list[Message], delay: float | None
    ) -> Steps[list[IrisCloudError | None]]:
        """Let several messages be redelivered (one modify_ack_deadline per 1,000)."""
        seconds = 0 if not delay or delay <= 0 else min(math.ceil(delay), MAX_ACK_DEADLINE)
        extra = {"ack_deadline_seconds": seconds}
        return (yield from self._settle_many_steps(messages, "modify_ack_deadline", extra))

    def _renew_steps(self, message: Message) -> Steps[datetime]:
        """Extend the ack deadline of ``message`` by ``lock_seconds`` from now."""
        seconds = self._lock_seconds or DEFAULT_LOCK_SECONDS
        extra = {"ack_deadline_seconds": seconds}
        outcomes = yield from self._settle_many_steps([message], "modify_ack_deadline", extra)
        portlogic.raise_outcome(outcomes)
        until = datetime.now(UTC) + timedelta(seconds=seconds)
        message.locked_until = until
        return until

    # -- dead letters -----------------------------------------------------------
    def _dead_letter_steps(self, message: Message, reason: str, description: str) -> Steps[None]:
        """Publish ``message`` as received to the dead-letter topic with the reason, then ack it."""
        receipt = self._receipt(message)
        if self._dead_letter_topic is None:
            raise ConfigurationError(
                f"{receipt.subscription} has no dead-letter topic: give the subscription a "
                "dead-letter policy or pass the dead_letter_topic option"
            )
        attributes = dict(receipt.attributes)
        attributes[A_REASON] = _clip(reason)
        attributes[A_DESCRIPTION] = _clip(description)
        original = Message(body=receipt.data, message_id=message.message_id)
        items = [(receipt.data, attributes, original)]
        yield Call(self._publish, (self._dead_letter_topic, items, "send"))
        yield from self._complete_steps(message)

    def _dead_letters_steps(self, max_messages: int, wait: float) -> Steps[list[Message]]:
        # The dead-letter subscription: the option, or ``<subscription>-dlq``.
        if self._dead_letter_subscription is None:
            raise ConfigurationError(
                "this broker has no dead-letter subscription: open it on a subscription "
                "or pass dead_letter_subscription"
            )
        return (yield from self._pull_steps(self._dead_letter_subscription, max_messages, wait))


def raise_publish_failures(
    failures: list[tuple[str, IrisCloudError]], total: int, topic: str
) -> None:
    """Raise one error for every message that failed to publish (none failed: return).

    Its type, right and cause are the first failure's; ``failures`` lists them all.
    """
    if not failures:
        return
    first = failures[0][1]
    ids = ", ".join(mid for mid, _ in failures[:10])
    more = f" and {len(failures) - 10} more" if len(failures) > 10 else ""
    error = type(first)(
        f"{len(failures)} of {total} message(s) failed to publish to {topic} "
        f"(message ids {ids}{more}): {first}"
    )
    if hasattr(first, "right"):
        error.right = first.right  # type: ignore[attr-defined]
    error.failures = failures  # type: ignore[attr-defined]
    raise error from first.__cause__


def _number(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"option {name} must be a number of seconds") from None
    if number < 0 or math.isnan(number):
        raise ConfigurationError(f"option {name} must not be negative")
    return number


def _seconds(value: Any, name: str) -> int:
    """Whole seconds (Pub/Sub's unit for ack deadlines), at least 1."""
    return max(1, math.ceil(_number(value, name)))


def _clip(text: str) -> str:
    """``text`` cut to Pub/Sub's attribute value limit on a character boundary."""
    data = text.encode("utf-8")
    if len(data) <= ATTRIBUTE_VALUE_LIMIT:
        return text
    return data[: ATTRIBUTE_VALUE_LIMIT - 3].decode("utf-8", errors="ignore") + "..."
