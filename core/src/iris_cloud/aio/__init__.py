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
"""

from __future__ import annotations

from typing import Any

from iris_cloud.aio.ports import (
    AsyncBinarySource,
    AsyncMessageBroker,
    AsyncObjectStore,
    AsyncReadable,
    AsyncReader,
)
from iris_cloud.aio.threaded import ThreadedBroker, ThreadedReader, ThreadedStore
from iris_cloud.plugins import resolve

__all__ = [
    "AsyncBinarySource",
    "AsyncMessageBroker",
    "AsyncObjectStore",
    "AsyncReadable",
    "AsyncReader",
    "ThreadedBroker",
    "ThreadedReader",
    "ThreadedStore",
    "open_broker",
    "open_store",
]


def open_broker(url: str, **options: Any) -> AsyncMessageBroker:
    """The async broker endpoint ``url``, from the plugin serving its scheme.

    Same URLs and options as :func:`iris_cloud.open_broker`; ``claim_check``
    must be an :class:`AsyncObjectStore`. A scheme whose provider has no async
    class raises :class:`~iris_cloud.errors.ConfigurationError` saying so.
    """
    cls: type[AsyncMessageBroker] = resolve(url, "async_broker")
    return cls.from_url(url, **options)


def open_store(url: str, **options: Any) -> AsyncObjectStore:
    """The async object store ``url``, from the plugin serving its scheme."""
    cls: type[AsyncObjectStore] = resolve(url, "async_store")
    return cls.from_url(url, **options)
