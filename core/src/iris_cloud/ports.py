"""The two ports every provider implements: :class:`MessageBroker` and :class:`ObjectStore`.

The base classes do, once for every provider, what does not depend on the
service: coercing what callers send into :class:`Message`, the claim check for
bodies over the service's limit, splitting sends into batches, checking object
names, turning bytes / files / paths into one stream for uploads, and polling
``watch``. A provider implements the underscored primitives and the settlement
calls, and declares what it can do in :class:`Capabilities` so that callers ask
instead of guessing.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import IO, Any, ClassVar, Self

from pydantic import BaseModel

from iris_cloud.claimcheck import DEFAULT_MAX_PAYLOAD_BYTES
from iris_cloud.errors import (
    ConfigurationError,
    IrisCloudError,
    MessageTooLarge,
    NotFound,
    PermissionDenied,
)
from iris_cloud.logs import get_logger
from iris_cloud.messages import _MAPPING_REFUSED, Message, Sendable
from iris_cloud.objects import NotificationParser, ObjectInfo, check_object_name
from iris_cloud.private import private_dir

__all__ = [
    "MAX_SIGNED_URL_EXPIRY",
    "BinarySource",
    "Capabilities",
    "Message",
    "MessageBroker",
    "NotificationParser",
    "ObjectInfo",
    "ObjectStore",
    "Sendable",
    "check_object_name",
    "read_full",
]

log = get_logger("iris_cloud.ports")

CLAIM_CHECK_RETRY_DELAY = 5.0
"""Seconds before a message whose payload could not be fetched for now comes back
(where ``capabilities.delayed_retry``), so a store outage is not a busy loop."""

MAX_SIGNED_URL_EXPIRY = timedelta(days=7)
"""Longest validity of a :meth:`ObjectStore.signed_url`: the most SigV4 (S3) and
V4 (GCS) signatures allow, and a bound on how long a leaked Azure SAS stays good."""

BinarySource = bytes | bytearray | memoryview | IO[bytes] | os.PathLike[str] | Path


@dataclass(frozen=True)
class Capabilities:
    """What an endpoint can do; each provider fills in the fields of its port.

    Broker fields describe the queue; store fields the container. A field a
    port does not use keeps its default.
    """

    # broker
    max_message_bytes: int = 256 * 1024
    """Largest body (plus properties) the service accepts in one message."""
    max_batch: int = 100
    """Most messages one send call to the service may carry."""
    max_batch_bytes: int | None = None
    """Most bytes one send call may carry, when the service limits the batch as a whole."""
    native_dead_letter: bool = False
    """The service keeps a dead-letter queue itself (versus one we configure)."""
    delayed_retry: bool = False
    """``abandon(delay=...)`` really delays redelivery."""
    lock_renewal: bool = True
    """``renew_lock`` extends a held message's lock."""
    max_delivery_count: int | None = None
    """Deliveries after which the service dead-letters by itself, if it does."""
    delivery_count_exact: bool = True
    """``Message.delivery_count`` is the service's own count, not an estimate."""
    peek: bool = False
    """``peek`` shows waiting messages without locking them or counting a delivery."""
    completes_for_all: bool = False
    """Completing a message removes it for every receiver (a queue, not one subscription
    of a topic), so nobody else needs its claim-checked payload afterwards."""
    # store
    conditional_create: bool = True
    """``put(overwrite=False)`` is enforced atomically by the service."""
    signed_urls: bool = False
    """``signed_url`` can hand out URLs that work without our credentials."""
    native_watch: bool = False
    """``watch`` is fed by service notifications rather than polling."""
    can_read: bool = True
    """The credentials may read objects (a write-only SAS may not)."""
    can_list: bool = True
    """The credentials may list objects."""
    can_write: bool = True
    """The credentials may write objects."""


