"""The contract suite on async ports: blocking facades that drive them on a loop.

The suite (:mod:`iris_cloud.testing.contract`) is written against the sync
ports. To run the very same tests on an :class:`~iris_cloud.aio.AsyncMessageBroker`
or :class:`~iris_cloud.aio.AsyncObjectStore`, :class:`BlockingBroker` and
:class:`BlockingStore` are sync ports whose every public call runs the async
port's own method on an event loop in a thread (:class:`LoopThread`): what is
tested is the async code path, decisions and all. An async provider supplies
an :class:`AsyncBrokerEnv` / :class:`AsyncStoreEnv` and its test module wraps
it::

    class TestMyAsyncBroker(BrokerContract):
        @pytest.fixture
        def broker_env(self, loop_thread):          # fixture of iris_cloud.testing.plugin
            return BlockingBrokerEnv(MyAsyncBrokerEnv(...), loop_thread)

For a provider whose async classes run its sync ones in threads
(:class:`~iris_cloud.aio.ThreadedBroker`), :class:`ThreadedBrokerEnv` /
:class:`ThreadedStoreEnv` make that async env from its sync contract env.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import IO, Any, Protocol, Self, TypeVar, cast

from iris_cloud.aio.client import AsyncIrisClient
from iris_cloud.aio.consumer import AsyncConsumer
from iris_cloud.aio.ports import AsyncMessageBroker, AsyncObjectStore, AsyncReader
from iris_cloud.aio.threaded import ThreadedBroker, ThreadedStore
from iris_cloud.consumelogic import ConsumerStats
from iris_cloud.errors import IrisCloudError
from iris_cloud.messages import Message, Sendable
from iris_cloud.objects import ObjectInfo
from iris_cloud.ports import BinarySource, MessageBroker, ObjectStore
from iris_cloud.testing.contract import BrokerContractEnv, StoreContractEnv

__all__ = [
    "AsyncBrokerEnv",
    "AsyncStoreEnv",
    "BlockingBroker",
    "BlockingBrokerEnv",
    "BlockingClient",
    "BlockingConsumer",
    "BlockingStore",
    "BlockingStoreEnv",
    "LoopThread",
    "ThreadedBrokerEnv",
    "ThreadedStoreEnv",
    "shared_loop",
]

T = TypeVar("T")


class LoopThread:
    """An event loop running in a daemon thread; :meth:`run` a coroutine on it and wait."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="iris-cloud-loop", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop; return its result or raise its exception."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def iterate(self, source: AsyncIterator[T]) -> Iterator[T]:
        """A blocking iterator over an async one, each step run on the loop."""
        try:
            while True:
                try:
                    yield self.run(_anext(source))
                except StopAsyncIteration:
                    return
        finally:
            closing = getattr(source, "aclose", None)
            if closing is not None:
                self.run(closing())

    def close(self) -> None:
        """Stop the loop and its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


_shared: LoopThread | None = None
_shared_lock = threading.Lock()


def shared_loop() -> LoopThread:
    """One :class:`LoopThread` for the process, started on first use (a daemon: never joined)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = LoopThread()
        return _shared


async def _anext(source: AsyncIterator[T]) -> T:
    return await anext(source)


def _forwarded(name: str) -> Any:
    """A property reading and setting ``name`` on the facade's async port."""
    return property(
        lambda self: getattr(self.port, name),
        lambda self, value: setattr(self.port, name, value),
        doc=f"The async port's ``{name}``.",
    )


