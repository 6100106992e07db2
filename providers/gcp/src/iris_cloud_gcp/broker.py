"""``gcppubsub://``: Google Cloud Pub/Sub as a MessageBroker.

A topic URL sends, a subscription URL receives::

    gcppubsub://projects/P/topics/T              send only
    gcppubsub://projects/P/subscriptions/S       receive (and dead-letter) only
    gcppubsub://projects/P/subscriptions/S?topic=T   both (tests, single-process setups)
    gcppubsub://projects/P/topics/T?subscription=S   the same, written from the topic side

``topic`` / ``subscription`` take a bare name (same project) or a full path.

Wire mapping. The body is the message data. ``message_id``,
``correlation_id``, ``subject`` and ``content_type`` travel as the attributes
``iris-message-id``, ``iris-correlation-id``, ``iris-subject`` and
``iris-content-type``; properties are attributes under their own names, with
``iris-types`` (JSON) recording which were int, float or bool, since Pub/Sub
attributes are strings. Property names Pub/Sub or the client library reserve
(``goog*``, ``iris-*``, and ``topic``, ``data``, ``ordering_key``, ``retry``,
``timeout``) travel as ``iris-attr-<name>``.

Settlement: ``complete`` acknowledges; ``abandon(delay)`` sets the ack
deadline to ``delay`` seconds (0 = redeliver now); ``renew_lock`` sets it to
``lock_seconds`` again; ``dead_letter`` publishes the message, unchanged plus
``iris-dead-letter-reason`` / ``-description``, to the dead-letter topic and
then acknowledges it.

Options (URL query or keywords; credentials only as keywords):
``credentials_file`` / ``credentials_json`` / ``credentials``; ``emulator_host``
(``host:port``; ``PUBSUB_EMULATOR_HOST`` is honoured too); ``topic`` /
``subscription`` (pairing, above); ``ordering_key`` (every message sent gets
it; a message property ``ordering_key`` overrides; a received message's
ordering key, whoever published it, is its ``ordering_key`` property); ``lock_seconds`` (the
subscription's ack deadline, read from the subscription when the
credentials may); ``dead_letter_topic`` (else the subscription's dead-letter
policy); ``dead_letter_subscription`` (where ``receive_dead_letters`` pulls;
default ``<subscription>-dlq``); ``batch_latency`` (seconds the publisher
waits to fill a batch, default 0.01); ``timeout`` (seconds per call, default 60);
``keepalive`` (seconds between gRPC keepalive pings on an emulator channel,
default 30, as the client library's own channels to Google ping: a connection
gone silent is dropped after one unanswered ping and redialled).
"""

from __future__ import annotations

import concurrent.futures
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Self
from urllib.parse import urlsplit

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import pubsub_v1
from iris_cloud.decoding import decode_each
from iris_cloud.errors import ConfigurationError, IrisCloudError, NotFound
from iris_cloud.ports import Capabilities, Message, MessageBroker, ObjectStore

from iris_cloud_gcp._clients import (
    KEEPALIVE_SECONDS,
    GoogleAuth,
    merge_query,
    publisher_client,
    pubsub_emulator_host,
    resolve_auth,
    subscriber_client,
)
from iris_cloud_gcp.errors import IAM_PERMISSIONS, gcp_errors, map_error
from iris_cloud_gcp.options import BROKER_OPTIONS

__all__ = ["MAX_MESSAGE_BYTES", "PubSubBroker"]

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


