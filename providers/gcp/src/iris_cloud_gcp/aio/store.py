"""``gs://`` for asyncio: :class:`AsyncGcsStore`, the sync store in worker threads.

google-cloud-storage has no async client, so the async port runs
:class:`~iris_cloud_gcp.store.GcsStore` through
:class:`~iris_cloud.aio.ThreadedStore`: the same URLs, options,
capabilities and behaviour, each blocking call in a worker thread.
"""

from __future__ import annotations

from iris_cloud.aio import ThreadedStore

from iris_cloud_gcp.store import GcsStore

__all__ = ["AsyncGcsStore"]


class AsyncGcsStore(ThreadedStore):
    """A ``gs://`` bucket, async: :class:`~iris_cloud_gcp.store.GcsStore` in worker threads."""

    scheme = "gs"
    sync_class = GcsStore
