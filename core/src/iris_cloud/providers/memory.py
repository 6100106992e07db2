"""The in-process provider: ``mem://NAME`` queues and ``mem://NAME`` containers.

Full broker semantics in one process, thread-safe, so that tests and demos
can rely on it: peek-lock with locks that expire, delivery counts, abandon
with a delay, lock renewal, dead-lettering (explicit and after
``max_delivery_count`` deliveries) and a per-queue dead-letter queue.

Queues and containers live in process-wide registries keyed by name: two
``open_broker("mem://orders")`` calls share one queue, as two clients of one
Service Bus namespace would. Options (URL query or keyword):

* broker: ``lock_seconds`` (default 30), ``max_delivery_count`` (default 10),
  ``max_message_bytes`` (default 256 KiB), ``access``, ``claim_check``;
* store: ``access``;
* ``access="rw" | "w" | "r"`` emulates IRIS's credentials: ``w`` may only send
  / put, ``r`` may only receive (and settle) / read and list; anything else
  raises :class:`~iris_cloud.errors.PermissionDenied` naming the right.

Lock and delivery settings belong to the opened endpoint, not the queue (as
SQS's per-receive visibility timeout): each broker applies its own.
"""

from __future__ import annotations

import functools
import heapq
import io
import itertools
import operator
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import IO, Any, ClassVar, NamedTuple, Self
from urllib.parse import unquote, urlsplit

from iris_cloud.decoding import check_decoded
from iris_cloud.errors import (
    AlreadyExists,
    ConfigurationError,
    IrisCloudError,
    LockLost,
    NotFound,
)
from iris_cloud.hookspecs import hookimpl
from iris_cloud.portlogic import held_by, raise_outcome
from iris_cloud.ports import (
    Capabilities,
    Message,
    MessageBroker,
    ObjectInfo,
    ObjectStore,
)
from iris_cloud.providers._common import (
    BROKER_RIGHTS,
    DEAD_LETTER_SUFFIX,
    DEFAULT_LOCK_SECONDS,
    DEFAULT_MAX_DELIVERY_COUNT,
    MAX_DELIVERY_REASON,
    STORE_RIGHTS,
    Access,
    check_properties,
    check_queue_name,
    merge_options,
    positive_float,
    positive_int,
    require_handle,
)

__all__ = [
    "MemoryBroker",
    "MemoryStore",
    "iris_cloud_async_broker_schemes",
    "iris_cloud_async_store_schemes",
    "iris_cloud_broker_schemes",
    "iris_cloud_public_options",
    "iris_cloud_store_schemes",
    "reset",
]


# -- broker --------------------------------------------------------------------


# Lock tokens only need to be unique in this process (an old delivery's token
# must never settle the next one): a counter, not a uuid4 per delivery.
_TOKEN_PREFIX = uuid.uuid4().hex[:16]
_TOKENS = itertools.count(1)

# A received message's locked_until is the wall-clock end of its lock, which
# ends by time.monotonic(). datetime.now() costs a receive of one message as
# much as the rest of it, so locks that end within this many seconds after
# one whose end was dated share its date: a little early, never late.
_DATED_WITHIN = 0.001


class _Handle(NamedTuple):
    """What a received message's ``raw`` holds: its queue and entry (made once per entry)."""

    queue: _Queue
    seq: int


@dataclass
class _Entry:
    seq: int
    message: Message  # checked at send (check_decoded): never decoded again
    enqueued_at: datetime
    handle: _Handle
    visible_at: float = 0.0  # time.monotonic() from which it may be delivered
    delivery_count: int = 0
    token: str | None = None
    version: int = 0  # bumped on every lock / release: older heap items are stale