class MessageBroker(ABC):
    """One queue (or topic + subscription) endpoint.

    Subclasses implement ``_send_batch`` / ``_receive`` and the settlement
    calls; the base class coerces, claim-checks and batches. Use it as a
    context manager or call :meth:`close`.
    """

    scheme: ClassVar[str] = ""
    capabilities: Capabilities = Capabilities()

    claim_check_max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    """Largest claim-checked payload ``receive`` fetches; a pointer to more is dead-lettered."""
    claim_check_sources: tuple[ObjectStore, ...] = ()
    """Stores besides ``claim_check`` that a received pointer may name (trusted senders'
    buckets); a pointer naming any other bucket is dead-lettered unfetched."""
    claim_check_delete: bool = False
    """Delete a claim-checked payload from ``claim_check`` once its message is completed,
    where ``capabilities.completes_for_all`` (nobody else can need it). A copy the
    service delivers again afterwards (at-least-once) is then dead-lettered with
    ``ClaimCheckFailed``; leave it off where that matters and let a lifecycle rule
    expire payloads instead."""

    def __init__(self, *, claim_check: ObjectStore | None = None) -> None:
        self.claim_check = claim_check

    @classmethod
    @abstractmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Open the endpoint named by ``url`` (``scheme://...``) with provider options."""

    # -- sending -------------------------------------------------------------
    def send(self, messages: Sendable | Iterable[Sendable]) -> list[str]:
        """Send one or more messages; returns their message ids in order.

        Each is a :class:`Message`, bytes, str or pydantic model (see
        :meth:`Message.coerce`); a dict or other mapping raises ``TypeError``
        (it is not one message per key). Bodies over
        ``capabilities.max_message_bytes`` go to the claim-check store when
        one is configured, otherwise :class:`MessageTooLarge` is raised before
        anything is sent.
        """
        items: list[Sendable]
        if isinstance(messages, Message | bytes | bytearray | memoryview | str | BaseModel):
            items = [messages]
        elif isinstance(messages, Mapping):
            # Iterating it would send one message per key.
            raise TypeError(_MAPPING_REFUSED)
        else:
            items = list(messages)
        prepared = [self._prepare(Message.coerce(m)) for m in items]
        ids: list[str] = []
        for batch in self._batches(prepared):
            self._send_batch(batch)
            ids.extend(m.message_id for m in batch)
        return ids

    def _prepare(self, msg: Message) -> Message:
        if not msg.message_id:
            msg = replace(msg, message_id=uuid.uuid4().hex)
        if msg.size <= self.capabilities.max_message_bytes:
            return msg
        if self.claim_check is None:
            raise MessageTooLarge(
                f"message {msg.message_id} is {msg.size} bytes, over this endpoint's limit of "
                f"{self.capabilities.max_message_bytes}; configure a claim_check store"
            )
        from iris_cloud.claimcheck import offload

        return offload(msg, self.claim_check)

    def _batches(self, messages: list[Message]) -> Iterator[list[Message]]:
        caps = self.capabilities
        limit = caps.max_batch_bytes
        batch: list[Message] = []
        used = 0
        for msg in messages:
            full = len(batch) >= caps.max_batch or (
                limit is not None and batch and used + msg.size > limit
            )
            if full:
                yield batch
                batch, used = [], 0
            batch.append(msg)
            used += msg.size
        if batch:
            yield batch

    @abstractmethod
    def _send_batch(self, batch: list[Message]) -> None:
        """Send messages that already fit one service call (count and bytes)."""

    # -- receiving -----------------------------------------------------------
    def receive(self, max_messages: int = 1, wait: float = 0.0) -> list[Message]:
        """Receive up to ``max_messages`` under peek-lock, waiting up to ``wait`` seconds.

        Each message is decoded on its own and claim-checked bodies are
        fetched back before the messages are returned. A message that cannot
        be decoded (reason ``DecodeFailed``) or whose pointer is invalid,
        over :attr:`claim_check_max_bytes` or whose payload is gone (reason
        ``ClaimCheckFailed``) can never be handled: it goes to the
        dead-letter queue, with a description naming the failure's class and
        field paths only, and is left out; the rest of the batch is returned.
        One whose payload cannot be fetched for now is abandoned and left
        out, to come back after :data:`CLAIM_CHECK_RETRY_DELAY`. Nothing a
        sender writes makes this raise. Only when the claim-check store
        refuses our credentials is every message of the batch abandoned and
        :class:`~iris_cloud.errors.PermissionDenied` raised: that is for the
        operator to fix, not the messages' fault.
        """
        from iris_cloud.claimcheck import is_claim_checked
        from iris_cloud.decoding import DECODE_FAILED, UndecodableMessage, failure_text

        received = self._receive(max_messages, wait)
        out: list[Message] = []
        for index, msg in enumerate(received):
            if isinstance(msg, UndecodableMessage):
                self._reject(msg, DECODE_FAILED, msg.decode_error)
                continue
            if self.claim_check is None or not is_claim_checked(msg):
                out.append(msg)
                continue
            try:
                out.append(self._restore(msg, self.claim_check))
            except PermissionDenied:
                for held in [*out, *received[index:]]:
                    self._give_back(held)
                raise
            except IrisCloudError as exc:
                if exc.retryable:
                    log.warning(
                        "claim check of message %s failed (%s), abandoned",
                        msg.message_id,
                        type(exc).__name__,
                    )
                    self._give_back(msg, CLAIM_CHECK_RETRY_DELAY)
                else:
                    self._reject(msg, "ClaimCheckFailed", failure_text(exc))
            except Exception as exc:  # the pointer is the sender's: anything may fail
                self._reject(msg, "ClaimCheckFailed", failure_text(exc))
        return out

    def _restore(self, msg: Message, store: ObjectStore) -> Message:
        from iris_cloud.claimcheck import restore

        return restore(
            msg, store, max_bytes=self.claim_check_max_bytes, sources=self.claim_check_sources
        )

    def _completed(self, message: Message) -> None:
        """After ``complete``: delete the message's payload if nobody else can need it.

        Providers call it at the end of :meth:`complete`. It never raises: the
        message is settled, and a payload left behind is for the lifecycle rule.
        """
        name = message.claim_check_name
        if not (name and self.claim_check_delete and self.capabilities.completes_for_all):
            return
        if self.claim_check is None:
            return
        try:
            self.claim_check.delete(name)
        except NotFound:
            pass  # deleted by an earlier completion of a copy
        except Exception as exc:
            log.warning(
                "claim-check payload of message %s not deleted (%s)",
                message.message_id,
                type(exc).__name__,
            )

    def _reject(self, msg: Message, reason: str, description: str) -> None:
        """Dead-letter a message that can never be handled; never raises.

        If even that fails (no dead-letter queue, a lost lock), the message is
        given back with a delay: it is not lost, and it costs no other message.
        """
        log.warning(
            "message %s cannot be handled (%s: %s); dead-lettering it",
            msg.message_id,
            reason,
            description,
        )
        try:
            self.dead_letter(msg, reason, description)
        except Exception as exc:
            log.error(
                "dead-lettering message %s failed (%s); it is given back",
                msg.message_id,
                type(exc).__name__,
            )
            self._give_back(msg, CLAIM_CHECK_RETRY_DELAY)

    def _give_back(self, msg: Message, delay: float | None = None) -> None:
        try:
            self.abandon(msg, delay=delay)
        except Exception as exc:  # its lock expires instead
            log.warning("abandoning message %s failed (%s)", msg.message_id, type(exc).__name__)

    def verify(self, right: str) -> bool:
        """Confirm, without side effects, that the credentials hold ``right``.

        ``right`` is ``"send"`` or ``"receive"``. Returns ``True`` when the
        service confirmed the right, ``False`` when it cannot be told here
        without sending or taking a message; raises :class:`PermissionDenied`
        when the service refused it (:class:`CredentialsRejected` when it did
        not accept the credentials at all). Nothing is sent, taken, locked or
        counted. The default confirms receive by a :meth:`peek` where the
        service has one; providers that can do more override it.
        """
        if right not in ("send", "receive"):
            raise ConfigurationError(f"no such broker right: {right!r} (send or receive)")
        if right == "receive" and self.capabilities.peek:
            self.peek()
            return True
        return False

    def peek(self, max_messages: int = 1) -> list[Message]:
        """Look at up to ``max_messages`` messages, oldest first, without taking them.

        Nothing changes: no lock is taken and no delivery is counted, so a
        peeked message's ``delivery_count`` is the deliveries so far. It needs
        the receive right, returns at once, and what it returns cannot be
        settled; claim-checked bodies stay pointers. Services that cannot look
        without taking (SQS, Pub/Sub) say so in ``capabilities.peek``, and this
        raises :class:`ConfigurationError` there.
        """
        raise ConfigurationError(
            f"{type(self).__name__} cannot peek: the service has no way to look at a "
            "message without receiving it (capabilities.peek is False)"
        )

    @abstractmethod
    def _receive(self, max_messages: int, wait: float) -> list[Message]:
        """Receive raw messages; returns an empty list when none arrived within ``wait``."""

    @abstractmethod
    def complete(self, message: Message) -> None:
        """Settle ``message`` as handled: the service forgets it."""

    @abstractmethod
    def abandon(self, message: Message, delay: float | None = None) -> None:
        """Give ``message`` back for redelivery, after ``delay`` seconds where supported."""

    @abstractmethod
    def dead_letter(self, message: Message, reason: str, description: str = "") -> None:
        """Move ``message`` to the dead-letter queue with ``reason`` and ``description``."""

    @abstractmethod
    def renew_lock(self, message: Message) -> datetime | None:
        """Extend the lock on ``message``; returns the new expiry when the service tells it."""

    def receive_dead_letters(self, max_messages: int = 10, wait: float = 0.0) -> list[Message]:
        """Receive from the dead-letter queue (peek-lock; complete them to remove them).

        Claim-checked bodies are fetched back; one that cannot be fetched (the
        reason it may be here) comes as it lies, pointer and all, so that it
        can be looked at and settled.
        """
        received = self._receive_dead_letters(max_messages, wait)
        if self.claim_check is None:
            return received
        out: list[Message] = []
        for msg in received:
            try:
                out.append(self._restore(msg, self.claim_check))
            except Exception as exc:  # the pointer is the sender's: anything may fail
                log.warning(
                    "dead letter %s keeps its claim-check pointer (%s)",
                    msg.message_id,
                    type(exc).__name__,
                )
                out.append(msg)
        return out

    @abstractmethod
    def _receive_dead_letters(self, max_messages: int, wait: float) -> list[Message]:
        """Receive raw messages from the dead-letter queue, as :meth:`_receive` does."""

    def close(self) -> None:  # noqa: B027 - providers without connections need no cleanup
        """Release connections; the broker cannot be used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_full(stream: IO[bytes], size: int) -> bytes:
    """Read ``size`` bytes from ``stream``; shorter only at its end.

    Raw streams (pipes, sockets, unbuffered files) may return short reads, so
    providers that upload in fixed-size parts loop here rather than trust one read.
    """
    parts: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


class ObjectStore(ABC):
    """One container / bucket, optionally under a prefix.

    Calls are stateless and take object names relative to the store's prefix.
    Subclasses implement the underscored primitives; names are checked here.
    """

    scheme: ClassVar[str] = ""
    capabilities: Capabilities = Capabilities()
    chunk_size: ClassVar[int] = 8 * 1024 * 1024
    prefix: str = ""
    """The prefix every object name is placed under in :attr:`container` ('' or ending
    in '/'): an object's full key there is ``prefix + name``."""

    @classmethod
    @abstractmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Open the store named by ``url`` with provider options."""

    @property
    @abstractmethod
    def container(self) -> str:
        """The bucket / container name (claim-check pointers carry it)."""

    # -- writing -------------------------------------------------------------
    def put(
        self,
        name: str,
        data: BinarySource,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        overwrite: bool = False,
    ) -> ObjectInfo:
        """Upload ``data`` (bytes, a binary file object or a path) as ``name``.

        Streams in chunks, so a multi-GB file is uploaded in constant memory.
        With ``overwrite=False`` an existing object raises :class:`AlreadyExists`
        and is left untouched. A failed upload leaves no partial object.
        """
        check_object_name(name)
        meta = {str(k): str(v) for k, v in (metadata or {}).items()}
        if isinstance(data, bytes | bytearray | memoryview):
            stream: IO[bytes] = io.BytesIO(bytes(data))
            return self._put(name, stream, len(data), content_type, meta, overwrite)
        if isinstance(data, os.PathLike):
            path = Path(data)
            with path.open("rb") as fh:
                return self._put(name, fh, path.stat().st_size, content_type, meta, overwrite)
        return self._put(name, data, None, content_type, meta, overwrite)

    @abstractmethod
    def _put(
        self,
        name: str,
        stream: IO[bytes],
        size: int | None,
        content_type: str | None,
        metadata: dict[str, str],
        overwrite: bool,
    ) -> ObjectInfo:
        """Upload from ``stream`` (``size`` bytes if known) in chunks."""

    # -- reading -------------------------------------------------------------
    def get(self, name: str) -> bytes:
        """The whole content of ``name``."""
        with self.open_read(name) as fh:
            return fh.read()

    def open_read(self, name: str) -> IO[bytes]:
        """A binary stream of ``name``'s content; close it when done."""
        return self._open_read(check_object_name(name))

    @abstractmethod
    def _open_read(self, name: str) -> IO[bytes]:
        """Open a streaming read of a checked name."""

    def download_to(self, name: str, path: str | os.PathLike[str]) -> ObjectInfo:
        """Stream ``name`` into the file ``path``; the file appears only when complete."""
        target = Path(path)
        private_dir(target.parent)
        # mkstemp creates the file 0600.
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, self.open_read(name) as src:
                shutil.copyfileobj(src, out, self.chunk_size)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.info(name)

    def info(self, name: str) -> ObjectInfo:
        """Size, content type, metadata and etag of ``name``; :class:`NotFound` if absent."""
        return self._info(check_object_name(name))

    @abstractmethod
    def _info(self, name: str) -> ObjectInfo:
        """Describe a checked name."""

    def exists(self, name: str) -> bool:
        """Whether ``name`` exists (needs read rights)."""
        try:
            self.info(name)
        except NotFound:
            return False
        return True

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose names start with ``prefix``, in name order, paging lazily."""
        if prefix:
            check_object_name(prefix.rstrip("/") or "x")
        return self._list(prefix)

    @abstractmethod
    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        """List objects under a checked prefix, in name order."""

    def delete(self, name: str) -> None:
        """Remove ``name``; :class:`NotFound` if absent."""
        self._delete(check_object_name(name))

    @abstractmethod
    def _delete(self, name: str) -> None:
        """Delete a checked name."""

    def signed_url(
        self, name: str, method: str = "GET", expires: timedelta = timedelta(hours=1)
    ) -> str:
        """A URL that allows ``method`` on ``name`` until ``expires`` without our credentials.

        ``expires`` is 1 second to :data:`MAX_SIGNED_URL_EXPIRY` (7 days) on
        every provider. Raises :class:`ConfigurationError` outside that range
        and where the credentials cannot sign (see ``capabilities.signed_urls``).
        """
        if method.upper() not in ("GET", "PUT"):
            raise ConfigurationError(f"signed_url method must be GET or PUT, not {method!r}")
        if not timedelta(seconds=1) <= expires <= MAX_SIGNED_URL_EXPIRY:
            raise ConfigurationError(
                f"signed_url expires must be 1 second to 7 days, not {expires}"
            )
        return self._signed_url(check_object_name(name), method.upper(), expires)

    def _signed_url(self, name: str, method: str, expires: timedelta) -> str:
        raise ConfigurationError(f"{type(self).__name__} cannot sign URLs")

    def watch(
        self,
        prefix: str = "",
        *,
        poll_interval: float = 1.0,
        stop: threading.Event | None = None,
        include_existing: bool = False,
    ) -> Iterator[ObjectInfo]:
        """Yield objects as they appear under ``prefix`` until ``stop`` is set.

        Existing objects are skipped unless ``include_existing``. Where the
        provider has notifications configured (``capabilities.native_watch``),
        they are followed (see :mod:`iris_cloud.watching`); otherwise
        :meth:`list` is polled every ``poll_interval`` seconds.
        """
        source = self._notifications()
        if source is not None:
            from iris_cloud.watching import watch_notifications

            broker, parse = source
            with broker:
                yield from watch_notifications(
                    self,
                    broker,
                    parse,
                    prefix,
                    poll_interval=poll_interval,
                    stop=stop,
                    include_existing=include_existing,
                )
            return
        stop = stop or threading.Event()
        seen: set[tuple[str, str | None]] = set()
        if not include_existing:
            seen = {(o.name, o.etag) for o in self.list(prefix)}
        while not stop.is_set():
            for obj in self.list(prefix):
                key = (obj.name, obj.etag)
                if key not in seen:
                    seen.add(key)
                    yield obj
            stop.wait(poll_interval)

    def _notifications(
        self,
    ) -> tuple[MessageBroker, NotificationParser] | None:
        """The broker carrying this store's object-created notifications, and their parser.

        A new broker each call (``watch`` closes it); ``None`` when none is
        configured, and ``watch`` then polls.
        """
        return None

    def close(self) -> None:  # noqa: B027 - stores without connections need no cleanup
        """Release connections."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
