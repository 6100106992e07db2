"""The async API: ports, providers and clients for services that run on asyncio.

:func:`open_broker` / :func:`open_store` resolve the same URLs as
:func:`iris_cloud.open_broker` / :func:`iris_cloud.open_store`, through the
same plugins (hooks ``iris_cloud_async_broker_schemes`` /
``iris_cloud_async_store_schemes``), to an :class:`AsyncMessageBroker` /
:class:`AsyncObjectStore`: the sync ports' methods and semantics, awaited.
They open without I/O worth awaiting (a provider connects on first use); use
the result with ``async with``::

    async with open_broker("mem://orders") as broker:
        await broker.send(b"hello")

Built-in providers: ``mem://``, ``local://`` and ``file://``, each running its
sync twin in worker threads (:mod:`iris_cloud.aio.builtin`).

:class:`AsyncIrisClient` is :class:`iris_cloud.client.IrisClient` on these ports,
awaited.

:class:`AsyncConsumer` runs an :class:`~iris_cloud.consumer.IrisApp` on async
brokers: ``async def`` handlers awaited, plain ones in worker threads;
:func:`save_result` saves a result document to a directory or an async store.
"""

from __future__ import annotations

from iris_cloud.aio.blocks import BlockReader
from iris_cloud.aio.client import AsyncIrisClient
from iris_cloud.aio.consumer import AsyncConsumer, AsyncContext
from iris_cloud.aio.opening import open_broker, open_store
from iris_cloud.aio.ports import (
    AsyncBinarySource,
    AsyncMessageBroker,
    AsyncObjectStore,
    AsyncReadable,
    AsyncReader,
)
from iris_cloud.aio.results import save_result
from iris_cloud.aio.stepped import AsyncSteppedBroker
from iris_cloud.aio.threaded import ThreadedBroker, ThreadedReader, ThreadedStore

__all__ = [
    "AsyncBinarySource",
    "AsyncConsumer",
    "AsyncContext",
    "AsyncIrisClient",
    "AsyncMessageBroker",
    "AsyncObjectStore",
    "AsyncReadable",
    "AsyncReader",
    "AsyncSteppedBroker",
    "BlockReader",
    "ThreadedBroker",
    "ThreadedReader",
    "ThreadedStore",
    "open_broker",
    "open_store",
    "save_result",
]
