"""Queue semantics of the emulator, independent of AMQP.

Everything here runs on the server's single event-loop thread, so there is no
locking: the AMQP layer calls in from proton events, timers call back through
the injected :class:`Scheduler`.

Delivery counts follow Service Bus as the Python SDK reports it: a message
first arrives with ``delivery_count == 0``; each abandon or lock expiry adds one;
a message whose count reaches the entity's max delivery count is moved to the
dead-letter queue with reason ``MaxDeliveryCountExceeded`` instead of being
offered again.
"""

from __future__ import annotations

import heapq
import itertools
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from proton import symbol, timestamp

from ._codec import StoredBody

DEAD_LETTER_SUFFIX = "/$deadletterqueue"
SUBSCRIPTIONS_SEGMENT = "/subscriptions/"

ACTIVE = 0
DEFERRED = 1
SCHEDULED = 2

REASON_MAX_DELIVERY = "MaxDeliveryCountExceeded"
REASON_MAX_DELIVERY_DESCRIPTION = "Message could not be consumed after {} delivery attempts."


def now_ms() -> int:
    """Wall-clock milliseconds, the unit of AMQP timestamps."""
    return int(time.time() * 1000)


class Cancellable(Protocol):
    """A scheduled callback that can be called off."""

    def cancel(self) -> None:
        """Stop the callback from running."""


