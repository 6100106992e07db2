"""The shared broker contract on gcppubsub:// against the Pub/Sub emulator.

The async broker (``iris_cloud_gcp.aio.AsyncPubSubBroker``, on the generated
async clients) runs the same tests through a blocking facade
(:mod:`iris_cloud.testing.blocking`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from iris_cloud.ports import MessageBroker
from iris_cloud.testing import BrokerContract
from iris_cloud.testing.blocking import BlockingBrokerEnv, LoopThread
from iris_cloud_gcp.testing import GcpServers, PubSubBrokerEnv


class TestPubSubBrokerContract(BrokerContract):
    """gcppubsub:// (subscription URL paired with its topic) passes the contract."""

    @pytest.fixture
    def broker_env(self, servers: GcpServers) -> Iterator[PubSubBrokerEnv]:
        env = PubSubBrokerEnv(servers)
        yield env
        env.close()

    def test_send_only_cannot_receive(self, broker_env: PubSubBrokerEnv, queue_url: str) -> None:
        pytest.skip(
            "the Pub/Sub emulator has no IAM: a publisher-only identity "
            "(roles/pubsub.publisher) cannot be tested against it"
        )

    def test_receive_only_cannot_send(self, broker_env: PubSubBrokerEnv, queue_url: str) -> None:
        pytest.skip(
            "the Pub/Sub emulator has no IAM: a subscriber-only identity "
            "(roles/pubsub.subscriber) cannot be tested against it"
        )

    def test_batch_split_by_bytes(self, broker: MessageBroker) -> None:
        assert broker.capabilities.max_batch_bytes is None
        pytest.skip(
            "no per-batch byte limit in the port: the Pub/Sub client library splits "
            "publish requests at 10 MB itself (batch settings max_bytes)"
        )


class TestAsyncPubSubBrokerContract(TestPubSubBrokerContract):
    """The same contract (and the same emulator limits) on ``AsyncPubSubBroker``."""

    @pytest.fixture
    def broker_env(  # type: ignore[override]
        self, servers: GcpServers, loop_thread: LoopThread
    ) -> Iterator[BlockingBrokerEnv]:
        env = PubSubBrokerEnv(servers, loop=loop_thread)
        yield BlockingBrokerEnv(env, loop_thread)
        env.close()
