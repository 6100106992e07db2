"""The async AWS classes (``iris_cloud_aws.aio``, on aiobotocore) pass the same contract suite.

The suite's own tests, unchanged, through blocking facades that run the
async ports' methods on an event loop (:mod:`iris_cloud.testing.blocking`),
on the session's moto servers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from iris_cloud import aio
from iris_cloud.ports import ObjectStore
from iris_cloud.testing import BrokerContract, StoreContract
from iris_cloud.testing.blocking import BlockingBrokerEnv, BlockingStoreEnv, LoopThread
from iris_cloud_aws.aio import AsyncS3Store, AsyncSqsBroker
from iris_cloud_aws.testing import MotoServer, S3StoreEnv, SqsBrokerEnv


class TestAsyncSqsBrokerContract(BrokerContract):
    """SQS queues with a 2 s visibility timeout and a redrive DLQ after 3 receives."""

    @pytest.fixture
    def broker_env(self, moto: MotoServer, loop_thread: LoopThread) -> Iterator[BlockingBrokerEnv]:
        env = SqsBrokerEnv(moto, loop=loop_thread)
        try:
            yield BlockingBrokerEnv(env, loop_thread)
        finally:
            env.close()


class TestAsyncS3StoreContract(StoreContract):
    """S3 buckets paging every 5 keys; 5 MiB parts, two in flight (moto in a child process,
    so tracemalloc measures our side of the large upload only)."""

    @pytest.fixture
    def s3_env(self, moto_process: MotoServer, loop_thread: LoopThread) -> Iterator[S3StoreEnv]:
        env = S3StoreEnv(
            moto_process,
            page_size=5,
            loop=loop_thread,
            multipart_threshold=5 * 2**20,
            multipart_chunksize=5 * 2**20,
            max_concurrency=2,
        )
        try:
            yield env
        finally:
            env.close()

    @pytest.fixture
    def store_env(self, s3_env: S3StoreEnv, loop_thread: LoopThread) -> BlockingStoreEnv:
        return BlockingStoreEnv(s3_env, loop_thread)

    def test_signed_url_get_put(
        self, store_env: BlockingStoreEnv, store: ObjectStore, s3_env: S3StoreEnv
    ) -> None:
        # As for the sync store: moto checks presigned requests only with IAM off.
        assert not s3_env._enforcing
        super().test_signed_url_get_put(store_env, store)


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