class Scheduler(Protocol):
    """Runs callbacks later on the broker's thread."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        """Run ``callback`` after ``delay`` seconds."""


class EntityNotFound(LookupError):
    """The queue, topic or subscription does not exist."""


class LockLost(LookupError):
    """The lock token is unknown or its lock has expired."""


class MessageNotFound(LookupError):
    """No message with that sequence number is in the requested state."""


@dataclass(eq=False)
class StoredMessage:
    """One message in an entity, with its broker-side state."""

    seq: int
    body: StoredBody
    enqueued_ms: int
    state: int = ACTIVE
    delivery_count: int = 0
    lock: Lock | None = None
    expires_ms: int | None = None
    available_ms: int = 0  # scheduled enqueue time for SCHEDULED messages

    def annotations(self, lock: Lock | None) -> dict[str, Any]:
        """The broker annotations for one delivery (or peek) of this message."""
        out: dict[str, Any] = {
            "x-opt-enqueued-time": timestamp(self.enqueued_ms),
            "x-opt-sequence-number": self.seq,
        }
        if self.state != ACTIVE:
            out["x-opt-message-state"] = self.state
        if lock is not None:
            out["x-opt-locked-until"] = timestamp(lock.locked_until_ms)
            out["x-opt-lock-token"] = lock.token
        return out

    def encode(self, lock: Lock | None) -> bytes:
        """Encode this message for a delivery or a peek."""
        return self.body.encode(self.delivery_count, self.annotations(lock))


@dataclass(eq=False)
class Lock:
    """A peek-lock on one message, held until settled or expired.

    ``delivery`` is the AMQP layer's handle on the transfer that carried the
    message (None when the lock was taken through the management node); its
    ``finish()`` settles that transfer once the message is settled.
    """

    token: uuid.UUID
    entity: Entity
    message: StoredMessage
    locked_until_ms: int
    timer: Cancellable | None = None
    delivery: Any = None


@dataclass(eq=False)
class Entity:
    """A queue, a topic subscription, or the dead-letter queue of either."""

    name: str
    max_delivery_count: int | None
    lock_duration: float
    dead_letter: Entity | None = None
    messages: dict[int, StoredMessage] = field(default_factory=dict)
    consumers: list[Any] = field(default_factory=list)  # AMQP links, owned by the server
    _ready: list[int] = field(default_factory=list)  # heap of sequence numbers

    @property
    def path(self) -> str:
        """The case-insensitive lookup key."""
        return self.name.lower()

    def offer(self, message: StoredMessage) -> None:
        """Make ``message`` receivable again, in sequence-number order."""
        message.state = ACTIVE
        message.lock = None
        heapq.heappush(self._ready, message.seq)

    def has_ready(self) -> bool:
        """Whether a receive would find a message right now (drops stale heap entries)."""
        while self._ready:
            message = self.messages.get(self._ready[0])
            if message is not None and message.state == ACTIVE and message.lock is None:
                if message.expires_ms is None or message.expires_ms > now_ms():
                    return True
                # Expired messages are dropped, as on an entity without
                # dead-lettering on expiration (the Service Bus default).
                del self.messages[message.seq]
            heapq.heappop(self._ready)
        return False

    def pop_ready(self) -> StoredMessage | None:
        """Take the next receivable message out of the ready heap."""
        if not self.has_ready():
            return None
        return self.messages[heapq.heappop(self._ready)]

    def active_count(self) -> int:
        """Messages in the entity that a receiver could get (now or after a lock)."""
        return sum(1 for m in self.messages.values() if m.state == ACTIVE)


class Broker:
    """All entities of one emulated namespace and the operations on them."""

    def __init__(
        self,
        scheduler: Scheduler,
        *,
        lock_duration: float = 30.0,
        max_delivery_count: int = 10,
        auto_create: bool = True,
        on_available: Callable[[Entity], None] = lambda entity: None,
    ) -> None:
        self._scheduler = scheduler
        self.lock_duration = lock_duration
        self.max_delivery_count = max_delivery_count
        self.auto_create = auto_create
        self.on_available = on_available
        self._entities: dict[str, Entity] = {}
        self._topics: dict[str, list[Entity]] = {}
        self._topic_names: dict[str, str] = {}
        self._locks: dict[uuid.UUID, Lock] = {}
        self._sequence = itertools.count(1)

    # -- entities ---------------------------------------------------------

    def _new_entity(self, name: str) -> Entity:
        entity = Entity(name, self.max_delivery_count, self.lock_duration)
        # A dead-letter queue never dead-letters again: messages there can be
        # abandoned any number of times, as on Service Bus.
        entity.dead_letter = Entity(name + "/$DeadLetterQueue", None, self.lock_duration)
        self._entities[entity.path] = entity
        self._entities[entity.dead_letter.path] = entity.dead_letter
        return entity

    def create_queue(self, name: str) -> Entity:
        """Create queue ``name`` (idempotent) and return it."""
        existing = self._entities.get(name.lower())
        return existing if existing is not None else self._new_entity(name)

    def create_subscription(self, topic: str, subscription: str) -> Entity:
        """Create ``topic`` and its ``subscription`` (idempotent) and return the subscription."""
        self._topic_names.setdefault(topic.lower(), topic)
        subscribers = self._topics.setdefault(topic.lower(), [])
        path = f"{topic}/Subscriptions/{subscription}"
        existing = self._entities.get(path.lower())
        if existing is not None:
            return existing
        entity = self._new_entity(path)
        subscribers.append(entity)
        return entity

    def receivable(self, path: str) -> Entity:
        """The queue, subscription or dead-letter queue a receiver attaches to."""
        key = path.strip("/").lower()
        entity = self._entities.get(key)
        if entity is not None:
            return entity
        if not self.auto_create:
            raise EntityNotFound(path)
        base = key[: -len(DEAD_LETTER_SUFFIX)] if key.endswith(DEAD_LETTER_SUFFIX) else key
        original = path.strip("/")[: len(base)]  # keep the caller's casing for the name
        if SUBSCRIPTIONS_SEGMENT in base:
            split = base.index(SUBSCRIPTIONS_SEGMENT)
            topic = original[:split]
            subscription = original[split + len(SUBSCRIPTIONS_SEGMENT) :]
            self.create_subscription(topic, subscription)
        elif base in self._topics:
            raise EntityNotFound(f"{path} is a topic; receive from one of its subscriptions")
        else:
            self.create_queue(original)
        return self._entities[key]

    def sendable(self, path: str) -> list[Entity]:
        """Where a message sent to ``path`` lands: a queue, or a topic's subscriptions."""
        key = path.strip("/").lower()
        if key in self._topics:
            return list(self._topics[key])
        if key.endswith(DEAD_LETTER_SUFFIX) or SUBSCRIPTIONS_SEGMENT in key:
            raise EntityNotFound(f"cannot send to {path}")
        entity = self._entities.get(key)
        if entity is not None:
            return [entity]
        if not self.auto_create:
            raise EntityNotFound(path)
        return [self.create_queue(path.strip("/"))]

    def entity(self, path: str) -> Entity:
        """An existing receivable entity (for the Python API)."""
        try:
            return self._entities[path.strip("/").lower()]
        except KeyError:
            raise EntityNotFound(path) from None

    def entity_names(self) -> list[str]:
        """Names of all queues and subscriptions (without dead-letter queues)."""
        return [e.name for e in self._entities.values() if e.max_delivery_count is not None]

    def purge(self) -> None:
        """Drop every message and lock; entities (and attached receivers) stay."""
        for held in self._locks.values():
            if held.timer is not None:
                held.timer.cancel()
            self._settle_delivery(held)
        self._locks.clear()
        for entity in self._entities.values():
            entity.messages.clear()
            entity._ready.clear()

    # -- sending ----------------------------------------------------------

    def enqueue(self, targets: Iterable[Entity], bodies: Iterable[StoredBody]) -> list[int]:
        """Store messages in every target entity; returns the sequence numbers of the first."""
        sequence_numbers: list[int] = []
        targets = list(targets)
        for body in bodies:
            for index, entity in enumerate(targets):
                seq = self._store(entity, body)
                if index == 0:
                    sequence_numbers.append(seq)
        return sequence_numbers

    def _store(self, entity: Entity, body: StoredBody, *, scheduled_ms: int | None = None) -> int:
        now = now_ms()
        seq = next(self._sequence)
        if scheduled_ms is None:
            raw = body.annotations.get(symbol("x-opt-scheduled-enqueue-time"))
            scheduled_ms = int(raw) if raw is not None else None
        ttl = body.ttl_ms
        message = StoredMessage(seq=seq, body=body, enqueued_ms=now)
        entity.messages[seq] = message
        if scheduled_ms is not None and scheduled_ms > now:
            message.state = SCHEDULED
            message.available_ms = scheduled_ms
            message.enqueued_ms = scheduled_ms
            self._scheduler.call_later(
                (scheduled_ms - now) / 1000, lambda: self._activate(entity, message)
            )
        else:
            entity.offer(message)
            self.on_available(entity)
        if ttl:
            message.expires_ms = message.enqueued_ms + ttl
        return seq

    def _activate(self, entity: Entity, message: StoredMessage) -> None:
        if entity.messages.get(message.seq) is message and message.state == SCHEDULED:
            entity.offer(message)
            self.on_available(entity)

    def schedule(
        self, targets: Iterable[Entity], bodies: list[tuple[StoredBody, int]]
    ) -> list[int]:
        """Store messages that become receivable at their scheduled time (ms)."""
        targets = list(targets)
        sequence_numbers = []
        for body, when_ms in bodies:
            for index, entity in enumerate(targets):
                seq = self._store(entity, body, scheduled_ms=when_ms)
                if index == 0:
                    sequence_numbers.append(seq)
        return sequence_numbers

    def cancel_scheduled(self, targets: Iterable[Entity], sequence_numbers: Iterable[int]) -> None:
        """Drop scheduled messages that have not become receivable yet."""
        for entity in targets:
            for seq in sequence_numbers:
                message = entity.messages.get(seq)
                if message is not None and message.state == SCHEDULED:
                    del entity.messages[seq]

    # -- receiving --------------------------------------------------------

    def acquire(self, entity: Entity, *, lock: bool) -> tuple[StoredMessage, Lock | None] | None:
        """Take the next message: locked (peek-lock) or removed (receive-and-delete)."""
        message = entity.pop_ready()
        if message is None:
            return None
        if not lock:
            del entity.messages[message.seq]
            return message, None
        return message, self._lock(entity, message)

    def _lock(self, entity: Entity, message: StoredMessage) -> Lock:
        token = uuid.uuid4()
        held = Lock(token, entity, message, now_ms() + int(entity.lock_duration * 1000))
        message.lock = held
        self._locks[token] = held
        self._arm(held)
        return held

    def _arm(self, held: Lock) -> None:
        if held.timer is not None:
            held.timer.cancel()
        delay = max(0.0, (held.locked_until_ms - now_ms()) / 1000)
        held.timer = self._scheduler.call_later(delay, lambda: self._expire(held))

    def _expire(self, held: Lock) -> None:
        if self._locks.get(held.token) is not held:
            return
        if now_ms() < held.locked_until_ms:  # renewed after the timer was armed
            self._arm(held)
            return
        self._release(held, failed=True)

    def _take(self, token: uuid.UUID) -> Lock:
        held = self._locks.pop(token, None)
        if held is None:
            raise LockLost(f"the lock {token} is unknown or has expired")
        if held.timer is not None:
            held.timer.cancel()
        held.message.lock = None
        self._settle_delivery(held)
        return held

    def _settle_delivery(self, held: Lock) -> None:
        # The AMQP layer's delivery handle settles at most once, so this is a
        # no-op when the client already settled on the link.
        delivery, held.delivery = held.delivery, None
        if delivery is not None:
            delivery.finish()

    def _release(self, held: Lock, *, failed: bool) -> None:
        """End a lock without settling the message: offer it again or dead-letter it."""
        self._locks.pop(held.token, None)
        if held.timer is not None:
            held.timer.cancel()
        message, entity = held.message, held.entity
        message.lock = None
        # A lock that expired while its delivery is still unsettled: the
        # client's late settlement is answered with message-lock-lost, so the
        # delivery stays open until then (the AMQP layer keeps its own map).
        if failed:
            message.delivery_count += 1
        limit = entity.max_delivery_count
        if failed and limit is not None and message.delivery_count >= limit:
            self._move_to_dead_letter(
                entity, message, REASON_MAX_DELIVERY, REASON_MAX_DELIVERY_DESCRIPTION.format(limit)
            )
            return
        if message.state == DEFERRED:  # an abandoned deferred message stays deferred
            return
        entity.offer(message)
        self.on_available(entity)

    def lock_of(self, token: uuid.UUID) -> Lock | None:
        """The live lock for ``token``, if any."""
        return self._locks.get(token)

    def check_lock(self, path: str, token: uuid.UUID) -> None:
        """Raise :class:`LockLost` unless ``token`` locks a message of the entity at ``path``.

        A lock is only good on its own entity's management node, so a right
        on one queue cannot settle or renew a message of another.
        """
        held = self._locks.get(token)
        if held is None or held.entity.path != path.strip("/").lower():
            raise LockLost(f"the lock {token} is unknown or has expired")

    def complete(self, token: uuid.UUID) -> None:
        """Remove a locked message for good."""
        held = self._take(token)
        del held.entity.messages[held.message.seq]

    def abandon(self, token: uuid.UUID, *, failed: bool = True) -> None:
        """Unlock a message; ``failed`` counts the attempt (abandon) or not (release)."""
        held = self._locks.get(token)
        if held is None:
            raise LockLost(f"the lock {token} is unknown or has expired")
        self._settle_delivery(held)
        self._release(held, failed=failed)

    def defer(self, token: uuid.UUID) -> None:
        """Set a locked message aside; only receive-by-sequence-number gets it back."""
        held = self._take(token)
        held.message.state = DEFERRED

    def dead_letter(self, token: uuid.UUID, reason: str | None, description: str | None) -> None:
        """Move a locked message to its entity's dead-letter queue."""
        held = self._take(token)
        self._move_to_dead_letter(held.entity, held.message, reason, description)

    def _move_to_dead_letter(
        self, entity: Entity, message: StoredMessage, reason: str | None, description: str | None
    ) -> None:
        del entity.messages[message.seq]
        target = entity.dead_letter
        if target is None:  # dead-lettering from a dead-letter queue keeps the message there
            target = entity
        props = dict(message.body.application_properties or {})
        # Service Bus records the reason as application properties of the
        # dead-lettered message; the SDK reads them back from there.
        if reason is not None:
            props["DeadLetterReason"] = reason
        if description is not None:
            props["DeadLetterErrorDescription"] = description
        message.body.application_properties = props
        message.expires_ms = None  # dead-lettered messages do not expire
        target.messages[message.seq] = message
        target.offer(message)
        self.on_available(target)

    def renew(self, token: uuid.UUID) -> int:
        """Extend a lock by the entity's lock duration; returns the new expiry (ms)."""
        held = self._locks.get(token)
        if held is None:
            raise LockLost(f"the lock {token} is unknown or has expired")
        held.locked_until_ms = now_ms() + int(held.entity.lock_duration * 1000)
        return held.locked_until_ms

    def peek(self, entity: Entity, from_seq: int, count: int) -> list[StoredMessage]:
        """Messages from ``from_seq`` on, in order, without locking them."""
        now = now_ms()
        found = [
            m
            for seq, m in entity.messages.items()
            if seq >= from_seq and (m.expires_ms is None or m.expires_ms > now)
        ]
        found.sort(key=lambda m: m.seq)
        return found[:count]

    def receive_deferred(
        self, entity: Entity, sequence_numbers: Iterable[int], *, lock: bool
    ) -> list[tuple[StoredMessage, Lock | None]]:
        """Take deferred messages by sequence number (locked, or removed)."""
        out: list[tuple[StoredMessage, Lock | None]] = []
        for seq in sequence_numbers:
            message = entity.messages.get(seq)
            if message is None or message.state != DEFERRED or message.lock is not None:
                raise MessageNotFound(f"no deferred message with sequence number {seq}")
            if lock:
                out.append((message, self._lock(entity, message)))
            else:
                del entity.messages[seq]
                out.append((message, None))
        return out
