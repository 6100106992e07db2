"""The async ports: :class:`AsyncMessageBroker` and :class:`AsyncObjectStore`.

The same methods, arguments, semantics, :class:`~iris_cloud.ports.Capabilities`
and errors as :class:`~iris_cloud.ports.MessageBroker` and
:class:`~iris_cloud.ports.ObjectStore`, awaited. The base classes make the
same decisions as the sync ones by running the same steps
(:mod:`iris_cloud.portlogic`): coercing what is sent, the claim check
(through an async store), batching by count and bytes, dead-lettering what
did not decode, name and argument checks, ``watch`` by polling or by
notifications. A provider implements the same underscored primitives as
``async def`` and the settlement calls, and declares its
:class:`~iris_cloud.ports.Capabilities`.

Differences that asyncio imposes, and nothing else:

* ``put`` also takes an async iterable of bytes or an object with an async
  ``read(size)`` (an ``anyio`` / ``aiofiles`` file); a binary file object or
  a path is read in a worker thread.
* ``open_read`` returns an :class:`AsyncReader`; ``list`` and ``watch`` are
  async iterators (``async for``); ``watch`` stops on an :class:`asyncio.Event`.
* ``close`` is a coroutine; use ``async with``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import IO, Any, ClassVar, Protocol, Self, cast

from iris_cloud import portlogic, tracing
from iris_cloud.claimcheck import DEFAULT_MAX_PAYLOAD_BYTES
from iris_cloud.errors import IrisCloudError, NotFound
from iris_cloud.messages import Message, Sendable
from iris_cloud.objects import NotificationParser, ObjectInfo, check_object_name
from iris_cloud.ports import Capabilities
from iris_cloud.private import partial_file
from iris_cloud.steps import Call, adrive, adrive_stream
from iris_cloud.watching import notification_watch_steps

__all__ = [
    "AsyncBinarySource",
    "AsyncMessageBroker",
    "AsyncObjectStore",
    "AsyncReadable",
    "AsyncReader",
]

READ_CHUNK = 1024 * 1024
"""Bytes one iteration of an :class:`AsyncReader` returns at most."""


class AsyncReadable(Protocol):
    """Anything with ``async read(size)`` returning bytes (b"" at the end)."""

    async def read(self, size: int = -1, /) -> bytes: ...


AsyncBinarySource = (
    bytes
    | bytearray
    | memoryview
    | IO[bytes]
    | os.PathLike[str]
    | Path
    | AsyncIterable[bytes]
    | AsyncReadable
)
"""What :meth:`AsyncObjectStore.put` uploads: bytes, a path or binary file object
(read in a worker thread), an async iterable of bytes or an async readable."""


class _Closing:
    """``async with`` closes it."""

    async def close(self) -> None:
        """Release connections; the object cannot be used afterwards."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class AsyncReader(_Closing, ABC):
    """An object's content as an async stream: ``await read(n)``, ``async for chunk``.

    Close it when done (``async with``, or :meth:`close`).
    """

    @abstractmethod
    async def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (all that is left when ``size`` < 0); ``b""`` at the end."""

    @abstractmethod
    async def close(self) -> None:
        """Release the stream (and its connection)."""

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while chunk := await self.read(READ_CHUNK):
            yield chunk


class AsyncMessageBroker(_Closing, ABC):
    """One queue (or topic + subscription) endpoint, awaited.

    The async twin of :class:`~iris_cloud.ports.MessageBroker`: every method
    has its semantics (see there), and the base class runs the same
    decisions. Subclasses implement ``_send_batch`` / ``_receive`` /
    ``_receive_dead_letters`` and the settlement calls as coroutines. Use it
    with ``async with`` or ``await close()``.
    """

    scheme: ClassVar[str] = ""
    capabilities: Capabilities = Capabilities()
    messaging_system: ClassVar[str] = ""
    """OpenTelemetry's ``messaging.system`` (see ``MessageBroker.messaging_system``)."""

    claim_check_max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
    """Largest claim-checked payload ``receive`` fetches; a pointer to more is dead-lettered."""
    claim_check_sources: tuple[AsyncObjectStore, ...] = ()
    """Stores besides ``claim_check`` that a received pointer may name."""
    claim_check_delete: bool = False
    """Delete a claim-checked payload once its message is completed, where
    ``capabilities.completes_for_all`` (see :attr:`MessageBroker.claim_check_delete
    <iris_cloud.ports.MessageBroker.claim_check_delete>`)."""

    def __init__(self, *, claim_check: AsyncObjectStore | None = None) -> None:
        self.claim_check = claim_check

    @classmethod
    @abstractmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """The endpoint named by ``url`` with provider options; connects on first use."""

    @property
    def destination(self) -> str:
        """The queue, topic or entity this endpoint names, for span attributes ('' if none)."""
        return ""

    # -- sending -------------------------------------------------------------
    async def send(self, messages: Sendable | Iterable[Sendable]) -> list[str]:
        """Send one or more messages; their ids in order (see ``MessageBroker.send``)."""
        await self._may_send()
        return await adrive(portlogic.send_steps(self, messages))

    async def _may_send(self) -> None:
        """Raise before anything is prepared when this endpoint may not send."""

    async def _prepare(self, msg: Message) -> Message:
        """Give ``msg`` an id and claim-check a body over the limit (providers may extend)."""
        return await adrive(portlogic.prepare_steps(self, msg))

    @abstractmethod
    async def _send_batch(self, batch: list[Message]) -> None:
        """Send messages that already fit one service call (count and bytes)."""

    # -- receiving -----------------------------------------------------------
    async def receive(self, max_messages: int = 1, wait: float = 0.0) -> list[Message]:
        """Up to ``max_messages`` under peek-lock within ``wait`` s (see ``MessageBroker.receive``).

        What never decodes or whose claim check is bad is dead-lettered alone
        and left out; nothing a sender writes makes this raise.
        """
        if tracing.recording():
            with tracing.ReceiveSpan(self) as span:
                received = span.received(await self._receive(max_messages, wait))
        else:  # no SDK: a span would record nothing, not worth making one per call
            received = await self._receive(max_messages, wait)
        if portlogic.received_as_is(self, received):
            return received
        return await adrive(portlogic.received_steps(self, received))

    async def _completed(self, message: Message) -> None:
        """After ``complete``: delete the message's payload if nobody else can need it.

        Providers await it at the end of :meth:`complete`; it never raises.
        """
        await adrive(portlogic.completed_steps(self, message))

    async def verify(self, right: str) -> bool:
        """Confirm ``right`` (``"send"`` / ``"receive"``) without side effects.

        See :meth:`MessageBroker.verify <iris_cloud.ports.MessageBroker.verify>`.
        """
        portlogic.check_right(right)
        if right == "receive" and self.capabilities.peek:
            await self.peek()
            return True
        return False

    async def peek(self, max_messages: int = 1) -> list[Message]:
        """Up to ``max_messages`` waiting messages, taken by nobody (see ``MessageBroker.peek``)."""
        raise portlogic.peek_refused(self)

    @abstractmethod
    async def _receive(self, max_messages: int, wait: float) -> list[Message]:
        """Receive raw messages; an empty list when none arrived within ``wait``."""

    @abstractmethod
    async def complete(self, message: Message) -> None:
        """Settle ``message`` as handled: the service forgets it."""

    @abstractmethod
    async def abandon(self, message: Message, delay: float | None = None) -> None:
        """Give ``message`` back for redelivery, after ``delay`` seconds where supported."""

    async def complete_many(self, messages: Iterable[Message]) -> list[IrisCloudError | None]:
        """Complete several messages: one outcome each (see ``MessageBroker.complete_many``)."""
        return await adrive(portlogic.settle_each_steps(self.complete, list(messages)))

    async def abandon_many(
        self, messages: Iterable[Message], delay: float | None = None
    ) -> list[IrisCloudError | None]:
        """Give several messages back: one outcome each (see ``MessageBroker.abandon_many``)."""
        return await adrive(portlogic.settle_each_steps(self.abandon, list(messages), delay))

    async def _completed_many(
        self, messages: list[Message], outcomes: list[IrisCloudError | None]
    ) -> list[IrisCloudError | None]:
        """After a native :meth:`complete_many`: :meth:`_completed` for each one completed."""
        return await adrive(portlogic.completed_many_steps(self, messages, outcomes))

    @abstractmethod
    async def dead_letter(self, message: Message, reason: str, description: str = "") -> None:
        """Move ``message`` to the dead-letter queue with ``reason`` and ``description``."""

    @abstractmethod
    async def renew_lock(self, message: Message) -> datetime | None:
        """Extend the lock on ``message``; the new expiry when the service tells it."""

    async def receive_dead_letters(
        self, max_messages: int = 10, wait: float = 0.0
    ) -> list[Message]:
        """Receive from the dead-letter queue (see ``MessageBroker.receive_dead_letters``)."""
        return await adrive(portlogic.dead_letters_steps(self, max_messages, wait))

    @abstractmethod
    async def _receive_dead_letters(self, max_messages: int, wait: float) -> list[Message]:
        """Receive raw messages from the dead-letter queue, as :meth:`_receive` does."""


