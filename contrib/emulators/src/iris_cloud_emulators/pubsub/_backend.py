"""In-memory Pub/Sub state: topics, subscriptions, leases, redelivery and dead-lettering.

Everything here works on the raw protobuf classes that google-cloud-pubsub ships
(``google.pubsub_v1.types.pubsub.X.pb()``), so the gRPC layer only has to
deserialize, call one method and serialize. All state sits behind one
``threading.Condition``: the server is a test double, one lock is simpler to get
right than fine-grained locking, and waiters (Pull, StreamingPull, the sweeper)
are woken with ``notify_all`` whenever something they may care about changes.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TypeVar

import grpc
from google.protobuf import duration_pb2, field_mask_pb2
from google.protobuf.message import Message
from google.pubsub_v1.types import pubsub as _types

Topic = _types.Topic.pb()
Subscription = _types.Subscription.pb()
PubsubMessage = _types.PubsubMessage.pb()
ReceivedMessage = _types.ReceivedMessage.pb()
PublishRequest = _types.PublishRequest.pb()
PublishResponse = _types.PublishResponse.pb()
PullResponse = _types.PullResponse.pb()
ListTopicsResponse = _types.ListTopicsResponse.pb()
ListSubscriptionsResponse = _types.ListSubscriptionsResponse.pb()
ListTopicSubscriptionsResponse = _types.ListTopicSubscriptionsResponse.pb()

#: What the client library itself enforces (``_SERVER_PUBLISH_MAX_BYTES``):
#: a PublishRequest above this size is refused by the real service.
MAX_PUBLISH_REQUEST_BYTES = 10 * 1000 * 1000
MAX_MESSAGES_PER_PUBLISH = 1000
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_KEY_BYTES = 256
MAX_ATTRIBUTE_VALUE_BYTES = 1024
MAX_ACK_DEADLINE = 600
DEFAULT_ACK_DEADLINE = 10
DEFAULT_MAX_DELIVERY_ATTEMPTS = 5
MIN_DELIVERY_ATTEMPTS, MAX_DELIVERY_ATTEMPTS = 5, 100
DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600
DEFAULT_EXPIRATION_TTL_SECONDS = 31 * 24 * 3600
DEFAULT_MIN_BACKOFF, DEFAULT_MAX_BACKOFF = 10.0, 600.0
DEFAULT_PAGE_SIZE = 100
#: What real Pub/Sub puts in ``Subscription.topic`` once the topic is deleted.
DELETED_TOPIC = "_deleted-topic_"

# Resource ids: start with a letter, 3-255 characters of letters, digits and - _ . ~ + %.
_RESOURCE_ID = r"[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}"
_PROJECT = r"[^/]+"
_TOPIC_RE = re.compile(rf"^projects/({_PROJECT})/topics/({_RESOURCE_ID})$")
_SUBSCRIPTION_RE = re.compile(rf"^projects/({_PROJECT})/subscriptions/({_RESOURCE_ID})$")
_PROJECT_RE = re.compile(rf"^projects/({_PROJECT})$")
# Ack ids are "<subscription generation>-<message id>-<delivery attempt>": opaque to
# clients, but the shape lets a malformed id be told apart from a stale one.
_ACK_ID_RE = re.compile(r"^(\d+)-(\d+)-(\d+)$")

_UPDATABLE_SUBSCRIPTION_FIELDS = frozenset(
    {
        "ack_deadline_seconds",
        "push_config",
        "labels",
        "message_retention_duration",
        "retain_acked_messages",
        "expiration_policy",
        "dead_letter_policy",
        "retry_policy",
        "enable_exactly_once_delivery",
    }
)
_UPDATABLE_TOPIC_FIELDS = frozenset(
    {"labels", "message_storage_policy", "kms_key_name", "message_retention_duration"}
)


_M = TypeVar("_M", bound=Message)


class ApiError(Exception):
    """A failure the gRPC layer turns into a status code, as the real service would."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _not_found(name: str) -> ApiError:
    # Same wording as the real service, so logs read alike.
    return ApiError(grpc.StatusCode.NOT_FOUND, f"Resource not found (resource={name}).")


def _invalid(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, message)


def _seconds(d: duration_pb2.Duration) -> float:
    return d.seconds + d.nanos / 1e9