class BlockingBroker(MessageBroker):
    """A sync :class:`MessageBroker` facade running an async broker's methods on a loop."""

    def __init__(self, port: AsyncMessageBroker, loop: LoopThread) -> None:
        self.port = port
        self.loop = loop

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """The async broker of ``url`` (``iris_cloud.aio.open_broker``) on :func:`shared_loop`."""
        from iris_cloud.aio import open_broker

        return cls(open_broker(url, **options), shared_loop())

    # What the suite reads or sets on a broker goes to the async port.
    capabilities = _forwarded("capabilities")
    claim_check_max_bytes = _forwarded("claim_check_max_bytes")
    claim_check_delete = _forwarded("claim_check_delete")

    @property
    def claim_check(self) -> ObjectStore | None:
        """A facade over the async port's claim-check store."""
        store = self.port.claim_check
        return None if store is None else BlockingStore(store, self.loop)

    @claim_check.setter
    def claim_check(self, store: ObjectStore | None) -> None:
        self.port.claim_check = None if store is None else async_port(store)

    def send(self, messages: Sendable | Iterable[Sendable]) -> list[str]:
        """The async port's ``send``."""
        return self.loop.run(self.port.send(messages))

    def _send_batch(self, batch: list[Message]) -> None:
        self.loop.run(self.port._send_batch(batch))

    def receive(self, max_messages: int = 1, wait: float = 0.0) -> list[Message]:
        """The async port's ``receive``."""
        return self.loop.run(self.port.receive(max_messages, wait))

    def _receive(self, max_messages: int, wait: float) -> list[Message]:
        return self.loop.run(self.port._receive(max_messages, wait))

    def receive_dead_letters(self, max_messages: int = 10, wait: float = 0.0) -> list[Message]:
        """The async port's ``receive_dead_letters``."""
        return self.loop.run(self.port.receive_dead_letters(max_messages, wait))

    def _receive_dead_letters(self, max_messages: int, wait: float) -> list[Message]:
        return self.loop.run(self.port._receive_dead_letters(max_messages, wait))

    def verify(self, right: str) -> bool:
        """The async port's ``verify``."""
        return self.loop.run(self.port.verify(right))

    def peek(self, max_messages: int = 1) -> list[Message]:
        """The async port's ``peek``."""
        return self.loop.run(self.port.peek(max_messages))

    def complete(self, message: Message) -> None:
        """The async port's ``complete``."""
        self.loop.run(self.port.complete(message))

    def abandon(self, message: Message, delay: float | None = None) -> None:
        """The async port's ``abandon``."""
        self.loop.run(self.port.abandon(message, delay))

    def complete_many(self, messages: Iterable[Message]) -> list[IrisCloudError | None]:
        """The async port's ``complete_many``."""
        return self.loop.run(self.port.complete_many(messages))

    def abandon_many(
        self, messages: Iterable[Message], delay: float | None = None
    ) -> list[IrisCloudError | None]:
        """The async port's ``abandon_many``."""
        return self.loop.run(self.port.abandon_many(messages, delay))

    def dead_letter(self, message: Message, reason: str, description: str = "") -> None:
        """The async port's ``dead_letter``."""
        self.loop.run(self.port.dead_letter(message, reason, description))

    def renew_lock(self, message: Message) -> datetime | None:
        """The async port's ``renew_lock``."""
        return self.loop.run(self.port.renew_lock(message))

    def close(self) -> None:
        """The async port's ``close``."""
        self.loop.run(self.port.close())


class _BlockingReader(io.RawIOBase):
    """A blocking stream over an :class:`AsyncReader`."""

    def __init__(self, reader: AsyncReader, loop: LoopThread) -> None:
        self._reader = reader
        self._loop = loop

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        return self._loop.run(self._reader.read(size))

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._loop.run(self._reader.close())
        super().close()


