"""The built-in providers, async: ``mem://``, ``local://`` and ``file://``.

Each runs its sync twin of :mod:`iris_cloud.providers` in worker threads
(:mod:`iris_cloud.aio.threaded`): the same queues, containers, options and
semantics, so an async service and a sync one share a ``mem://`` queue in
one process, or a ``local://`` queue across processes.
"""

from __future__ import annotations

from iris_cloud.aio.threaded import ThreadedBroker, ThreadedStore
from iris_cloud.providers.local import FileStore, LocalBroker
from iris_cloud.providers.memory import MemoryBroker, MemoryStore

__all__ = ["AsyncFileStore", "AsyncLocalBroker", "AsyncMemoryBroker", "AsyncMemoryStore"]


class AsyncMemoryBroker(ThreadedBroker):
    """A ``mem://NAME`` queue, async (see :class:`~iris_cloud.providers.memory.MemoryBroker`)."""

    scheme = "mem"
    sync_class = MemoryBroker


class AsyncMemoryStore(ThreadedStore):
    """A ``mem://NAME`` container, async (see :class:`~iris_cloud.providers.memory.MemoryStore`)."""

    scheme = "mem"
    sync_class = MemoryStore


class AsyncLocalBroker(ThreadedBroker):
    """A ``local://`` SQLite queue, async (see :class:`~iris_cloud.providers.local.LocalBroker`)."""

    scheme = "local"
    sync_class = LocalBroker


class AsyncFileStore(ThreadedStore):
    """A ``file://`` directory store, async (see :class:`~iris_cloud.providers.local.FileStore`)."""

    scheme = "file"
    sync_class = FileStore