@dataclass(eq=False)
class _Entry:
    """One message as seen by one subscription."""

    message: PubsubMessage
    attempts: int = 0  # deliveries made so far (the next delivery is attempts + 1)
    ack_id: str | None = None  # set while leased
    deadline: float = 0.0  # monotonic time the lease expires
    not_before: float = 0.0  # retry-policy backoff: not redelivered before this
    stream: object | None = None  # the StreamingPull stream holding the lease, if any


@dataclass(eq=False)
class _Sub:
    config: Subscription
    generation: int
    entries: dict[str, _Entry] = field(default_factory=dict)  # message id -> entry, FIFO
    leases: dict[str, _Entry] = field(default_factory=dict)  # ack id -> entry

    @property
    def dead_letter_topic(self) -> str:
        return self.config.dead_letter_policy.dead_letter_topic

    @property
    def max_attempts(self) -> int:
        return self.config.dead_letter_policy.max_delivery_attempts or DEFAULT_MAX_DELIVERY_ATTEMPTS


class Backend:
    """The state of one emulator instance; every public method is thread-safe."""

    def __init__(self, *, min_ack_deadline: int = DEFAULT_ACK_DEADLINE) -> None:
        if not 1 <= min_ack_deadline <= DEFAULT_ACK_DEADLINE:
            raise ValueError("min_ack_deadline must be between 1 and 10 seconds")
        self.min_ack_deadline = min_ack_deadline
        self.cond = threading.Condition()
        self.closed = False
        self._topics: dict[str, Topic] = {}
        self._subs: dict[str, _Sub] = {}
        self._message_ids = itertools.count(1)
        self._generations = itertools.count(1)

    # -- lifecycle -----------------------------------------------------------------

    def reset(self) -> None:
        """Forget every topic, subscription and message (between tests)."""
        with self.cond:
            self._topics.clear()
            self._subs.clear()
            self.cond.notify_all()

    def close(self) -> None:
        """Wake every waiter so Pull/StreamingPull handlers return and the server can stop."""
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    # -- topics --------------------------------------------------------------------

    def create_topic(self, topic: Topic) -> Topic:
        _check_name(_TOPIC_RE, topic.name, "topics")
        with self.cond:
            if topic.name in self._topics:
                raise ApiError(grpc.StatusCode.ALREADY_EXISTS, "Topic already exists")
            stored = Topic()
            stored.CopyFrom(topic)
            stored.state = Topic.State.ACTIVE
            self._topics[stored.name] = stored
            return _copy(stored)

    def get_topic(self, name: str) -> Topic:
        _check_name(_TOPIC_RE, name, "topics")
        with self.cond:
            return _copy(self._topic(name))

    def update_topic(self, topic: Topic, mask: field_mask_pb2.FieldMask) -> Topic:
        _check_name(_TOPIC_RE, topic.name, "topics")
        _check_mask(mask, _UPDATABLE_TOPIC_FIELDS, "topic")
        with self.cond:
            stored = self._topic(topic.name)
            updated = _copy(stored)
            mask.MergeMessage(
                topic, updated, replace_message_field=True, replace_repeated_field=True
            )
            self._topics[stored.name] = updated
            return _copy(updated)

    def delete_topic(self, name: str) -> None:
        _check_name(_TOPIC_RE, name, "topics")
        with self.cond:
            self._topic(name)
            del self._topics[name]
            # Subscriptions outlive their topic, as on the real service.
            for sub in self._subs.values():
                if sub.config.topic == name:
                    sub.config.topic = DELETED_TOPIC

    def list_topics(self, project: str, page_size: int, page_token: str) -> ListTopicsResponse:
        _check_name(_PROJECT_RE, project, "projects")
        with self.cond:
            names = sorted(n for n in self._topics if n.startswith(project + "/topics/"))
            page, token = _page(names, page_size, page_token)
            return ListTopicsResponse(topics=[self._topics[n] for n in page], next_page_token=token)

    def list_topic_subscriptions(
        self, topic: str, page_size: int, page_token: str
    ) -> ListTopicSubscriptionsResponse:
        _check_name(_TOPIC_RE, topic, "topics")
        with self.cond:
            self._topic(topic)
            names = sorted(n for n, s in self._subs.items() if s.config.topic == topic)
            page, token = _page(names, page_size, page_token)
            return ListTopicSubscriptionsResponse(subscriptions=page, next_page_token=token)

    def publish(self, request: PublishRequest) -> PublishResponse:
        _check_name(_TOPIC_RE, request.topic, "topics")
        messages = list(request.messages)
        if not messages:
            raise _invalid("The request must contain at least one message.")
        if len(messages) > MAX_MESSAGES_PER_PUBLISH:
            raise _invalid(
                f"The value for message_count is too large. You passed {len(messages)} in the "
                f"request, but the maximum value is {MAX_MESSAGES_PER_PUBLISH}."
            )
        size = request.ByteSize()
        if size > MAX_PUBLISH_REQUEST_BYTES:
            raise _invalid(
                f"Request payload size exceeds the limit: {MAX_PUBLISH_REQUEST_BYTES} bytes."
            )
        for message in messages:
            _check_message(message)
        with self.cond:
            self._topic(request.topic)
            ids = [self._publish_locked(request.topic, m) for m in messages]
            return PublishResponse(message_ids=ids)

    # -- subscriptions -------------------------------------------------------------

    def create_subscription(self, sub: Subscription) -> Subscription:
        _check_name(_SUBSCRIPTION_RE, sub.name, "subscriptions")
        _check_name(_TOPIC_RE, sub.topic, "topics")
        stored = _copy(sub)
        if not stored.ack_deadline_seconds:
            stored.ack_deadline_seconds = DEFAULT_ACK_DEADLINE
        if not stored.HasField("message_retention_duration"):
            stored.message_retention_duration.seconds = DEFAULT_RETENTION_SECONDS
        if not stored.HasField("expiration_policy"):
            stored.expiration_policy.ttl.seconds = DEFAULT_EXPIRATION_TTL_SECONDS
        stored.state = Subscription.State.ACTIVE
        with self.cond:
            if stored.name in self._subs:
                raise ApiError(grpc.StatusCode.ALREADY_EXISTS, "Subscription already exists")
            self._topic(stored.topic)
            self._validate_subscription(stored)
            self._subs[stored.name] = _Sub(stored, next(self._generations))
            return _copy(stored)

    def get_subscription(self, name: str) -> Subscription:
        _check_name(_SUBSCRIPTION_RE, name, "subscriptions")
        with self.cond:
            return _copy(self._sub(name).config)

    def update_subscription(
        self, sub: Subscription, mask: field_mask_pb2.FieldMask
    ) -> Subscription:
        _check_name(_SUBSCRIPTION_RE, sub.name, "subscriptions")
        _check_mask(mask, _UPDATABLE_SUBSCRIPTION_FIELDS, "subscription")
        with self.cond:
            state = self._sub(sub.name)
            updated = _copy(state.config)
            mask.MergeMessage(sub, updated, replace_message_field=True, replace_repeated_field=True)
            if not updated.ack_deadline_seconds:
                updated.ack_deadline_seconds = DEFAULT_ACK_DEADLINE
            self._validate_subscription(updated)
            state.config = updated
            # A new dead-letter or retry policy may change what is deliverable now.
            self.cond.notify_all()
            return _copy(updated)

    def delete_subscription(self, name: str) -> None:
        _check_name(_SUBSCRIPTION_RE, name, "subscriptions")
        with self.cond:
            self._sub(name)
            del self._subs[name]
            self.cond.notify_all()  # open StreamingPulls notice and end with NOT_FOUND

    def list_subscriptions(
        self, project: str, page_size: int, page_token: str
    ) -> ListSubscriptionsResponse:
        _check_name(_PROJECT_RE, project, "projects")
        with self.cond:
            names = sorted(n for n in self._subs if n.startswith(project + "/subscriptions/"))
            page, token = _page(names, page_size, page_token)
            return ListSubscriptionsResponse(
                subscriptions=[self._subs[n].config for n in page], next_page_token=token
            )

    def num_undelivered_messages(self, name: str) -> int:
        """Messages on a subscription not yet acknowledged, leased or not."""
        with self.cond:
            return len(self._sub(name).entries)

    def check_subscription(self, name: str) -> Subscription:
        """Validate and look up a subscription name; call with ``cond`` held or not."""
        _check_name(_SUBSCRIPTION_RE, name, "subscriptions")
        with self.cond:
            return self._sub(name).config

    def check_ack_deadline(self, seconds: int, what: str) -> None:
        """Refuse an ack deadline outside [min_ack_deadline, 600] as INVALID_ARGUMENT."""
        if not self.min_ack_deadline <= seconds <= MAX_ACK_DEADLINE:
            raise _invalid(
                f"Invalid {what}({seconds}): must be between "
                f"{self.min_ack_deadline} and {MAX_ACK_DEADLINE} seconds."
            )

    # -- delivery ------------------------------------------------------------------

    def take_locked(
        self,
        name: str,
        max_messages: int,
        *,
        deadline_seconds: int | None = None,
        stream: object | None = None,
        max_bytes: int = 0,
    ) -> list[ReceivedMessage]:
        """Lease up to ``max_messages`` deliverable messages; caller holds ``cond``.

        ``deadline_seconds`` defaults to the subscription's ack deadline (Pull);
        StreamingPull passes its stream ack deadline and itself as ``stream`` so
        that its flow control can count what it holds.
        """
        sub = self._sub(name)
        now = time.monotonic()
        self._expire_locked(now)
        seconds = deadline_seconds or sub.config.ack_deadline_seconds
        ordered = sub.config.enable_message_ordering
        dead_letter = bool(sub.dead_letter_topic)
        out: list[ReceivedMessage] = []
        taken_bytes = 0
        blocked: set[str] = set()  # ordering keys with an earlier message still outstanding
        for entry in list(sub.entries.values()):
            if len(out) >= max_messages or (max_bytes and out and taken_bytes >= max_bytes):
                break
            key = entry.message.ordering_key if ordered else ""
            if key and key in blocked:
                continue
            if entry.ack_id is not None or entry.not_before > now:
                if key:
                    blocked.add(key)
                continue
            # A dead-letter policy added after the last failure applies on the next delivery.
            if (
                dead_letter
                and entry.attempts >= sub.max_attempts
                and self._dead_letter_locked(sub, entry)
            ):
                continue
            entry.attempts += 1
            entry.ack_id = f"{sub.generation}-{entry.message.message_id}-{entry.attempts}"
            entry.deadline = now + seconds
            entry.stream = stream
            sub.leases[entry.ack_id] = entry
            taken_bytes += entry.message.ByteSize()
            out.append(
                ReceivedMessage(
                    ack_id=entry.ack_id,
                    message=entry.message,
                    # Real Pub/Sub fills delivery_attempt only under a dead-letter policy.
                    delivery_attempt=entry.attempts if dead_letter else 0,
                )
            )
        if out:
            self.cond.notify_all()  # the sweeper may need to wake earlier for the new leases
        return out

    def outstanding_locked(self, name: str, stream: object) -> tuple[int, int]:
        """Messages and bytes leased to ``stream`` and not yet settled (flow control)."""
        sub = self._subs.get(name)
        if sub is None:
            return 0, 0
        held = [e for e in sub.leases.values() if e.stream is stream]
        return len(held), sum(e.message.ByteSize() for e in held)

    def acknowledge(self, name: str, ack_ids: Iterable[str]) -> None:
        ids = list(ack_ids)
        if not ids:
            raise _invalid("No ack ids specified.")
        with self.cond:
            sub = self._sub(name)
            for ack_id in _checked_ack_ids(ids):
                entry = sub.leases.pop(ack_id, None)
                # An unknown but well-formed id is a lease that already expired (or a
                # duplicate ack): the real service accepts it silently as well.
                if entry is not None:
                    sub.entries.pop(entry.message.message_id, None)
            self.cond.notify_all()

    def modify_ack_deadline(self, name: str, ack_ids: Iterable[str], seconds: int) -> None:
        ids = list(ack_ids)
        if not ids:
            raise _invalid("No ack ids specified.")
        if not 0 <= seconds <= MAX_ACK_DEADLINE:
            raise _invalid(
                f"Invalid ack deadline ({seconds}): must be between 0 and {MAX_ACK_DEADLINE}."
            )
        with self.cond:
            sub = self._sub(name)
            now = time.monotonic()
            for ack_id in _checked_ack_ids(ids):
                entry = sub.leases.get(ack_id)
                if entry is None:
                    continue  # lease already gone; nothing to extend or release
                if seconds == 0:
                    self._release_locked(sub, entry, now)  # a nack: redeliver now
                else:
                    entry.deadline = now + seconds
            self.cond.notify_all()

    def sweep(self) -> float | None:
        """Expire overdue leases; return the monotonic time of the next event, if any."""
        with self.cond:
            now = time.monotonic()
            self._expire_locked(now)
            upcoming = [
                e.deadline if e.ack_id is not None else e.not_before
                for s in self._subs.values()
                for e in s.entries.values()
                if e.ack_id is not None or e.not_before > now
            ]
            return min(upcoming) if upcoming else None

    # -- internals (cond held) -----------------------------------------------------

    def _topic(self, name: str) -> Topic:
        topic = self._topics.get(name)
        if topic is None:
            raise _not_found(name.rsplit("/", 1)[-1])
        return topic

    def _sub(self, name: str) -> _Sub:
        sub = self._subs.get(name)
        if sub is None:
            raise _not_found(name.rsplit("/", 1)[-1])
        return sub

    def _publish_locked(self, topic: str, message: PubsubMessage) -> str:
        stored = _copy(message)
        stored.message_id = str(next(self._message_ids))
        stored.publish_time.GetCurrentTime()
        # Every attached subscription gets the same immutable message object.
        for sub in self._subs.values():
            if sub.config.topic == topic:
                sub.entries[stored.message_id] = _Entry(stored)
        # Wake held Pulls and streams; this also covers dead-letter forwarding.
        self.cond.notify_all()
        return stored.message_id

    def _expire_locked(self, now: float) -> None:
        changed = False
        for sub in list(self._subs.values()):
            for entry in list(sub.leases.values()):
                # ack_id may already be cleared by an ordered predecessor's release.
                if entry.ack_id is not None and entry.deadline <= now:
                    self._release_locked(sub, entry, now)
                    changed = True
            for entry in sub.entries.values():
                if 0 < entry.not_before <= now:
                    entry.not_before = 0.0  # backoff over: waiters must look again
                    changed = True
        if changed:
            self.cond.notify_all()

    def _release_locked(self, sub: _Sub, entry: _Entry, now: float, *, failed: bool = True) -> None:
        """End a lease after a nack or an expired deadline: dead-letter or redeliver."""
        assert entry.ack_id is not None
        del sub.leases[entry.ack_id]
        entry.ack_id, entry.stream = None, None
        if not failed:
            return
        out_of_attempts = bool(sub.dead_letter_topic) and entry.attempts >= sub.max_attempts
        if out_of_attempts and self._dead_letter_locked(sub, entry):
            return
        entry.not_before = now + self._backoff(sub, entry.attempts)
        if sub.config.enable_message_ordering and entry.message.ordering_key:
            # Ordered delivery: the later messages of the key are redelivered after it.
            key = entry.message.ordering_key
            later = False
            for other in list(sub.entries.values()):
                if other is entry:
                    later = True
                elif later and other.message.ordering_key == key and other.ack_id is not None:
                    self._release_locked(sub, other, now, failed=False)

    @staticmethod
    def _backoff(sub: _Sub, attempts: int) -> float:
        if not sub.config.HasField("retry_policy"):
            return 0.0  # no retry policy: immediate redelivery
        policy = sub.config.retry_policy
        low = _seconds(policy.minimum_backoff) if policy.HasField("minimum_backoff") else None
        high = _seconds(policy.maximum_backoff) if policy.HasField("maximum_backoff") else None
        low = DEFAULT_MIN_BACKOFF if low is None else low
        high = DEFAULT_MAX_BACKOFF if high is None else high
        return float(min(high, low * 2 ** max(attempts - 1, 0)))

    def _dead_letter_locked(self, sub: _Sub, entry: _Entry) -> bool:
        """Forward a message that ran out of attempts; False if the topic is gone.

        Without its dead-letter topic the real service keeps redelivering, so the
        message then stays on the source subscription.
        """
        if sub.dead_letter_topic not in self._topics:
            return False
        original = entry.message
        forwarded = _copy(original)
        project, sub_id = _SUBSCRIPTION_RE.match(sub.config.name).groups()
        attrs = forwarded.attributes
        attrs["CloudPubSubDeadLetterSourceDeliveryCount"] = str(entry.attempts)
        attrs["CloudPubSubDeadLetterSourceSubscription"] = sub_id
        attrs["CloudPubSubDeadLetterSourceSubscriptionProject"] = project
        attrs["CloudPubSubDeadLetterSourceTopicPublishTime"] = original.publish_time.ToJsonString()
        forwarded.ClearField("message_id")
        forwarded.ClearField("publish_time")
        self._publish_locked(sub.dead_letter_topic, forwarded)
        sub.entries.pop(original.message_id, None)
        return True

    def _validate_subscription(self, sub: Subscription) -> None:
        self.check_ack_deadline(sub.ack_deadline_seconds, "ack_deadline_seconds")
        # Delivery modes this server does not implement are refused rather than
        # silently turned into pull subscriptions.
        unsupported = {
            "push_config.push_endpoint": sub.push_config.push_endpoint,
            "bigquery_config": sub.HasField("bigquery_config"),
            "cloud_storage_config": sub.HasField("cloud_storage_config"),
            "bigtable_config": sub.HasField("bigtable_config"),
            "filter": sub.filter,
            "enable_exactly_once_delivery": sub.enable_exactly_once_delivery,
            "message_transforms": len(sub.message_transforms),
        }
        for what, value in unsupported.items():
            if value:
                raise ApiError(
                    grpc.StatusCode.UNIMPLEMENTED,
                    f"{what} is not supported by the iris-cloud Pub/Sub emulator",
                )
        policy = sub.dead_letter_policy
        if sub.HasField("dead_letter_policy") and (
            policy.dead_letter_topic or policy.max_delivery_attempts
        ):
            if not policy.dead_letter_topic:
                raise _invalid("dead_letter_policy.dead_letter_topic is required.")
            _check_name(_TOPIC_RE, policy.dead_letter_topic, "topics")
            attempts = policy.max_delivery_attempts
            if attempts and not MIN_DELIVERY_ATTEMPTS <= attempts <= MAX_DELIVERY_ATTEMPTS:
                raise _invalid(
                    f"Invalid max_delivery_attempts ({attempts}): must be between "
                    f"{MIN_DELIVERY_ATTEMPTS} and {MAX_DELIVERY_ATTEMPTS}."
                )
            if not attempts:
                policy.max_delivery_attempts = DEFAULT_MAX_DELIVERY_ATTEMPTS
            self._topic(policy.dead_letter_topic)  # "the operation will fail if it does not exist"
        if sub.HasField("retry_policy"):
            low = _seconds(sub.retry_policy.minimum_backoff)
            high = _seconds(sub.retry_policy.maximum_backoff)
            if not 0 <= low <= MAX_ACK_DEADLINE or not 0 <= high <= MAX_ACK_DEADLINE:
                raise _invalid("retry_policy backoffs must be between 0 and 600 seconds.")
            if sub.retry_policy.HasField("maximum_backoff") and high < low:
                raise _invalid("retry_policy.maximum_backoff must not be below minimum_backoff.")


