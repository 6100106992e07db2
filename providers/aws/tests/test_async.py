"""The async AWS classes (``iris_cloud_aws.aio``) as ``iris_cloud.aio`` opens them.

Their contract suite is in ``test_contract.py``, beside the sync classes'.
"""

from __future__ import annotations

import asyncio

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