class BlockingStore(ObjectStore):
    """A sync :class:`ObjectStore` facade running an async store's methods on a loop."""

    def __init__(self, port: AsyncObjectStore, loop: LoopThread) -> None:
        self.port = port
        self.loop = loop
        self.prefix = port.prefix

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """The async store of ``url`` (``iris_cloud.aio.open_store``) on :func:`shared_loop`."""
        from iris_cloud.aio import open_store

        return cls(open_store(url, **options), shared_loop())

    capabilities = _forwarded("capabilities")

    @property
    def container(self) -> str:
        """The async port's container."""
        return self.port.container

    def put(
        self,
        name: str,
        data: BinarySource,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        overwrite: bool = False,
    ) -> ObjectInfo:
        """The async port's ``put``."""
        return self.loop.run(
            self.port.put(
                name, data, content_type=content_type, metadata=metadata, overwrite=overwrite
            )
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
        return self.put(
            name, stream, content_type=content_type, metadata=metadata, overwrite=overwrite
        )

    def get(self, name: str) -> bytes:
        """The async port's ``get``."""
        return self.loop.run(self.port.get(name))

    def open_read(self, name: str) -> IO[bytes]:
        """The async port's ``open_read``, as a blocking stream."""
        return self._open_read(name)

    def _open_read(self, name: str) -> IO[bytes]:
        reader = self.loop.run(self.port.open_read(name))
        return cast("IO[bytes]", _BlockingReader(reader, self.loop))

    def download_to(self, name: str, path: Any) -> ObjectInfo:
        """The async port's ``download_to``."""
        return self.loop.run(self.port.download_to(name, path))

    def info(self, name: str) -> ObjectInfo:
        """The async port's ``info``."""
        return self.loop.run(self.port.info(name))

    def _info(self, name: str) -> ObjectInfo:
        return self.info(name)

    def exists(self, name: str) -> bool:
        """The async port's ``exists``."""
        return self.loop.run(self.port.exists(name))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """The async port's ``list``, iterated on the loop."""
        return self.loop.iterate(self.port.list(prefix))

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        return self.list(prefix)

    def delete(self, name: str) -> None:
        """The async port's ``delete``."""
        self.loop.run(self.port.delete(name))

    def _delete(self, name: str) -> None:
        self.delete(name)

    def signed_url(
        self, name: str, method: str = "GET", expires: timedelta = timedelta(hours=1)
    ) -> str:
        """The async port's ``signed_url``."""
        return self.loop.run(self.port.signed_url(name, method, expires))

    def watch(
        self,
        prefix: str = "",
        *,
        poll_interval: float = 1.0,
        stop: threading.Event | None = None,
        include_existing: bool = False,
    ) -> Iterator[ObjectInfo]:
        """The async port's ``watch``; setting ``stop`` sets the loop's event."""
        stop = stop or threading.Event()
        astop = self.loop.run(_new_event())
        done = threading.Event()

        def relay() -> None:
            while not done.is_set():
                if stop.wait(0.05):
                    self.loop.loop.call_soon_threadsafe(astop.set)
                    return

        threading.Thread(target=relay, name="watch-stop", daemon=True).start()
        try:
            yield from self.loop.iterate(
                self.port.watch(
                    prefix,
                    poll_interval=poll_interval,
                    stop=astop,
                    include_existing=include_existing,
                )
            )
        finally:
            done.set()

    def close(self) -> None:
        """The async port's ``close``."""
        self.loop.run(self.port.close())


class BlockingClient:
    """A sync facade over an :class:`~iris_cloud.aio.AsyncIrisClient`, for tests written sync.

    Every coroutine method runs the async client's own on the loop; its
    endpoints (``orders``, ``gradings``, ``images``) come back as
    :class:`BlockingBroker` / :class:`BlockingStore` facades; everything else
    (``validate_order``, ``receipts``, ...) is the async client's attribute.
    """

    def __init__(self, client: AsyncIrisClient, loop: LoopThread) -> None:
        self.client = client
        self.loop = loop

    def __getattr__(self, name: str) -> Any:
        if name in ("orders", "gradings"):
            return BlockingBroker(self.loop.run(getattr(self.client, name)), self.loop)
        if name == "images":
            return BlockingStore(self.loop.run(self.client.images), self.loop)
        attr = getattr(self.client, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        def blocking(*args: Any, **kwargs: Any) -> Any:
            return self.loop.run(attr(*args, **kwargs))

        return blocking

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.loop.run(self.client.close())


class BlockingConsumer:
    """A sync facade over an :class:`~iris_cloud.aio.AsyncConsumer`, for tests written sync.

    ``run_until`` runs the consumer's own on the loop (from any thread, so a
    test may run it in one thread and :meth:`stop` it from another); the
    rest is the consumer's.
    """

    def __init__(self, consumer: AsyncConsumer, loop: LoopThread) -> None:
        self.consumer = consumer
        self.loop = loop

    def run_until(
        self,
        predicate: Callable[[ConsumerStats], bool] | None = None,
        timeout: float | None = None,
    ) -> ConsumerStats:
        """The async consumer's ``run_until``, run on the loop."""
        return self.loop.run(self.consumer.run_until(predicate, timeout))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.consumer, name)

    def close(self) -> None:
        """The async consumer's ``close``, run on the loop."""
        self.loop.run(self.consumer.close())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


async def _new_event() -> asyncio.Event:
    return asyncio.Event()


def async_port(store: ObjectStore) -> AsyncObjectStore:
    """The async store behind a :class:`BlockingStore` (an async broker's claim check)."""
    if not isinstance(store, BlockingStore):
        raise TypeError("an async broker's claim-check store must be a BlockingStore facade")
    return store.port


class AsyncBrokerEnv(Protocol):
    """What an async broker provider supplies to :class:`BlockingBrokerEnv`.

    :class:`~iris_cloud.testing.contract.BrokerContractEnv` with async ports:
    ``open`` and the others return :class:`AsyncMessageBroker`, the claim-check
    store is an :class:`AsyncObjectStore`. An optional ``send_undecodable(url)``
    is passed through.
    """

    def new_queue(self, *, lock_seconds: float = 2.0, max_delivery_count: int = 3) -> str:
        """Create a fresh queue (and its dead-letter queue); return the URL that opens it."""
        ...

    def open(self, url: str, *, claim_check: AsyncObjectStore | None = None) -> AsyncMessageBroker:
        """Open ``url`` with full rights."""
        ...

    def claim_check_store(self) -> AsyncObjectStore:
        """A store the claim check may write to and read from."""
        ...

    def open_send_only(self, url: str) -> AsyncMessageBroker | None:
        """Open ``url`` with send-only credentials; ``None`` if the provider cannot."""
        ...

    def open_receive_only(self, url: str) -> AsyncMessageBroker | None:
        """Open ``url`` with receive-only credentials; ``None`` if the provider cannot."""
        ...


class AsyncStoreEnv(Protocol):
    """What an async store provider supplies to :class:`BlockingStoreEnv`."""

    def new_store(self) -> AsyncObjectStore:
        """A fresh, empty store with full rights."""
        ...

    def open_write_only(self, store: AsyncObjectStore) -> AsyncObjectStore | None:
        """The same container with write-only credentials, or ``None``."""
        ...

    def open_read_only(self, store: AsyncObjectStore) -> AsyncObjectStore | None:
        """The same container with read-only credentials, or ``None``."""
        ...


class BlockingBrokerEnv(BrokerContractEnv):
    """A :class:`BrokerContractEnv` whose brokers are facades over an async env's."""

    def __init__(self, env: AsyncBrokerEnv, loop: LoopThread) -> None:
        self.env = env
        self.loop = loop
        undecodable = getattr(env, "send_undecodable", None)
        if undecodable is not None:
            self.send_undecodable = undecodable

    def _wrap(self, port: AsyncMessageBroker | None) -> MessageBroker | None:
        return None if port is None else BlockingBroker(port, self.loop)

    def new_queue(self, *, lock_seconds: float = 2.0, max_delivery_count: int = 3) -> str:
        """The async env's new queue."""
        return self.env.new_queue(lock_seconds=lock_seconds, max_delivery_count=max_delivery_count)

    def open(self, url: str, *, claim_check: ObjectStore | None = None) -> MessageBroker:
        """The async env's broker, behind a facade."""
        store = None if claim_check is None else async_port(claim_check)
        return BlockingBroker(self.env.open(url, claim_check=store), self.loop)

    def claim_check_store(self) -> ObjectStore:
        """The async env's claim-check store, behind a facade."""
        return BlockingStore(self.env.claim_check_store(), self.loop)

    def open_send_only(self, url: str) -> MessageBroker | None:
        """The async env's send-only broker, behind a facade."""
        return self._wrap(self.env.open_send_only(url))

    def open_receive_only(self, url: str) -> MessageBroker | None:
        """The async env's receive-only broker, behind a facade."""
        return self._wrap(self.env.open_receive_only(url))


class BlockingStoreEnv(StoreContractEnv):
    """A :class:`StoreContractEnv` whose stores are facades over an async env's."""

    def __init__(self, env: AsyncStoreEnv, loop: LoopThread) -> None:
        self.env = env
        self.loop = loop
        headers = getattr(env, "signed_put_headers", None)
        if headers is not None:
            self.signed_put_headers = headers

    def _wrap(self, port: AsyncObjectStore | None) -> ObjectStore | None:
        return None if port is None else BlockingStore(port, self.loop)

    def new_store(self) -> ObjectStore:
        """The async env's new store, behind a facade."""
        return BlockingStore(self.env.new_store(), self.loop)

    def open_write_only(self, store: ObjectStore) -> ObjectStore | None:
        """The async env's write-only store, behind a facade."""
        return self._wrap(self.env.open_write_only(async_port(store)))

    def open_read_only(self, store: ObjectStore) -> ObjectStore | None:
        """The async env's read-only store, behind a facade."""
        return self._wrap(self.env.open_read_only(async_port(store)))


class ThreadedBrokerEnv(AsyncBrokerEnv):
    """An :class:`AsyncBrokerEnv` from a sync env, for a :class:`ThreadedBroker` class.

    Every broker the sync env opens (without a claim check) is run by
    ``threaded``, which keeps the async claim-check store.
    """

    def __init__(
        self,
        env: BrokerContractEnv,
        threaded: type[ThreadedBroker],
        store: type[ThreadedStore],
    ) -> None:
        self.env = env
        self.threaded = threaded
        self.store = store
        undecodable = getattr(env, "send_undecodable", None)
        if undecodable is not None:
            self.send_undecodable = undecodable

    def new_queue(self, *, lock_seconds: float = 2.0, max_delivery_count: int = 3) -> str:
        """The sync env's new queue."""
        return self.env.new_queue(lock_seconds=lock_seconds, max_delivery_count=max_delivery_count)

    def open(self, url: str, *, claim_check: AsyncObjectStore | None = None) -> AsyncMessageBroker:
        """The sync env's broker, run in threads."""
        return self.threaded(self.env.open(url), claim_check=claim_check)

    def claim_check_store(self) -> AsyncObjectStore:
        """The sync env's claim-check store, run in threads."""
        return self.store(self.env.claim_check_store())

    def open_send_only(self, url: str) -> AsyncMessageBroker | None:
        """The sync env's send-only broker, run in threads."""
        sync = self.env.open_send_only(url)
        return None if sync is None else self.threaded(sync)

    def open_receive_only(self, url: str) -> AsyncMessageBroker | None:
        """The sync env's receive-only broker, run in threads."""
        sync = self.env.open_receive_only(url)
        return None if sync is None else self.threaded(sync)


class ThreadedStoreEnv(AsyncStoreEnv):
    """An :class:`AsyncStoreEnv` from a sync env, for a :class:`ThreadedStore` class."""

    def __init__(self, env: StoreContractEnv, threaded: type[ThreadedStore]) -> None:
        self.env = env
        self.threaded = threaded
        headers = getattr(env, "signed_put_headers", None)
        if headers is not None:
            self.signed_put_headers = headers

    def new_store(self) -> AsyncObjectStore:
        """The sync env's new store, run in threads."""
        return self.threaded(self.env.new_store())

    def open_write_only(self, store: AsyncObjectStore) -> AsyncObjectStore | None:
        """The sync env's write-only store, run in threads."""
        sync = self.env.open_write_only(_sync_of(store))
        return None if sync is None else self.threaded(sync)

    def open_read_only(self, store: AsyncObjectStore) -> AsyncObjectStore | None:
        """The sync env's read-only store, run in threads."""
        sync = self.env.open_read_only(_sync_of(store))
        return None if sync is None else self.threaded(sync)


def _sync_of(store: AsyncObjectStore) -> ObjectStore:
    if not isinstance(store, ThreadedStore):
        raise TypeError("expected a ThreadedStore")
    return store.sync