def _checked_ack_ids(ack_ids: list[str]) -> list[str]:
    for ack_id in ack_ids:
        if not _ACK_ID_RE.match(ack_id):
            raise _invalid(f"You have passed an invalid ack ID to the service (ack_id={ack_id}).")
    return ack_ids


def _copy(message: _M) -> _M:
    clone = type(message)()
    clone.CopyFrom(message)
    return clone


def _check_name(pattern: re.Pattern[str], name: str, kind: str) -> None:
    match = pattern.match(name)
    if match is None or match.groups()[-1].startswith("goog"):
        raise _invalid(f"Invalid [{kind}] name: ({kind}={name})")


def _check_mask(mask: field_mask_pb2.FieldMask, allowed: frozenset[str], what: str) -> None:
    if not mask.paths:
        raise _invalid("The update_mask in the Update" + what.capitalize() + "Request must be set.")
    for path in mask.paths:
        if path.split(".", 1)[0] not in allowed:
            raise _invalid(f"Invalid update_mask provided: {what}.{path} cannot be updated.")


def _check_message(message: PubsubMessage) -> None:
    if not message.data and not message.attributes:
        raise _invalid("Some messages are empty: a message needs data or at least one attribute.")
    if len(message.attributes) > MAX_ATTRIBUTES:
        raise _invalid(f"A message may carry at most {MAX_ATTRIBUTES} attributes.")
    for key, value in message.attributes.items():
        if not key or len(key.encode()) > MAX_ATTRIBUTE_KEY_BYTES:
            raise _invalid(f"Invalid attribute key: must be 1-{MAX_ATTRIBUTE_KEY_BYTES} bytes.")
        if key.startswith("goog"):
            raise _invalid(f"The attribute key '{key}' is reserved (prefix 'goog').")
        if len(value.encode()) > MAX_ATTRIBUTE_VALUE_BYTES:
            raise _invalid(
                f"The value of attribute '{key}' exceeds {MAX_ATTRIBUTE_VALUE_BYTES} bytes."
            )


def _page(names: list[str], page_size: int, page_token: str) -> tuple[list[str], str]:
    """Offset-based paging; the token is the offset of the next page."""
    if page_size < 0:
        raise _invalid("page_size must not be negative.")
    try:
        start = int(page_token) if page_token else 0
    except ValueError:
        raise _invalid(f"Invalid page token: {page_token}") from None
    size = page_size or DEFAULT_PAGE_SIZE
    end = start + size
    return names[start:end], (str(end) if end < len(names) else "")