class AsyncObjectStore(_Closing, ABC):
    """One container / bucket, optionally under a prefix, awaited.

    The async twin of :class:`~iris_cloud.ports.ObjectStore`. Subclasses
    implement the underscored primitives as coroutines (``_list`` as an async
    generator); names and arguments are checked here.
    """

    scheme: ClassVar[str] = ""
    capabilities: Capabilities = Capabilities()
    chunk_size: ClassVar[int] = 8 * 1024 * 1024
    prefix: str = ""
    """The prefix every object name is placed under in :attr:`container`."""

    @classmethod
    @abstractmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """The store named by ``url`` with provider options; connects on first use."""

    @property
    @abstractmethod
    def container(self) -> str:
        """The bucket / container name (claim-check pointers carry it)."""

    # -- writing -------------------------------------------------------------
    async def put(
        self,
        name: str,
        data: AsyncBinarySource,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        overwrite: bool = False,
    ) -> ObjectInfo:
        """Upload ``data`` as ``name``, streaming (see ``ObjectStore.put``).

        ``data`` is bytes, a path, a binary file object (read in a worker
        thread), an async iterable of bytes or an object with an async
        ``read``. With ``overwrite=False`` an existing object raises
        :class:`~iris_cloud.errors.AlreadyExists`; a failed upload leaves no
        partial object.
        """
        meta = portlogic.put_metadata(name, metadata)
        chunks, size = _chunks_of(data, self.chunk_size)
        try:
            return await self._put(name, chunks, size, content_type, meta, overwrite)
        finally:
            await chunks.aclose()

    @abstractmethod
    async def _put(
        self,
        name: str,
        chunks: AsyncIterator[bytes],
        size: int | None,
        content_type: str | None,
        metadata: dict[str, str],
        overwrite: bool,
    ) -> ObjectInfo:
        """Upload the chunks (``size`` bytes in all if known) of a checked name."""

    # -- reading -------------------------------------------------------------
    async def get(self, name: str) -> bytes:
        """The whole content of ``name``."""
        async with await self.open_read(name) as fh:
            return await fh.read()

    async def open_read(self, name: str) -> AsyncReader:
        """An async stream of ``name``'s content; close it when done."""
        return await self._open_read(check_object_name(name))

    @abstractmethod
    async def _open_read(self, name: str) -> AsyncReader:
        """Open a streaming read of a checked name."""

    async def download_to(self, name: str, path: str | os.PathLike[str]) -> ObjectInfo:
        """Stream ``name`` into the file ``path``; the file appears only when complete."""
        async with await self.open_read(name) as src:
            with partial_file(path) as out:
                async for chunk in src:
                    await asyncio.to_thread(out.write, chunk)
        return await self.info(name)

    async def info(self, name: str) -> ObjectInfo:
        """Size, content type, metadata and etag of ``name``; ``NotFound`` if absent."""
        return await self._info(check_object_name(name))

    @abstractmethod
    async def _info(self, name: str) -> ObjectInfo:
        """Describe a checked name."""

    async def exists(self, name: str) -> bool:
        """Whether ``name`` exists (needs read rights)."""
        try:
            await self.info(name)
        except NotFound:
            return False
        return True

    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Objects whose names start with ``prefix``, in name order, paging lazily.

        ``async for info in store.list("images/")``; the prefix is checked at the call.
        """
        return self._list(portlogic.check_list_prefix(prefix))

    @abstractmethod
    def _list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        """List objects under a checked prefix, in name order (an async generator)."""

    async def delete(self, name: str) -> None:
        """Remove ``name``; ``NotFound`` if absent."""
        await self._delete(check_object_name(name))

    @abstractmethod
    async def _delete(self, name: str) -> None:
        """Delete a checked name."""

    async def signed_url(
        self, name: str, method: str = "GET", expires: timedelta = timedelta(hours=1)
    ) -> str:
        """A URL allowing ``method`` on ``name`` until ``expires``, without our credentials.

        1 second to 7 days; see ``ObjectStore.signed_url``.
        """
        return await self._signed_url(*portlogic.signed_url_args(name, method, expires))

    async def _signed_url(self, name: str, method: str, expires: timedelta) -> str:
        raise portlogic.cannot_sign(self)

    async def watch(
        self,
        prefix: str = "",
        *,
        poll_interval: float = 1.0,
        stop: asyncio.Event | None = None,
        include_existing: bool = False,
    ) -> AsyncIterator[ObjectInfo]:
        """Yield objects as they appear under ``prefix`` until ``stop`` is set.

        As ``ObjectStore.watch``: existing objects are skipped unless
        ``include_existing``; notifications are followed where configured
        (``capabilities.native_watch``), else :meth:`list` is polled every
        ``poll_interval`` seconds.
        """
        stop = stop or asyncio.Event()
        source = self._notifications()
        if source is not None:
            broker, parse = source
            async with broker:
                steps = notification_watch_steps(
                    self,
                    broker,
                    parse,
                    prefix,
                    poll_interval=poll_interval,
                    stop=stop,
                    include_existing=include_existing,
                    next_item=anext,
                )
                async for obj in adrive_stream(steps):
                    yield obj
            return
        polling = portlogic.poll_watch_steps(
            self,
            prefix,
            stop=stop,
            include_existing=include_existing,
            pause=Call(_pause, (stop, poll_interval)),
            next_item=anext,
        )
        async for obj in adrive_stream(polling):
            yield obj

    def _notifications(self) -> tuple[AsyncMessageBroker, NotificationParser] | None:
        """The async broker carrying this store's object-created notifications, and their parser.

        A new broker each call (``watch`` closes it); ``None`` to poll.
        """
        return None


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def _chunks_of(
    data: AsyncBinarySource, chunk_size: int
) -> tuple[AsyncGenerator[bytes, None], int | None]:
    """``data`` as async chunks of bytes, and its size where known up front."""
    if isinstance(data, bytes | bytearray | memoryview):
        return _one(bytes(data)), len(data)
    if isinstance(data, os.PathLike):
        path = Path(data)
        return _file_chunks(path, chunk_size), path.stat().st_size
    read = getattr(data, "read", None)
    if inspect.iscoroutinefunction(read):
        return _reader_chunks(cast("AsyncReadable", data), chunk_size), None
    if isinstance(data, AsyncIterable):
        return _bytes_of(data), None
    if callable(read):
        return _stream_chunks(cast("IO[bytes]", data), chunk_size), None
    raise TypeError(
        f"cannot upload a {type(data).__name__}: pass bytes, a path, a binary file object, "
        "an async iterable of bytes or an object with an async read"
    )


async def _one(data: bytes) -> AsyncGenerator[bytes, None]:
    yield data


async def _file_chunks(path: Path, chunk_size: int) -> AsyncGenerator[bytes, None]:
    fh = await asyncio.to_thread(path.open, "rb")
    try:
        async for chunk in _stream_chunks(fh, chunk_size):
            yield chunk
    finally:
        await asyncio.to_thread(fh.close)


async def _stream_chunks(stream: IO[bytes], chunk_size: int) -> AsyncGenerator[bytes, None]:
    while chunk := await asyncio.to_thread(stream.read, chunk_size):
        yield chunk


async def _reader_chunks(reader: AsyncReadable, chunk_size: int) -> AsyncGenerator[bytes, None]:
    while chunk := await reader.read(chunk_size):
        yield _checked(chunk)


async def _bytes_of(source: AsyncIterable[bytes]) -> AsyncGenerator[bytes, None]:
    async for chunk in source:
        yield _checked(chunk)


def _checked(chunk: object) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, bytearray | memoryview):
        return bytes(chunk)
    raise TypeError(f"an upload source yielded a {type(chunk).__name__}, not bytes")
