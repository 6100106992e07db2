"""``azblob://`` for asyncio: :class:`AsyncAzureBlobStore` on ``azure.storage.blob.aio``.

The same URLs, options, capabilities, errors and upload decisions as
:class:`~iris_cloud_azure.store.AzureBlobStore` (both are
:class:`~iris_cloud_azure._blob.BlobStoreCommon`); only the I/O is awaited.
Blocks are staged as tasks, at most ``max_concurrency`` at a time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from azure.storage.blob.aio import BlobClient, ContainerClient

try:
    import aiohttp  # noqa: F401 - azure-core's async transport, imported only at the first call
except ImportError as exc:  # the extra is not installed
    raise ImportError(
        "AsyncAzureBlobStore runs on aiohttp: install 'iris-cloud-azure[async]'"
    ) from exc
from iris_cloud.aio import AsyncObjectStore, AsyncReader
from iris_cloud.aio.blocks import BlockReader
from iris_cloud.parts import AsyncPartPool
from iris_cloud.ports import ObjectInfo
from iris_cloud.steps import adrive

from iris_cloud_azure._blob import BlobStoreCommon
from iris_cloud_azure.credentials import default_credential
from iris_cloud_azure.errors import translate

__all__ = ["AsyncAzureBlobStore"]


class _ChunkReader(AsyncReader):
    """An :class:`AsyncReader` over the aio downloader's ranges, fetched as they are read."""

    def __init__(self, chunks: AsyncIterator[bytes], what: str) -> None:
        self._ranges = chunks
        self._what = what
        self._buffer = memoryview(b"")

    async def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (the rest when ``size`` < 0); ``b""`` at the end."""
        if size < 0:
            parts = [bytes(self._buffer)]
            self._buffer = memoryview(b"")
            while chunk := await self._next():
                parts.append(chunk)
            return b"".join(parts)
        if not self._buffer:
            chunk = await self._next()
            if not chunk:
                return b""
            self._buffer = memoryview(chunk)
        out = bytes(self._buffer[:size])
        self._buffer = self._buffer[size:]
        return out

    async def _next(self) -> bytes:
        with translate(self._what, "read"):
            return await anext(self._ranges, b"")

    async def close(self) -> None:
        """Drop what is left unread (the downloader fetches ranges only when asked)."""
        self._buffer = memoryview(b"")


class AsyncAzureBlobStore(BlobStoreCommon, AsyncObjectStore):
    """One Blob Storage container, optionally under a name prefix, awaited.

    See :class:`~iris_cloud_azure.store.AzureBlobStore`; ``watch`` with a
    ``notification_queue`` follows it through an
    :class:`~iris_cloud_azure.aio.AsyncServiceBusBroker`.
    """

    container_client_class = ContainerClient
    notification_broker = "iris_cloud_azure.aio.broker:AsyncServiceBusBroker"

    def __init__(self, container_client: ContainerClient, **options: Any) -> None:
        super().__init__(container_client, **options)
        # Sources are read in blocks of the upload's size, so a block is the chunk
        # read, not a copy cut out of a larger one: memory stays at the blocks in flight.
        self.chunk_size = self._block_size  # type: ignore[misc]

    @staticmethod
    def default_credential() -> Any:
        """``azure.identity.aio.DefaultAzureCredential``."""
        return default_credential(aio=True)

    # -- writing ----------------------------------------------------------------------
    async def _put(
        self,
        name: str,
        chunks: AsyncIterator[bytes],
        size: int | None,
        content_type: str | None,
        metadata: dict[str, str],
        overwrite: bool,
    ) -> ObjectInfo:
        read = BlockReader(chunks).read_full
        steps = self._put_steps(name, read, size, content_type, metadata, overwrite, self._stage)
        return await adrive(steps)

    async def _stage(
        self, blob: BlobClient, first: bytes, read: Any, block_size: int
    ) -> tuple[list[str], int]:
        pool = AsyncPartPool(self._max_concurrency)
        try:
            return await adrive(self._stage_steps(blob, first, read, block_size, pool))
        finally:
            await pool.close()

    # -- reading ----------------------------------------------------------------------
    async def _open_read(self, name: str) -> AsyncReader:
        what = self._what("read", name)
        with translate(what, "read"):
            downloader = await self._client.get_blob_client(self._key(name)).download_blob()
        return _ChunkReader(downloader.chunks(), what)

    async def _info(self, name: str) -> ObjectInfo:
        with translate(self._what("read properties of", name), "read"):
            props = await self._client.get_blob_client(self._key(name)).get_blob_properties()
        return self._info_from(name, props)

    async def _list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        what = f"list blobs in container {self.container!r}"
        strip = len(self._prefix)
        pages = self._list_pages(prefix)
        while True:
            with translate(what, "list"):
                page = await anext(pages, None)
                if page is None:
                    return
                items = [props async for props in page]
            for props in items:
                yield self._info_from(props.name[strip:], props)

    async def _delete(self, name: str) -> None:
        with translate(self._what("delete", name), "delete"):
            blob = self._client.get_blob_client(self._key(name))
            await blob.delete_blob(delete_snapshots="include")

    async def _signed_url(self, name: str, method: str, expires: timedelta) -> str:
        return self._sas_url(name, method, expires)

    async def close(self) -> None:
        """Close the SDK client's HTTP session."""
        await self._client.close()
