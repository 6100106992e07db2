"""The shared contract suite on awssqs:// and s3://, against a moto server.

The async classes (``iris_cloud_aws.aio``, on aiobotocore) run the same
tests through blocking facades that drive them on an event loop
(:mod:`iris_cloud.testing.blocking`), on the same servers.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from iris_cloud.ports import ObjectStore
from iris_cloud.testing import BrokerContract, StoreContract
from iris_cloud.testing.blocking import BlockingBrokerEnv, BlockingStoreEnv, LoopThread
from iris_cloud_aws.testing import MotoServer, S3StoreEnv, SqsBrokerEnv


def _s3_env(server: MotoServer, loop: LoopThread | None = None) -> S3StoreEnv:
    # Listings page every 5 keys; 5 MiB parts, two in flight.
    return S3StoreEnv(
        server,
        page_size=5,
        loop=loop,
        multipart_threshold=5 * 2**20,
        multipart_chunksize=5 * 2**20,
        max_concurrency=2,
    )


class TestSqsBrokerContract(BrokerContract):
    """SQS queues with a 2 s visibility timeout and a redrive DLQ after 3 receives."""

    @pytest.fixture
    def broker_env(self, moto: MotoServer) -> Iterator[SqsBrokerEnv]:
        env = SqsBrokerEnv(moto)
        try:
            yield env
        finally:
            env.close()


class TestS3StoreContract(StoreContract):
    """S3 buckets; listings page every 5 keys so the listing test crosses pages."""

    # The server runs in a child process: tracemalloc then measures only our
    # side of the large upload (5 MiB parts, two in flight).
    @pytest.fixture
    def s3_env(self, moto_process: MotoServer) -> Iterator[S3StoreEnv]:
        env = _s3_env(moto_process)
        try:
            yield env
        finally:
            env.close()

    @pytest.fixture
    def store_env(self, s3_env: S3StoreEnv) -> S3StoreEnv:
        return s3_env

    def test_signed_url_get_put(
        self, store_env: S3StoreEnv, store: ObjectStore, s3_env: S3StoreEnv
    ) -> None:
        # moto answers presigned requests with HTTP 500 while IAM is enforced
        # and does not check them at all otherwise; IAM is off here (the
        # environment only enforces it for restricted credentials).
        assert not s3_env._enforcing
        super().test_signed_url_get_put(store_env, store)


class TestAsyncSqsBrokerContract(BrokerContract):
    """The broker contract on ``AsyncSqsBroker``, each broker connected on the loop."""

    @pytest.fixture
    def broker_env(self, moto: MotoServer, loop_thread: LoopThread) -> Iterator[BlockingBrokerEnv]:
        env = SqsBrokerEnv(moto, loop=loop_thread)
        try:
            yield BlockingBrokerEnv(env, loop_thread)
        finally:
            env.close()


class TestAsyncS3StoreContract(TestS3StoreContract):
    """The store contract on ``AsyncS3Store``, with the sync store's settings."""

    @pytest.fixture
    def s3_env(self, moto_process: MotoServer, loop_thread: LoopThread) -> Iterator[S3StoreEnv]:
        env = _s3_env(moto_process, loop_thread)
        try:
            yield env
        finally:
            env.close()

    @pytest.fixture
    def store_env(self, s3_env: S3StoreEnv, loop_thread: LoopThread) -> BlockingStoreEnv:  # type: ignore[override]
        return BlockingStoreEnv(s3_env, loop_thread)