class PubSubBroker(MessageBroker):
    """A Pub/Sub topic (send) and/or subscription (receive) endpoint.

    One PublisherClient and one SubscriberClient per broker, created when
    first needed and reused; :meth:`close` flushes and closes them.
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
    )

    def __init__(
        self,
        *,
        topic: str | None,
        subscription: str | None,
        auth: GoogleAuth,
        emulator_host: str | None = None,
        claim_check: ObjectStore | None = None,
        ordering_key: str | None = None,
        lock_seconds: int | None = None,
        dead_letter_topic: str | None = None,
        dead_letter_subscription: str | None = None,
        batch_latency: float = 0.01,
        timeout: float = 60.0,
        keepalive: float = KEEPALIVE_SECONDS,
    ) -> None:
        super().__init__(claim_check=claim_check)
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
        self._publisher: pubsub_v1.PublisherClient | None = None
        self._subscriber: pubsub_v1.SubscriberClient | None = None
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._closed = False
        self._lock_seconds = lock_seconds
        self._dead_letter_topic = dead_letter_topic
        self._dead_letter_subscription = dead_letter_subscription
        max_attempts: int | None = None
        if subscription is not None:
            try:
                max_attempts = self._read_subscription(subscription)
            except BaseException:
                self.close()
                raise
            if self._dead_letter_subscription is None:
                self._dead_letter_subscription = subscription + "-dlq"
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
            f"PubSubBroker(topic={self.topic!r}, subscription={self.subscription!r}, "
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

    def _get_publisher(self) -> pubsub_v1.PublisherClient:
        with self._lock:
            self._check_open()
            if self._publisher is None:
                self._publisher = publisher_client(
                    self._auth,
                    self._emulator_host,
                    self._batch_settings,
                    ordering=True,
                    keepalive=self._keepalive,
                )
            return self._publisher

    def _get_subscriber(self) -> pubsub_v1.SubscriberClient:
        with self._lock:
            self._check_open()
            if self._subscriber is None:
                self._subscriber = subscriber_client(
                    self._auth, self._emulator_host, self._keepalive
                )
            return self._subscriber

    def _read_subscription(self, path: str) -> int | None:
        """Read ack deadline and dead-letter policy; returns max delivery attempts, if any.

        A consumer granted only ``roles/pubsub.subscriber`` may not read the
        subscription; the options (or Pub/Sub's defaults) stand in then.
        """
        try:
            with gcp_errors("receive", path):
                sub = self._get_subscriber().get_subscription(
                    subscription=path, timeout=self._timeout
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
    def verify(self, right: str) -> bool:
        """Ask Pub/Sub's TestIamPermissions which permission the credentials hold.

        Send: ``pubsub.topics.publish`` on the topic; receive:
        ``pubsub.subscriptions.consume`` on the subscription. The call needs no
        permission of its own and changes nothing. An endpoint without IAM
        (the emulators) cannot tell: ``False``. See :meth:`MessageBroker.verify`.
        """
        super().verify(right)  # checks the name of the right
        resource = self._need("topic" if right == "send" else "subscription")
        permission = IAM_PERMISSIONS[right]
        client = self._get_publisher() if right == "send" else self._get_subscriber()
        with gcp_errors(right, resource):
            try:
                granted = client.test_iam_permissions(
                    request={"resource": resource, "permissions": [permission]},
                    timeout=self._timeout,
                )
            except gexc.MethodNotImplemented:
                return False
            if permission not in granted.permissions:
                # Reported as the service reports a refused call.
                raise gexc.PermissionDenied(f"{permission} not granted")
        return True

    # -- sending ----------------------------------------------------------------
    def _send_batch(self, batch: list[Message]) -> None:
        topic = self._need("topic")
        self._publish(topic, [(m.body, encode_attributes(m), m) for m in batch], "send")

    def _publish(
        self,
        topic: str,
        items: list[tuple[bytes, dict[str, str], Message]],
        right: str,
    ) -> None:
        """Publish every item, wait for every future, raise once for all failures."""
        publisher = self._get_publisher()
        pending: list[tuple[Message, str, concurrent.futures.Future[str]]] = []
        failures: list[tuple[str, IrisCloudError]] = []
        for data, attributes, message in items:
            key = str(message.properties.get("ordering_key", self._ordering_key))
            try:
                # Only queues the message; delivery failures arrive through the future.
                future = publisher.publish(
                    topic,
                    data,
                    ordering_key=key,
                    retry=self._retry,
                    timeout=self._timeout,
                    **attributes,
                )
            except Exception as exc:  # the client's own checks (size, closed client)
                mapped = map_error(exc, right=right, target=topic)
                if mapped is None:
                    raise
                mapped.__cause__ = exc
                failures.append((message.message_id, mapped))
                continue
            pending.append((message, key, future))
        for message, key, future in pending:
            try:
                future.result(timeout=self._timeout * 2)
            except Exception as exc:
                if isinstance(exc, concurrent.futures.TimeoutError):
                    exc = gexc.DeadlineExceeded(f"publish did not complete in {self._timeout}s")
                mapped = map_error(exc, right=right, target=topic)
                if mapped is None:
                    raise
                mapped.__cause__ = exc
                failures.append((message.message_id, mapped))
                if key:
                    # The client pauses an ordering key after a failure.
                    publisher.resume_publish(topic, key)
        if failures:
            first = failures[0][1]
            ids = ", ".join(mid for mid, _ in failures[:10])
            more = f" and {len(failures) - 10} more" if len(failures) > 10 else ""
            error = type(first)(
                f"{len(failures)} of {len(items)} message(s) failed to publish to {topic} "
                f"(message ids {ids}{more}): {first}"
            )
            if hasattr(first, "right"):
                error.right = first.right  # type: ignore[attr-defined]
            error.failures = failures  # type: ignore[attr-defined]
            raise error from first.__cause__

    # -- receiving --------------------------------------------------------------
    def _receive(self, max_messages: int, wait: float) -> list[Message]:
        return self._pull(self._need("subscription"), max_messages, wait)

    def _pull(self, subscription: str, max_messages: int, wait: float) -> list[Message]:
        subscriber = self._get_subscriber()
        deadline = time.monotonic() + max(wait, 0.0)
        while True:
            remaining = deadline - time.monotonic()
            started = time.monotonic()
            try:
                with gcp_errors("receive", subscription):
                    response = subscriber.pull(
                        subscription=subscription,
                        max_messages=max(1, max_messages),
                        timeout=max(remaining, MIN_PULL_SECONDS),
                        retry=None,
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
                time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

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

    def _modify_deadline(self, message: Message, seconds: int) -> None:
        receipt = self._receipt(message)
        with gcp_errors("receive", receipt.subscription, lock=True):
            self._get_subscriber().modify_ack_deadline(
                subscription=receipt.subscription,
                ack_ids=[receipt.ack_id],
                ack_deadline_seconds=seconds,
                timeout=self._timeout,
            )

    def complete(self, message: Message) -> None:
        """Acknowledge ``message``: Pub/Sub will not deliver it again on this subscription."""
        receipt = self._receipt(message)
        with gcp_errors("receive", receipt.subscription, lock=True):
            self._get_subscriber().acknowledge(
                subscription=receipt.subscription,
                ack_ids=[receipt.ack_id],
                timeout=self._timeout,
            )
        with self._lock:
            self._seen.pop(receipt.pubsub_message_id, None)
        # A no-op: a subscription cannot know whether another one still needs the payload.
        self._completed(message)

    def abandon(self, message: Message, delay: float | None = None) -> None:
        """Let ``message`` be redelivered now, or after ``delay`` seconds (at most 600)."""
        seconds = 0 if not delay or delay <= 0 else min(math.ceil(delay), MAX_ACK_DEADLINE)
        self._modify_deadline(message, seconds)

    def renew_lock(self, message: Message) -> datetime:
        """Extend the ack deadline of ``message`` by ``lock_seconds`` from now."""
        seconds = self._lock_seconds or DEFAULT_LOCK_SECONDS
        self._modify_deadline(message, seconds)
        until = datetime.now(UTC) + timedelta(seconds=seconds)
        message.locked_until = until
        return until

    # -- dead letters -----------------------------------------------------------
    def dead_letter(self, message: Message, reason: str, description: str = "") -> None:
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
        self._publish(self._dead_letter_topic, [(receipt.data, attributes, original)], "send")
        self.complete(message)

    def _receive_dead_letters(self, max_messages: int, wait: float) -> list[Message]:
        # The dead-letter subscription: the option, or ``<subscription>-dlq``.
        if self._dead_letter_subscription is None:
            raise ConfigurationError(
                "this broker has no dead-letter subscription: open it on a subscription "
                "or pass dead_letter_subscription"
            )
        return self._pull(self._dead_letter_subscription, max_messages, wait)

    def close(self) -> None:
        """Flush pending publishes and close both clients."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            publisher, self._publisher = self._publisher, None
            subscriber, self._subscriber = self._subscriber, None
        if publisher is not None:
            publisher.stop()
            publisher.transport.close()
        if subscriber is not None:
            subscriber.close()


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
