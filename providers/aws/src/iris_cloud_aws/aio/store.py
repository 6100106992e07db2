"""``s3://`` for asyncio: :class:`AsyncS3Store` on aiobotocore.

The same URLs, options, capabilities, errors and upload decisions as
:class:`~iris_cloud_aws.store.S3Store` (both are
:class:`~iris_cloud_aws._s3.S3Common`): one ``PutObject`` up to
``multipart_threshold``, else a multipart upload with at most
``max_concurrency`` parts in flight (as tasks), ``If-None-Match: *`` when
``overwrite=False``, and an abort of what failed. The client opens on the
first call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from iris_cloud.aio import AsyncObjectStore, AsyncReader
from iris_cloud.aio.blocks import BlockReader
from iris_cloud.aio.stepped import run_connected
from iris_cloud.parts import AsyncPartPool
from iris_cloud.ports import ObjectInfo
from iris_cloud.steps import Steps, adrive

from iris_cloud_aws._s3 import S3Common
from iris_cloud_aws.aio._session import AioAwsSession, LazyClient
from iris_cloud_aws.errors import aws_errors

__all__ = ["AsyncS3Store"]


class _BodyReader(AsyncReader):
    """An :class:`AsyncReader` over aiobotocore's streaming ``Body``."""

    def __init__(self, body: Any, where: str) -> None:
        self._body = body
        self._where = where

    async def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (the rest when ``size`` < 0); ``b""`` at the end."""
        with aws_errors("GetObject", self._where):
            data = await self._body.read(None if size < 0 else size)
        return bytes(data)

    async def close(self) -> None:
        """Release the connection."""
        self._body.close()


class AsyncS3Store(S3Common, AsyncObjectStore):
    """One S3 bucket, optionally under a key prefix, awaited; see
    :class:`~iris_cloud_aws.store.S3Store` for the options (``session`` is an
    aiobotocore ``AioSession``)."""

    session_class = AioAwsSession
    notification_broker = "iris_cloud_aws.aio.broker:AsyncSqsBroker"

    def __init__(self, session: AioAwsSession, bucket: str, prefix: str = "", **options: Any):
        """Open ``bucket`` (under ``prefix``); the client opens on the first call."""
        super().__init__(session, bucket, prefix, **options)
        # Sources are read in parts of the upload's size: a part is the chunk read,
        # not a copy cut from a larger one.
        self.chunk_size = self._chunk  # type: ignore[misc]
        self._lazy = LazyClient(session, "s3", f"s3://{bucket}", **self._client_config)

    async def connect(self) -> None:
        """Open the S3 client (loading its service model), once; the first call does it
        otherwise."""
        self._s3 = await self._lazy.open()

    async def _run(self, steps: Steps[Any]) -> Any:
        return await run_connected(self.connect, steps)

    # -- writing -------------------------------------------------------------------
    async def _put(
        self,
        name: str,
        chunks: AsyncIterator[bytes],
        size: int | None,
        content_type: str | None,
        metadata: dict[str, str],
        overwrite: bool,
    ) -> ObjectInfo:
        pool = AsyncPartPool(self._concurrency)
        try:
            read = BlockReader(chunks).read_full
            steps = self._put_steps(
                name, read, size, content_type, metadata, overwrite, (pool, adrive)
            )
            return await self._run(steps)  # type: ignore[no-any-return]
        finally:
            await pool.close()

    # -- reading -----------------------------------------------------------------------
    async def _open_read(self, name: str) -> AsyncReader:
        resp = await self._run(self._get_steps(name))
        return _BodyReader(resp["Body"], self._where(name))

    async def _info(self, name: str) -> ObjectInfo:
        return await self._run(self._info_steps(name))  # type: ignore[no-any-return]

    async def _list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        await self.connect()
        where = f"s3://{self.bucket}/{self._key(prefix)}"
        pages = aiter(self._pages(prefix))
        while True:
            with aws_errors("ListObjectsV2", where):
                page = await anext(pages, None)
            if page is None:
                return
            for info in self._listed(page):
                yield info

    async def _delete(self, name: str) -> None:
        await self._run(self._delete_steps(name))

    async def _signed_url(self, name: str, method: str, expires: timedelta) -> str:
        return await self._run(self._signed_url_steps(name, method, expires))  # type: ignore[no-any-return]

    async def close(self) -> None:
        """Close the S3 client's connection pool."""
        await self._lazy.close()