class _Queue:
    """One queue's messages, in arrival order, guarded by one condition.

    ``entries`` holds every message (in arrival order, for peek and
    settlement). A receive must not scan them all: the visible ones are
    ``fresh``, the never delivered ones in arrival order (a deque: arrivals
    come in order, so the common receive pops one in O(1)), and ``ready``, a
    heap by arrival of those visible again (abandoned, lock expired);
    ``later`` is a heap of the locked or delayed ones by the time they become
    visible. Items name an entry's ``version`` (``fresh`` ones version 0); an
    item whose entry was settled or changed since is stale and dropped when
    it surfaces, so every change is O(log n) and a receive O(batch log n).
    """

    def __init__(self, name: str, dead: _Queue | None) -> None:
        self.name = name
        self.dead = dead
        self.entries: dict[int, _Entry] = {}
        self.fresh: deque[int] = deque()  # seq, of version 0
        self.ready: list[tuple[int, int]] = []  # (seq, version)
        self.later: list[tuple[float, int, int]] = []  # (visible_at, seq, version)
        # Taken as ``with q.lock`` (a C-level enter, unlike the Condition's);
        # ``cond`` waits and notifies on the same lock.
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self._seq = itertools.count(1)

    def add(self, message: Message, *, delivery_count: int = 0) -> None:
        # Called with self.lock held.
        seq = next(self._seq)
        self.entries[seq] = _Entry(
            seq=seq,
            message=message,
            enqueued_at=message.enqueued_at or datetime.now(UTC),
            handle=_Handle(self, seq),
            delivery_count=delivery_count,
        )
        self.fresh.append(seq)
        self.cond.notify_all()

    def hide(self, entry: _Entry, until: float) -> None:
        """Make ``entry`` invisible until ``until`` (monotonic); with self.lock held."""
        entry.version += 1
        entry.visible_at = until
        heapq.heappush(self.later, (until, entry.seq, entry.version))

    def release(self, entry: _Entry) -> None:
        """Make ``entry`` visible now; with self.lock held."""
        entry.version += 1
        entry.visible_at = 0.0
        heapq.heappush(self.ready, (entry.seq, entry.version))
        self.cond.notify_all()

    def next_ready(self, now: float) -> _Entry | None:
        """Pop the oldest visible entry, or ``None``; with self.lock held."""
        later, ready, fresh, entries = self.later, self.ready, self.fresh, self.entries
        while later and later[0][0] <= now:
            _, seq, version = heapq.heappop(later)
            entry = entries.get(seq)
            if entry is not None and entry.version == version:
                heapq.heappush(ready, (seq, version))
        while fresh or ready:
            # The older of the two heads: together they are in arrival order.
            if ready and (not fresh or ready[0][0] < fresh[0]):
                seq, version = heapq.heappop(ready)
            else:
                seq, version = fresh.popleft(), 0
            entry = entries.get(seq)
            if entry is not None and entry.version == version:
                return entry
        return None

    def next_visible(self) -> float | None:
        """When the earliest hidden entry becomes visible (perhaps a stale one: a wakeup early)."""
        return self.later[0][0] if self.later else None


_registry_lock = threading.Lock()
_queues: dict[str, _Queue] = {}
_containers: dict[str, _Container] = {}


def _queue(name: str) -> _Queue:
    with _registry_lock:
        q = _queues.get(name)
        if q is None:
            dead = _Queue(name + DEAD_LETTER_SUFFIX, None)
            q = _queues[name] = _Queue(name, dead)
        return q


def reset() -> None:
    """Forget every ``mem://`` queue and container of this process (between tests)."""
    with _registry_lock:
        _queues.clear()
        _containers.clear()


def _name_from_url(url: str, scheme: str) -> tuple[str, str]:
    parts = urlsplit(url)
    if parts.scheme != scheme:
        raise ConfigurationError(f"expected a {scheme}:// URL")
    name = unquote(parts.netloc)
    if not name:
        raise ConfigurationError(f"{scheme}:// URL needs a name, e.g. '{scheme}://orders'")
    return name, unquote(parts.path).strip("/")


