"""Async ports over sync ones, each blocking call in a worker thread.

For a provider whose SDK has no async client (SQLite for ``local://``, files
for ``file://``, google-cloud-storage for ``gs://``) and for ``mem://``, whose
receive blocks on a condition: :class:`ThreadedBroker` / :class:`ThreadedStore`
run the sync port's primitives through :func:`asyncio.to_thread`, while the
async base classes make the decisions (so the claim check goes through an
async store, as with any async broker). A provider declares one in a line::

    class AsyncMemoryBroker(ThreadedBroker):
        sync_class = MemoryBroker

Threads are the default executor's; a call cannot be cancelled once it runs
(a cancelled ``receive`` finishes its wait in the thread and gives nothing
back: what it took comes back when its lock expires).
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import IO, Any, ClassVar, Self, cast

from iris_cloud.aio.ports import (
    AsyncBinarySource,
    AsyncMessageBroker,
    AsyncObjectStore,
    AsyncReader,
)
from iris_cloud.errors import ConfigurationError, IrisCloudError
from iris_cloud.messages import Message
from iris_cloud.objects import ObjectInfo
from iris_cloud.ports import BinarySource, MessageBroker, ObjectStore

__all__ = ["ThreadedBroker", "ThreadedReader", "ThreadedStore"]

_LIST_PAGE = 100  # listed objects fetched per worker-thread hop


class ThreadedBroker(AsyncMessageBroker):
    """An :class:`AsyncMessageBroker` running a sync broker's primitives in threads.

    Subclasses name the sync class in :attr:`sync_class`; ``from_url`` opens
    it (a claim-check store, if given, must be async and stays with this
    broker). :attr:`sync` is the broker it runs.
    """

    sync_class: ClassVar[type[MessageBroker]]
    """The sync broker class this one runs in threads."""

    def __init__(self, sync: MessageBroker, *, claim_check: AsyncObjectStore | None = None) -> None:
        if sync.claim_check is not None:
            raise ConfigurationError(
                "give the claim-check store (an async one) to the async broker, "
                "not to the sync broker it runs"
            )
        super().__init__(claim_check=claim_check)
        self.sync = sync
        self.capabilities = sync.capabilities

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Open the sync broker of ``url`` (its options) under this async one."""
        claim_check = options.pop("claim_check", None)
        if claim_check is not None and not isinstance(claim_check, AsyncObjectStore):
            raise ConfigurationError(
                "an async broker's claim_check must be an async store (iris_cloud.aio.open_store)"
            )
        return cls(cls.sync_class.from_url(url, **options), claim_check=claim_check)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.sync!r})"

    @property
    def destination(self) -> str:
        """The sync broker's destination."""
        return self.sync.destination

    async def _may_send(self) -> None:
        # The built-ins check their rights in memory: no thread needed.
        self.sync._may_send()

    async def _send_batch(self, batch: list[Message]) -> None:
        await asyncio.to_thread(self.sync._send_batch, batch)

    async def _receive(self, max_messages: int, wait: float) -> list[Message]:
        return await asyncio.to_thread(self.sync._receive, max_messages, wait)

    async def _receive_dead_letters(self, max_messages: int, wait: float) -> list[Message]:
        return await asyncio.to_thread(self.sync._receive_dead_letters, max_messages, wait)

    async def verify(self, right: str) -> bool:
        """The sync broker's answer (see :meth:`AsyncMessageBroker.verify`)."""
        return await asyncio.to_thread(self.sync.verify, right)

    async def peek(self, max_messages: int = 1) -> list[Message]:
        """The sync broker's peek (see :meth:`AsyncMessageBroker.peek`)."""
        return await asyncio.to_thread(self.sync.peek, max_messages)

    async def complete(self, message: Message) -> None:
        """Complete ``message``, then delete its payload where that is configured."""
        await asyncio.to_thread(self.sync.complete, message)
        await self._completed(message)

    async def abandon(self, message: Message, delay: float | None = None) -> None:
        """Give ``message`` back, after ``delay`` seconds where supported."""
        await asyncio.to_thread(self.sync.abandon, message, delay)

    async def complete_many(self, messages: Iterable[Message]) -> list[IrisCloudError | None]:
        """The sync broker's ``complete_many`` in one thread hop, then the payloads' cleanup."""
        batch = list(messages)
        outcomes = await asyncio.to_thread(self.sync.complete_many, batch)
        return await self._completed_many(batch, outcomes)

    async def abandon_many(
        self, messages: Iterable[Message], delay: float | None = None
    ) -> list[IrisCloudError | None]:
        """The sync broker's ``abandon_many`` in one thread hop."""
        return await asyncio.to_thread(self.sync.abandon_many, list(messages), delay)

    async def dead_letter(self, message: Message, reason: str, description: str = "") -> None:
        """Move ``message`` to the dead-letter queue."""
        await asyncio.to_thread(self.sync.dead_letter, message, reason, description)

    async def renew_lock(self, message: Message) -> datetime | None:
        """Extend the lock on ``message``."""
        return await asyncio.to_thread(self.sync.renew_lock, message)

    async def close(self) -> None:
        """Close the sync broker."""
        await asyncio.to_thread(self.sync.close)


