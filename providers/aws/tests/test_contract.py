"""The shared contract suite on awssqs:// and s3://, against a moto server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from iris_cloud.ports import ObjectStore
from iris_cloud.testing import BrokerContract, StoreContract
from iris_cloud_aws.testing import MotoServer, S3StoreEnv, SqsBrokerEnv


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
    def store_env(self, moto_process: MotoServer) -> Iterator[S3StoreEnv]:
        env = S3StoreEnv(
            moto_process,
            page_size=5,
            multipart_threshold=5 * 2**20,
            multipart_chunksize=5 * 2**20,
            max_concurrency=2,
        )
        try:
            yield env
        finally:
            env.close()

    def test_signed_url_get_put(self, store_env: S3StoreEnv, store: ObjectStore) -> None:
        # moto answers presigned requests with HTTP 500 while IAM is enforced
        # and does not check them at all otherwise; IAM is off here (the
        # environment only enforces it for restricted credentials).
        assert not store_env._enforcing
        super().test_signed_url_get_put(store_env, store)