class MemoryBroker(MessageBroker):
    """A ``mem://NAME`` queue shared by every broker of this process that opens NAME."""

    scheme: ClassVar[str] = "mem"
    capabilities: Capabilities = Capabilities(
        max_message_bytes=256 * 1024,
        max_batch=100,
        max_batch_bytes=1024 * 1024,
        native_dead_letter=True,
        delayed_retry=True,
        lock_renewal=True,
        max_delivery_count=DEFAULT_MAX_DELIVERY_COUNT,
        delivery_count_exact=True,
        peek=True,
        completes_for_all=True,
        batch_settle=True,
    )

    def __init__(
        self,
        name: str,
        *,
        lock_seconds: float = DEFAULT_LOCK_SECONDS,
        max_delivery_count: int = DEFAULT_MAX_DELIVERY_COUNT,
        max_message_bytes: int | None = None,
        access: str = "rw",
        claim_check: ObjectStore | None = None,
    ) -> None:
        super().__init__(claim_check=claim_check)
        self.name = check_queue_name(name)
        self.lock_seconds = positive_float("lock_seconds")(lock_seconds)
        self.max_delivery_count = positive_int("max_delivery_count")(max_delivery_count)
        self.access = Access(access, BROKER_RIGHTS)
        self.capabilities = replace(
            type(self).capabilities,
            max_delivery_count=self.max_delivery_count,
            max_message_bytes=max_message_bytes or type(self).capabilities.max_message_bytes,
        )
        self._lock_delta = timedelta(seconds=self.lock_seconds)
        # (monotonic end of a lock, its wall-clock end): see _DATED_WITHIN.
        self._dated = (-_DATED_WITHIN, datetime.now(UTC))
        self._queue = _queue(self.name)
        self._closed = False
        # Asked by every receive before it takes the calls that say why not.
        self._receive_refused = "receive" not in self.access.rights

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Open ``mem://NAME[?lock_seconds=&max_delivery_count=&max_message_bytes=&access=]``."""
        name, path = _name_from_url(url, "mem")
        if path:
            raise ConfigurationError("mem:// broker URLs take a queue name only: 'mem://NAME'")
        claim_check = options.pop("claim_check", None)
        opts = merge_options(
            url,
            options,
            {
                "lock_seconds": positive_float("lock_seconds"),
                "max_delivery_count": positive_int("max_delivery_count"),
                "max_message_bytes": positive_int("max_message_bytes"),
                "access": str,
            },
        )
        return cls(name, claim_check=claim_check, **opts)

    def __repr__(self) -> str:
        return f"MemoryBroker(name={self.name!r}, access={self.access.value!r})"

    @property
    def destination(self) -> str:
        """The queue's name."""
        return self.name

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigurationError(f"{self!r} is closed")

    # sending
    def _may_send(self) -> None:
        self._check_open()
        self.access.require("send", "send to mem://%s", self.name)

    def _send_batch(self, batch: list[Message]) -> None:
        now = datetime.now(UTC)
        for m in batch:
            check_properties(m.properties)
            # The queue holds only what Message promises, checked once here:
            # receive and peek hand out copies with nothing left to decode.
            check_decoded(m)
        q = self._queue
        with q.lock:
            for m in batch:
                # Copy: the caller may reuse its Message and its properties dict.
                q.add(_copy(m, now, 0, None, None))

    # receiving
    def _receive_dead_letters(self, max_messages: int, wait: float) -> list[Message]:
        return self._receive(max_messages, wait, dead=True)

    def verify(self, right: str) -> bool:
        """The broker's own rights decide (see ``access``); see :meth:`MessageBroker.verify`."""
        super().verify(right)  # checks the name of the right
        self.access.require(right, f"{right} on mem://{self.name}")
        return True

    def peek(self, max_messages: int = 1) -> list[Message]:
        """The oldest ``max_messages`` messages of the queue, locked or not, left as they are."""
        self._check_open()
        self.access.require("receive", "peek at mem://%s", self.name)
        if max_messages < 1:
            raise ConfigurationError("max_messages must be at least 1")
        q = self._queue
        with q.lock:
            # Entries are only ever added with a rising seq: the dict is in arrival order.
            entries = list(itertools.islice(q.entries.values(), max_messages))
            return [
                _copy(
                    e.message,
                    e.enqueued_at,
                    e.delivery_count,
                    e.message.dead_letter_reason,
                    e.message.dead_letter_description,
                )
                for e in entries
            ]

    def _receive(self, max_messages: int, wait: float, dead: bool = False) -> list[Message]:
        """Lock up to ``max_messages`` visible entries, oldest first, and deliver them.

        From the dead-letter queue with ``dead`` (no ``max_delivery_count``
        there). Each is a copy of the stored message (a handler may change its
        own), carrying this delivery's count, lock and handle. One method, few
        calls: every receive runs it.
        """
        q: _Queue | None = self._queue
        limit: int | None = self.max_delivery_count
        if dead:
            q, limit = self._queue.dead, None
        assert q is not None  # a main queue always has its dead-letter queue
        if self._closed or self._receive_refused:
            self._check_open()
            self.access.require("receive", "receive from mem://%s", q.name)
        if max_messages < 1:
            raise ConfigurationError("max_messages must be at least 1")
        deadline: float | None = None
        got: list[Message] = []
        with q.lock:
            while True:
                now = time.monotonic()
                until = now + self.lock_seconds
                while (entry := q.next_ready(now)) is not None:
                    if limit is not None and entry.delivery_count >= limit:
                        # Its last delivery's lock expired or it was abandoned: as
                        # Service Bus does, it goes to the dead-letter queue now.
                        self._to_dead_letters(
                            q,
                            entry,
                            MAX_DELIVERY_REASON,
                            f"delivered {entry.delivery_count} times (max_delivery_count={limit})",
                        )
                        continue
                    entry.delivery_count += 1
                    entry.token = token = f"{_TOKEN_PREFIX}{next(_TOKENS)}"
                    q.hide(entry, until)
                    if not got:
                        dated_until, locked_until = self._dated
                        if not dated_until <= until <= dated_until + _DATED_WITHIN:
                            locked_until = datetime.now(UTC) + self._lock_delta
                            self._dated = (until, locked_until)
                    stored = entry.message
                    got.append(
                        _copy(
                            stored,
                            entry.enqueued_at,
                            entry.delivery_count,
                            stored.dead_letter_reason,
                            stored.dead_letter_description,
                            token,
                            locked_until,
                            entry.handle,
                        )
                    )
                    if len(got) == max_messages:
                        return got
                if got:
                    return got
                if deadline is None:
                    deadline = now + max(0.0, wait)
                if now >= deadline:
                    return got
                timeout = deadline - now
                next_visible = q.next_visible()
                if next_visible is not None:
                    timeout = min(timeout, next_visible - now)
                q.cond.wait(max(timeout, 0.001))

    @staticmethod
    def _to_dead_letters(q: _Queue, entry: _Entry, reason: str, description: str) -> None:
        # Lock order is always main queue, then its dead-letter queue.
        del q.entries[entry.seq]
        dead = q.dead
        assert dead is not None
        with dead.lock:
            dead.add(
                _copy(entry.message, entry.enqueued_at, 0, reason, description),
                delivery_count=0,
            )

    # settlement
    def _held(self, message: Message, handle: _Handle, action: str) -> _Entry:
        """The entry ``message`` locks, with its queue's lock held by the caller."""
        q = handle.queue
        if q is not self._queue and q is not self._queue.dead:
            raise ConfigurationError(f"message was received from another queue than {self.name}")
        entry = q.entries.get(handle.seq)
        if (
            entry is None
            or entry.token != message.lock_token
            or entry.visible_at <= time.monotonic()
        ):
            raise LockLost(
                f"cannot {action} message {message.message_id}: its lock expired or it was "
                "settled; it will be (or was) delivered again"
            )
        return entry

    def _may_settle(self) -> None:
        self._check_open()
        self.access.require("receive", "settle messages of mem://%s", self.name)

    def _settled_handle(self, message: Message) -> _Handle:
        """The handle of one message to settle, once this broker may settle at all."""
        self._may_settle()
        return _handle_of(message)

    def _settle_many(
        self, messages: list[Message], action: str, settle: Callable[[_Queue, _Entry], None]
    ) -> list[IrisCloudError | None]:
        """``settle`` each held message under one lock per queue; one outcome each."""
        try:
            self._may_settle()  # once a batch: every handled message comes through here
        except IrisCloudError as exc:
            return [exc] * len(messages)
        outcomes, by_queue = held_by(messages, _handle_of, _queue_of)
        for held in by_queue.values():
            q = held[0][1].queue
            with q.lock:
                for index, handle in held:
                    try:
                        entry = self._held(messages[index], handle, action)
                    except IrisCloudError as exc:
                        outcomes[index] = exc
                        continue
                    settle(q, entry)
        return outcomes

    def complete(self, message: Message) -> None:
        """Remove ``message`` for good; :class:`LockLost` if its lock is gone."""
        raise_outcome(self.complete_many([message]))

    def complete_many(self, messages: Iterable[Message]) -> list[IrisCloudError | None]:
        """Remove several messages under one lock; one outcome each (see the port)."""
        batch = list(messages)
        outcomes = self._settle_many(batch, "complete", _remove)
        return self._completed_many(batch, outcomes)

    def abandon(self, message: Message, delay: float | None = None) -> None:
        """Release ``message`` for redelivery, after ``delay`` seconds if given."""
        raise_outcome(self.abandon_many([message], delay))

    def abandon_many(
        self, messages: Iterable[Message], delay: float | None = None
    ) -> list[IrisCloudError | None]:
        """Release several messages under one lock; one outcome each (see the port)."""
        if delay is not None and delay < 0:
            raise ConfigurationError("abandon delay must not be negative")

        def release(q: _Queue, entry: _Entry) -> None:
            entry.token = None
            if delay:
                q.hide(entry, time.monotonic() + delay)
                q.cond.notify_all()
            else:
                q.release(entry)

        return self._settle_many(list(messages), "abandon", release)

    def dead_letter(self, message: Message, reason: str, description: str = "") -> None:
        """Move ``message`` to ``NAME$dlq`` with ``reason`` and ``description``."""
        handle = self._settled_handle(message)
        q = handle.queue
        if q is not self._queue:
            raise ConfigurationError("a dead-lettered message cannot be dead-lettered again")
        with q.lock:
            entry = self._held(message, handle, "dead-letter")
            self._to_dead_letters(q, entry, reason, description)

    def renew_lock(self, message: Message) -> datetime:
        """Hold ``message`` for another ``lock_seconds``; returns the new expiry."""
        handle = self._settled_handle(message)
        q = handle.queue
        with q.lock:
            entry = self._held(message, handle, "renew the lock of")
            q.hide(entry, time.monotonic() + self.lock_seconds)
        until = datetime.now(UTC) + self._lock_delta
        message.locked_until = until
        return until

    def close(self) -> None:
        """Detach from the queue; the queue and its messages stay for other brokers."""
        self._closed = True


