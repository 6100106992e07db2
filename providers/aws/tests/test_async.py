"""The async AWS classes (``iris_cloud_aws.aio``) as ``iris_cloud.aio`` opens them.

Their contract suite is in ``test_contract.py``, beside the sync classes'.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from iris_cloud import aio
from iris_cloud_aws.aio import AsyncS3Store, AsyncSqsBroker
from iris_cloud_aws.testing import MotoServer


def test_open_broker_and_store_resolve_the_async_classes(moto: MotoServer) -> None:
    queue_url = moto.create_queue("aio-resolve")
    bucket = moto.create_bucket("aio-resolve")

    async def main() -> None:
        async with (
            aio.open_broker(moto.broker_url("aio-resolve"), **moto.options()) as broker,
            aio.open_store(moto.store_url(bucket), **moto.options()) as store,
        ):
            assert isinstance(broker, AsyncSqsBroker) and isinstance(store, AsyncS3Store)
            await broker.send(b"hello")
            got = await broker.receive(max_messages=1, wait=2)
            assert [m.body for m in got] == [b"hello"]
            await broker.complete(got[0])
            assert broker.queue_url == queue_url
            await store.put("a.bin", b"abc")
            assert await store.get("a.bin") == b"abc"
            assert [i.name async for i in store.list()] == ["a.bin"]

    asyncio.run(main())


def test_a_failed_async_multipart_upload_is_aborted_after_its_parts_in_flight(
    moto: MotoServer,
) -> None:
    # As the sync store's test_store: the parts already sent are waited for
    # (not cancelled: a cancelled request may still land) before the abort.
    bucket = moto.create_bucket("aio-abort")
    options = moto.options(multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20)
    calls: list[str] = []

    async def failing() -> Any:
        yield b"x" * (12 * 2**20)
        raise OSError("source failed")

    async def main() -> None:
        async with aio.open_store(moto.store_url(bucket), **options) as store:
            assert isinstance(store, AsyncS3Store)
            await store.connect()
            events = store._s3.meta.events
            events.register("after-call.s3.UploadPart", lambda **kw: calls.append("part"))
            events.register(
                "before-call.s3.AbortMultipartUpload", lambda **kw: calls.append("abort")
            )
            with pytest.raises(OSError, match="source failed"):
                await store.put("broken.bin", failing())
            assert not await store.exists("broken.bin")

    asyncio.run(main())
    assert calls == ["part", "part", "abort"]
    assert moto.client("s3").list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_an_async_multipart_upload_cancelled_mid_way_is_aborted(moto: MotoServer) -> None:
    # A cancel is no Exception: the abort must still run, or the parts sent
    # (a piece of a patient's image) stay stored outside any object.
    bucket = moto.create_bucket("aio-cancel")
    options = moto.options(multipart_threshold=5 * 2**20, multipart_chunksize=5 * 2**20)

    async def main() -> None:
        sent = asyncio.Event()

        async def stalling() -> Any:
            yield b"x" * (6 * 2**20)
            await asyncio.Event().wait()  # the rest never comes
            yield b""

        async with aio.open_store(moto.store_url(bucket), **options) as store:
            assert isinstance(store, AsyncS3Store)
            await store.connect()
            store._s3.meta.events.register("after-call.s3.UploadPart", lambda **kw: sent.set())
            put = asyncio.ensure_future(store.put("cancelled.bin", stalling()))
            await asyncio.wait_for(sent.wait(), 30)
            assert moto.client("s3").list_multipart_uploads(Bucket=bucket).get("Uploads")
            put.cancel()
            with pytest.raises(asyncio.CancelledError):
                await put
            assert not await store.exists("cancelled.bin")

    asyncio.run(main())
    assert moto.client("s3").list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