class ThreadedReader(AsyncReader):
    """An :class:`AsyncReader` over a blocking binary stream, read in threads."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream

    async def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes, read in a worker thread."""
        return await asyncio.to_thread(self.stream.read, size)

    async def close(self) -> None:
        """Close the stream."""
        await asyncio.to_thread(self.stream.close)


class ThreadedStore(AsyncObjectStore):
    """An :class:`AsyncObjectStore` running a sync store's calls in threads.

    Bytes, paths and binary file objects go to the sync ``put`` whole (a
    ``file://`` store copies a file in the kernel); async sources are pulled
    chunk by chunk from the event loop by the upload's thread.
    """

    sync_class: ClassVar[type[ObjectStore]]
    """The sync store class this one runs in threads."""

    def __init__(self, sync: ObjectStore) -> None:
        self.sync = sync
        self.capabilities = sync.capabilities
        self.prefix = sync.prefix

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Open the sync store of ``url`` (its options) under this async one."""
        return cls(cls.sync_class.from_url(url, **options))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.sync!r})"

    @property
    def container(self) -> str:
        """The sync store's container."""
        return self.sync.container

    async def put(
        self,
        name: str,
        data: AsyncBinarySource,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        overwrite: bool = False,
    ) -> ObjectInfo:
        """Upload ``data`` as ``name`` (see :meth:`AsyncObjectStore.put`)."""
        if isinstance(data, bytes | bytearray | memoryview | os.PathLike | io.IOBase):
            call = partial(
                self.sync.put,
                name,
                cast("BinarySource", data),
                content_type=content_type,
                metadata=metadata,
                overwrite=overwrite,
            )
            return await asyncio.to_thread(call)
        return await super().put(
            name, data, content_type=content_type, metadata=metadata, overwrite=overwrite
        )

    async def _put(
        self,
        name: str,
        chunks: AsyncIterator[bytes],
        size: int | None,
        content_type: str | None,
        metadata: dict[str, str],
        overwrite: bool,
    ) -> ObjectInfo:
        stream = cast("IO[bytes]", _PulledStream(chunks, asyncio.get_running_loop()))
        return await asyncio.to_thread(
            self.sync._put, name, stream, size, content_type, metadata, overwrite
        )

    async def get(self, name: str) -> bytes:
        """The whole content of ``name``."""
        return await asyncio.to_thread(self.sync.get, name)

    async def _open_read(self, name: str) -> AsyncReader:
        return ThreadedReader(await asyncio.to_thread(self.sync._open_read, name))

    async def download_to(self, name: str, path: str | os.PathLike[str]) -> ObjectInfo:
        """The sync store's download (a ``file://`` store copies in the kernel)."""
        return await asyncio.to_thread(self.sync.download_to, name, Path(path))

    async def _info(self, name: str) -> ObjectInfo:
        return await asyncio.to_thread(self.sync._info, name)

    async def _list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        listing = await asyncio.to_thread(self.sync._list, prefix)
        while page := await asyncio.to_thread(_page, listing):
            for obj in page:
                yield obj

    async def _delete(self, name: str) -> None:
        await asyncio.to_thread(self.sync._delete, name)

    async def _signed_url(self, name: str, method: str, expires: timedelta) -> str:
        return await asyncio.to_thread(self.sync._signed_url, name, method, expires)

    async def close(self) -> None:
        """Close the sync store."""
        await asyncio.to_thread(self.sync.close)


def _page(listing: Iterator[ObjectInfo]) -> list[ObjectInfo]:
    page: list[ObjectInfo] = []
    for obj in listing:
        page.append(obj)
        if len(page) >= _LIST_PAGE:
            break
    return page


class _PulledStream(io.RawIOBase):
    """A blocking stream, read in a worker thread, of chunks an event loop yields."""

    def __init__(self, chunks: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._chunks = chunks
        self._loop = loop
        self._buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._buffer:
            future = asyncio.run_coroutine_threadsafe(_next_chunk(self._chunks), self._loop)
            self._buffer = memoryview(future.result())
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


async def _next_chunk(chunks: AsyncIterator[bytes]) -> bytes:
    # An empty chunk is not the end: only the iterator's end is.
    async for chunk in chunks:
        if chunk:
            return chunk
    return b""