# What each message of a settle batch goes through: C-level callables, not
# two Python calls more per message.
_handle_of: Callable[[Message], _Handle] = functools.partial(require_handle, kind=_Handle)
_queue_of = operator.attrgetter("queue")


def _remove(q: _Queue, entry: _Entry) -> None:
    del q.entries[entry.seq]


def _copy(
    m: Message,
    enqueued_at: datetime,
    delivery_count: int,
    dead_letter_reason: str | None,
    dead_letter_description: str | None,
    lock_token: str | None = None,
    locked_until: datetime | None = None,
    raw: _Handle | None = None,
) -> Message:
    """``m``'s body and headers with a properties dict of its own, and the queue's fields.

    Positional, in :class:`Message`'s field order: a receive builds one per
    message, and keywords cost twice as much (``dataclasses.replace`` five
    times); the contract suite's header round trips catch a reordering.
    """
    return Message(
        m.body,
        m.message_id,
        m.correlation_id,
        m.content_type,
        m.subject,
        dict(m.properties),
        delivery_count,
        enqueued_at,
        lock_token,
        locked_until,
        dead_letter_reason,
        dead_letter_description,
        raw,
    )


# -- store ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Object:
    data: bytes
    content_type: str | None
    metadata: Mapping[str, str]
    etag: str
    last_modified: datetime


