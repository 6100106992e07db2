"""The two ports every provider implements: :class:`MessageBroker` and :class:`ObjectStore`.

The base classes do, once for every provider, what does not depend on the
service: coercing what callers send into :class:`Message`, the claim check for
bodies over the service's limit, splitting sends into batches, checking object
names, turning bytes / files / paths into one stream for uploads, and polling
``watch``. A provider implements the underscored primitives and the settlement
calls, and declares what it can do in :class:`Capabilities` so that callers ask
instead of guessing. What the base classes decide lives in
:mod:`iris_cloud.portlogic`, shared with the async ports of :mod:`iris_cloud.aio`.
"""

from __future__ import annotations

import io
import os
import shutil
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import IO, Any, ClassVar, Self

from iris_cloud import portlogic, tracing
from iris_cloud.capabilities import Capabilities
from iris_cloud.claimcheck import DEFAULT_MAX_PAYLOAD_BYTES
from iris_cloud.errors import IrisCloudError, NotFound
from iris_cloud.messages import Message, Sendable
from iris_cloud.objects import NotificationParser, ObjectInfo, check_object_name
from iris_cloud.portlogic import MAX_SIGNED_URL_EXPIRY
from iris_cloud.private import partial_file
from iris_cloud.steps import Call, drive, drive_stream

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

BinarySource = bytes | bytearray | memoryview | IO[bytes] | os.PathLike[str] | Path


class MessageBroker(ABC):
    """One queue (or topic + subscription) endpoint.

    Subclasses implement ``_send_batch`` / ``_receive`` and the settlement
    calls; the base class coerces, claim-checks and batches. Use it as a
    context manager or call :meth:`close`.
    """

    scheme: ClassVar[str] = ""
    capabilities: Capabilities = Capabilities()
    messaging_system: ClassVar[str] = ""
    """The service as OpenTelemetry's ``messaging.system`` names it (``aws_sqs``,
    ``servicebus``, ``gcp_pubsub``); spans fall back to :attr:`scheme`."""

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

    @property
    def destination(self) -> str:
        """The queue, topic or entity this endpoint names, for span attributes ('' if none)."""
        return ""

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
        self._may_send()
        return drive(portlogic.send_steps(self, messages))

    def _may_send(self) -> None:  # noqa: B027 - most services tell at the first send
        """Raise before anything is prepared when this endpoint may not send.

        Providers that know their rights up front (the built-ins' ``access``)
        refuse here, before the claim check writes a payload for nothing.
        """

    def _prepare(self, msg: Message) -> Message:
        """Give ``msg`` an id and claim-check a body over the limit (providers may extend)."""
        return drive(portlogic.prepare_steps(self, msg))

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
        out, to come back after :data:`~iris_cloud.portlogic.CLAIM_CHECK_RETRY_DELAY`. Nothing a
        sender writes makes this raise. Only when the claim-check store
        refuses our credentials is every message of the batch abandoned and
        :class:`~iris_cloud.errors.PermissionDenied` raised: that is for the
        operator to fix, not the messages' fault.
        """
        if tracing.recording():
            with tracing.ReceiveSpan(self) as span:
                received = span.received(self._receive(max_messages, wait))
        else:  # no SDK: a span would record nothing, not worth making one per call
            received = self._receive(max_messages, wait)
        if portlogic.received_as_is(self, received):
            return received
        return drive(portlogic.received_steps(self, received))

    def _completed(self, message: Message) -> None:
        """After ``complete``: delete the message's payload if nobody else can need it.

        Providers call it at the end of :meth:`complete`. It never raises: the
        message is settled, and a payload left behind is for the lifecycle rule.
        """
        drive(portlogic.completed_steps(self, message))

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
        portlogic.check_right(right)
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
        raise portlogic.peek_refused(self)

    @abstractmethod
    def _receive(self, max_messages: int, wait: float) -> list[Message]:
        """Receive raw messages; returns an empty list when none arrived within ``wait``."""

    @abstractmethod
    def complete(self, message: Message) -> None:
        """Settle ``message`` as handled: the service forgets it."""

    @abstractmethod
    def abandon(self, message: Message, delay: float | None = None) -> None:
        """Give ``message`` back for redelivery, after ``delay`` seconds where supported."""

    def complete_many(self, messages: Iterable[Message]) -> list[IrisCloudError | None]:
        """Complete several messages in as few service calls as the service allows.

        Returns one outcome per message, in order: ``None`` where it was
        completed, else the error :meth:`complete` would have raised for it
        (:class:`~iris_cloud.errors.LockLost` for an expired or already
        settled one, :class:`~iris_cloud.errors.Unavailable` for a call that
        failed, ...). One message's failure never stops the others, and
        nothing here raises for it. Where ``capabilities.batch_settle`` the
        provider does it natively; otherwise this calls :meth:`complete` for
        each. The claim-check cleanup of :meth:`complete` applies to each.
        """
        return drive(portlogic.settle_each_steps(self.complete, list(messages)))

    def abandon_many(
        self, messages: Iterable[Message], delay: float | None = None
    ) -> list[IrisCloudError | None]:
        """Give several messages back (after ``delay`` where supported); see complete_many."""
        return drive(portlogic.settle_each_steps(self.abandon, list(messages), delay))

    def _completed_many(
        self, messages: list[Message], outcomes: list[IrisCloudError | None]
    ) -> list[IrisCloudError | None]:
        """After a native :meth:`complete_many`: :meth:`_completed` for each one completed.

        Providers return through it; it never raises and returns ``outcomes``.
        """
        return drive(portlogic.completed_many_steps(self, messages, outcomes))

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
        return drive(portlogic.dead_letters_steps(self, max_messages, wait))

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
        meta = portlogic.put_metadata(name, metadata)
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
        with partial_file(path) as out, self.open_read(name) as src:
            shutil.copyfileobj(src, out, self.chunk_size)
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
        return self._list(portlogic.check_list_prefix(prefix))

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
        return self._signed_url(*portlogic.signed_url_args(name, method, expires))

    def _signed_url(self, name: str, method: str, expires: timedelta) -> str:
        raise portlogic.cannot_sign(self)

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
        yield from drive_stream(
            portlogic.poll_watch_steps(
                self,
                prefix,
                stop=stop,
                include_existing=include_existing,
                pause=Call(stop.wait, (poll_interval,)),
                next_item=next,
            )
        )

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
