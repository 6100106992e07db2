"""``azblob://ACCOUNT/CONTAINER[/PREFIX]``: an :class:`ObjectStore` on Azure Blob Storage.

Credentials (keyword options, never URL parameters): ``connection_string``,
``sas_url`` (a container SAS URL as IRIS hands it out), ``sas_token``,
``account_key``, ``credential`` (any azure-core credential object), or, when
none is given and azure-identity is installed, ``DefaultAzureCredential``.
``account_url`` points at another endpoint (Azurite, sovereign clouds).

``watch`` polls the listing, or, with ``notification_queue`` (an
``azuresb://`` queue or topic subscription that an Event Grid subscription of
the storage account delivers ``Microsoft.Storage.BlobCreated`` events to, in
the Event Grid or the CloudEvents schema), follows those events; the queue's
credential is ``notification_connection_string`` or the broker's default.

Uploads are staged in blocks of ``block_size`` with at most
``max_concurrency`` blocks in flight, so memory stays constant whatever the
object's size; the block list is committed last, with ``If-None-Match: *``
when ``overwrite=False``, so a failed or refused upload commits nothing.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from typing import IO, Any

from azure.storage.blob import BlobClient, BlobProperties, ContainerClient
from iris_cloud.parts import PartPool
from iris_cloud.ports import ObjectInfo, ObjectStore, read_full
from iris_cloud.steps import drive

from iris_cloud_azure._blob import (
    KEY_MARKER,
    VALUE_MARKER,
    BlobStoreCommon,
    decode_metadata,
    encode_metadata,
    sas_permissions,
)
from iris_cloud_azure.credentials import default_credential
from iris_cloud_azure.errors import translate

__all__ = [
    "KEY_MARKER",
    "VALUE_MARKER",
    "AzureBlobStore",
    "decode_metadata",
    "default_credential",
    "encode_metadata",
    "sas_permissions",
]


class _ChunkReader(io.RawIOBase):
    """A read-only raw stream over ``StorageStreamDownloader.chunks()``."""

    def __init__(self, chunks: Iterator[bytes], what: str) -> None:
        super().__init__()
        self._chunks = chunks
        self._what = what
        self._buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        if not self._buffer:
            with translate(self._what, "read"):
                chunk = next(self._chunks, b"")
            if not chunk:
                return 0
            self._buffer = memoryview(chunk)
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


class AzureBlobStore(BlobStoreCommon, ObjectStore):
    """One Blob Storage container, optionally under a name prefix.

    Build it with :meth:`from_url` (or pass a configured ``ContainerClient``).
    ``sas_permission`` is the ``sp=`` of the SAS in use, if any: it sets
    ``capabilities.can_read`` / ``can_list`` / ``can_write`` so a caller
    holding a write-only SAS knows not to read its uploads back.
    """

    container_client_class = ContainerClient
    notification_broker = "iris_cloud_azure.broker:ServiceBusBroker"

    @staticmethod
    def default_credential() -> Any:
        """``azure.identity.DefaultAzureCredential``."""
        return default_credential()

    # -- writing ----------------------------------------------------------------------
    def _put(
        self,
        name: str,
        stream: IO[bytes],
        size: int | None,
        content_type: str | None,
        metadata: dict[str, str],
        overwrite: bool,
    ) -> ObjectInfo:
        read = partial(read_full, stream)
        return drive(
            self._put_steps(name, read, size, content_type, metadata, overwrite, self._stage)
        )

    def _stage(
        self, blob: BlobClient, first: bytes, read: Any, block_size: int
    ) -> tuple[list[str], int]:
        """Stage the stream as blocks, at most ``max_concurrency`` in flight; nothing committed."""
        pool = PartPool(self._max_concurrency, "azblob")
        try:
            return drive(self._stage_steps(blob, first, read, block_size, pool))
        finally:
            pool.close()

    # -- reading ----------------------------------------------------------------------
    def _open_read(self, name: str) -> IO[bytes]:
        what = self._what("read", name)
        with translate(what, "read"):
            downloader = self._client.get_blob_client(self._key(name)).download_blob()
        return io.BufferedReader(_ChunkReader(downloader.chunks(), what))

    def _info(self, name: str) -> ObjectInfo:
        with translate(self._what("read properties of", name), "read"):
            props = self._client.get_blob_client(self._key(name)).get_blob_properties()
        return self._info_from(name, props)

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        what = f"list blobs in container {self.container!r}"
        with translate(what, "list"):
            pages = self._list_pages(prefix)
            # The first page is fetched now, so a refusal surfaces at the call.
            first = list(next(pages, []))
        return self._iter_pages(first, pages, what)

    def _iter_pages(
        self, first: list[BlobProperties], pages: Any, what: str
    ) -> Iterator[ObjectInfo]:
        strip = len(self._prefix)
        page: Any = first
        while True:
            for props in page:
                yield self._info_from(props.name[strip:], props)
            with translate(what, "list"):
                page = next(pages, None)
                if page is None:
                    return
                page = list(page)

    def _delete(self, name: str) -> None:
        with translate(self._what("delete", name), "delete"):
            self._client.get_blob_client(self._key(name)).delete_blob(delete_snapshots="include")

    def _signed_url(self, name: str, method: str, expires: timedelta) -> str:
        return self._sas_url(name, method, expires)

    def close(self) -> None:
        """Close the SDK client's HTTP session."""
        self._client.close()