class _Container:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.objects: dict[str, _Object] = {}


def _container(name: str) -> _Container:
    with _registry_lock:
        c = _containers.get(name)
        if c is None:
            c = _containers[name] = _Container()
        return c


class MemoryStore(ObjectStore):
    """A ``mem://NAME[/PREFIX]`` container shared by every store of this process naming NAME."""

    scheme: ClassVar[str] = "mem"
    capabilities: Capabilities = Capabilities(
        conditional_create=True, signed_urls=False, native_watch=False
    )

    def __init__(self, name: str, *, prefix: str = "", access: str = "rw") -> None:
        if not name:
            raise ConfigurationError("a mem:// store needs a container name")
        self.name = name
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self.access = Access(access, STORE_RIGHTS)
        rights = self.access.rights
        self.capabilities = replace(
            type(self).capabilities,
            can_read="read" in rights,
            can_list="list" in rights,
            can_write="write" in rights,
        )
        self._c = _container(name)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Open ``mem://NAME[/PREFIX][?access=r|w|rw]``."""
        name, prefix = _name_from_url(url, "mem")
        opts = merge_options(url, options, {"access": str})
        return cls(name, prefix=prefix, **opts)

    def __repr__(self) -> str:
        return f"MemoryStore(name={self.name!r}, prefix={self.prefix!r})"

    @property
    def container(self) -> str:
        """The container name."""
        return self.name

    def _info_of(self, name: str, obj: _Object) -> ObjectInfo:
        return ObjectInfo(
            name=name,
            size=len(obj.data),
            content_type=obj.content_type,
            metadata=dict(obj.metadata),
            etag=obj.etag,
            last_modified=obj.last_modified,
        )

    def _put(
        self,
        name: str,
        stream: IO[bytes],
        size: int | None,
        content_type: str | None,
        metadata: dict[str, str],
        overwrite: bool,
    ) -> ObjectInfo:
        self.access.require("write", f"put {name!r}")
        key = self.prefix + name
        if not overwrite and key in self._c.objects:
            raise AlreadyExists(f"object {name!r} already exists (overwrite=False)")
        buf = io.BytesIO()
        while chunk := stream.read(self.chunk_size):
            buf.write(chunk)
        obj = _Object(
            data=buf.getvalue(),
            content_type=content_type,
            metadata=dict(metadata),
            etag=uuid.uuid4().hex,
            last_modified=datetime.now(UTC),
        )
        with self._c.lock:
            # Checked again under the lock: this is the atomic conditional create.
            if not overwrite and key in self._c.objects:
                raise AlreadyExists(f"object {name!r} already exists (overwrite=False)")
            self._c.objects[key] = obj
        return self._info_of(name, obj)

    def _get_object(self, name: str) -> _Object:
        with self._c.lock:
            obj = self._c.objects.get(self.prefix + name)
        if obj is None:
            raise NotFound(f"object {name!r} not found in mem://{self.name}")
        return obj

    def _open_read(self, name: str) -> IO[bytes]:
        self.access.require("read", f"read {name!r}")
        # BytesIO over immutable bytes shares the buffer instead of copying it.
        return io.BytesIO(self._get_object(name).data)

    def _info(self, name: str) -> ObjectInfo:
        self.access.require("read", f"read the properties of {name!r}")
        return self._info_of(name, self._get_object(name))

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        self.access.require("list", f"list mem://{self.name}")
        full = self.prefix + prefix
        with self._c.lock:
            snapshot = sorted(
                ((k, o) for k, o in self._c.objects.items() if k.startswith(full)),
                key=lambda item: item[0],
            )
        cut = len(self.prefix)
        return (self._info_of(k[cut:], o) for k, o in snapshot)

    def _delete(self, name: str) -> None:
        self.access.require("delete", f"delete {name!r}")
        with self._c.lock:
            if self._c.objects.pop(self.prefix + name, None) is None:
                raise NotFound(f"object {name!r} not found in mem://{self.name}")


@hookimpl
def iris_cloud_public_options() -> dict[str, frozenset[str]]:
    """Every ``mem://`` option: none holds a secret."""
    return {"mem": frozenset({"lock_seconds", "max_delivery_count", "max_message_bytes", "access"})}


@hookimpl
def iris_cloud_broker_schemes() -> dict[str, type[MessageBroker]]:
    """``mem://`` queues."""
    return {"mem": MemoryBroker}


@hookimpl
def iris_cloud_store_schemes() -> dict[str, type[ObjectStore]]:
    """``mem://`` containers."""
    return {"mem": MemoryStore}


@hookimpl
def iris_cloud_async_broker_schemes() -> dict[str, str]:
    """``mem://`` queues, async (imported when first opened)."""
    return {"mem": "iris_cloud.aio.builtin:AsyncMemoryBroker"}


@hookimpl
def iris_cloud_async_store_schemes() -> dict[str, str]:
    """``mem://`` containers, async."""
    return {"mem": "iris_cloud.aio.builtin:AsyncMemoryStore"}
